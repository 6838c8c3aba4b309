package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/credgate/credgate/auth/oidctest"
	"github.com/credgate/credgate/bootstrap"
	"github.com/credgate/credgate/vaultstore/vaulttest"
)

// TestFailoverOfTheActiveVaultNode runs credgate against a 3-node Vault
// Raft cluster behind a health-checking balancer, under a steady mix of
// versioned credential writes and reads, and SIGKILLs the active node a
// few seconds in. While Vault elects a new leader every failure must be a
// 503 with Retry-After (never a 500 or a 4xx), credgate must serve again
// without a restart, and afterwards every acknowledged write must be
// there: the value a reader finds is the last acknowledged one or one
// written after it.
func TestFailoverOfTheActiveVaultNode(t *testing.T) {
	cluster := vaulttest.StartCluster(t, 3)
	lb := cluster.Balancer(t)
	ctx := context.Background()
	root := cluster.Client(0)
	root.SetAddress(lb.URL)
	res, err := bootstrap.Bootstrap(ctx, root, bootstrap.Options{IssueToken: true})
	if err != nil {
		t.Fatal(err)
	}
	iss := oidctest.Start(t)
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.Vault.Address, cfg.Vault.Token = lb.URL, res.Token
	cfg.RateLimit.Default = 1 << 20 // the load is the point, not the limit
	cfg.Auth.Issuers = []IssuerConfig{{URL: iss.URL, Audiences: []string{iss.Audience}}}
	m := &Main{Config: cfg, Logger: zap.NewNop()}
	if err := m.Run(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	base := "http://" + m.Addr()
	bearer := "Bearer " + iss.Sign(t, iss.Claims("failover", "acme", "integration_admin"))
	do := func(method, path string, body any) (int, http.Header, []byte, error) {
		var rd *bytes.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		} else {
			rd = bytes.NewReader(nil)
		}
		req, _ := http.NewRequest(method, base+path, rd)
		req.Header.Set("Authorization", bearer)
		req.Header.Set("Content-Type", "application/json")
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, nil, nil, err
		}
		defer r.Body.Close()
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(r.Body)
		return r.StatusCode, r.Header, buf.Bytes(), nil
	}

	const workers = 4
	services := make([]string, workers)
	for w := range workers {
		st, _, body, err := do("POST", "/api/v1/services", map[string]any{"name": fmt.Sprintf("failover-%d", w)})
		if err != nil || st != 201 {
			t.Fatalf("creating a service: %d %s %v", st, body, err)
		}
		var svc struct{ ID string }
		_ = json.Unmarshal(body, &svc)
		services[w] = svc.ID
	}

	type outcome struct {
		at     time.Time
		status int
	}
	var (
		mu       sync.Mutex
		outcomes []outcome
		bad      []string
	)
	// Per worker: every value it tried to write, in order, and the index
	// of the last one credgate acknowledged.
	tried := make([][]string, workers)
	acked := make([]int, workers)
	start := time.Now()
	var killedAt time.Time
	var killed int
	var wg sync.WaitGroup
	for w := range workers {
		acked[w] = -1
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Since(start) < 16*time.Second; i++ {
				var st int
				var hdr http.Header
				var body []byte
				var err error
				if i%2 == 0 {
					v := fmt.Sprintf("w%d-v%d", w, i)
					tried[w] = append(tried[w], v)
					st, hdr, body, err = do("PUT", "/api/v1/services/"+services[w]+"/credentials", map[string]any{"credentials": map[string]string{"api_key": v}})
					if st == 200 {
						acked[w] = len(tried[w]) - 1
					}
				} else {
					st, hdr, body, err = do("GET", "/api/v1/services/"+services[w]+"/credentials", nil)
				}
				mu.Lock()
				switch {
				case err != nil:
					bad = append(bad, "transport: "+err.Error())
				case st == 200:
				case st == 503 && hdr.Get("Retry-After") != "":
				default:
					bad = append(bad, fmt.Sprintf("%d %s", st, body))
				}
				outcomes = append(outcomes, outcome{time.Now(), st})
				mu.Unlock()
				time.Sleep(40 * time.Millisecond)
			}
		}()
	}
	time.Sleep(4 * time.Second)
	killed = cluster.Active(ctx)
	if killed < 0 {
		t.Fatal("no active node before the kill")
	}
	killedAt = time.Now()
	cluster.Kill(killed)
	elected := make(chan time.Duration, 1)
	go func() {
		ectx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		if _, err := cluster.WaitActive(ectx); err == nil {
			elected <- time.Since(killedAt)
		}
		close(elected)
	}()
	wg.Wait()

	if len(bad) > 0 {
		t.Fatalf("%d answers other than 200 or 503 with Retry-After, first: %v", len(bad), bad[0])
	}
	sort.Slice(outcomes, func(i, j int) bool { return outcomes[i].at.Before(outcomes[j].at) })
	var unavailable, ok int
	var lastFailure, recovered time.Time
	for _, o := range outcomes {
		if o.status == 503 {
			unavailable++
			lastFailure = o.at
		} else {
			ok++
		}
	}
	for _, o := range outcomes {
		if o.at.After(lastFailure) && o.status == 200 {
			recovered = o.at
			break
		}
	}
	if recovered.IsZero() || time.Since(recovered) < 3*time.Second {
		t.Fatalf("credgate did not serve steadily again after the failover (last 503 %v after the kill)", lastFailure.Sub(killedAt))
	}
	election, _ := <-elected
	t.Logf("killed %s: %d requests, %d × 200, %d × 503, 0 × 500; Vault elected in %v; credgate served again %v after the kill",
		cluster.Nodes[killed].ID, len(outcomes), ok, unavailable, election.Round(time.Millisecond), recovered.Sub(killedAt).Round(time.Millisecond))

	// Every acknowledged write is there.
	writes := 0
	for w := range workers {
		writes += acked[w] + 1
		st, _, body, err := do("GET", "/api/v1/services/"+services[w]+"/credentials", nil)
		if err != nil || st != 200 {
			t.Fatalf("reading back: %d %s %v", st, body, err)
		}
		var got struct {
			Credentials map[string]string `json:"credentials"`
		}
		_ = json.Unmarshal(body, &got)
		v := got.Credentials["api_key"]
		idx := -1
		for i, tv := range tried[w] {
			if tv == v {
				idx = i
			}
		}
		if idx < acked[w] {
			t.Fatalf("worker %d: read %q, but %q was acknowledged later (lost write)", w, v, tried[w][acked[w]])
		}
		st, _, body, _ = do("GET", "/api/v1/services/"+services[w]+"/credentials/versions", nil)
		if st != 200 || !strings.Contains(string(body), "version") {
			t.Fatalf("versions: %d %s", st, body)
		}
	}
	t.Logf("%d acknowledged writes, none lost", writes)
}

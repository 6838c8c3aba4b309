package monitor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/monitor"
	"github.com/credgate/credgate/vaultstore"
	"github.com/credgate/credgate/vaultstore/vaulttest"
)

// replica is a credgate replica's store and monitor on a shared Vault, on
// a clock the test moves.
type replica struct {
	store *vaultstore.Store
	mon   *monitor.Monitor
}

// summaryReplicas starts a Vault of the test's own and n replicas on it
// (through addr, when set: a fault proxy), with monitors on clock whose
// lease lasts ttl.
func summaryReplicas(t *testing.T, n int, clock func() time.Time, ttl time.Duration, via func(vaultAddr string) string) []replica {
	addr, token := ownedVault(t)
	if via != nil {
		addr = via(addr)
	}
	var out []replica
	for i := range n {
		st := storeOn(t, addr, token, 5*time.Second, nil)
		mon, err := monitor.New(monitor.Options{
			Store: st, Events: nopEvents{}, Grant: func(context.Context, *credgate.Credential) (credgate.Secrets, *time.Time, error) {
				return nil, nil, fmt.Errorf("no refresh here")
			},
			Logger: zap.NewNop(), Holder: fmt.Sprintf("replica-%d", i), Interval: time.Nanosecond, Rate: 1e6, LeaseTTL: ttl, Now: clock,
		})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, replica{st, mon})
	}
	return out
}

// summaryOf reads tenant's summary as the monitor keeps it: every
// credential's facts, and the marks not yet forgotten.
func summaryOf(t *testing.T, st *vaultstore.Store, tenant string) (map[string]string, map[string]string) {
	t.Helper()
	ctx := context.Background()
	h, _, err := st.SummaryHead(ctx, tenant)
	if err != nil {
		t.Fatal(err)
	}
	facts := map[string]string{}
	add := func(sh credgate.SummaryShard) {
		for k, f := range sh {
			b, _ := json.Marshal(f)
			facts[k] = string(b)
		}
	}
	if h.Inlined {
		add(h.Inline)
	} else {
		for i := range h.N {
			sh, _, err := st.SummaryShard(ctx, tenant, i)
			if err != nil {
				t.Fatal(err)
			}
			add(sh)
		}
	}
	return facts, h.Dirty
}

// recordsOf is what the credentials' own records say of tenant's
// credentials, as facts (a walk: the inventory records do not keep the
// monitor's notices, which no description shows).
func recordsOf(t *testing.T, st *vaultstore.Store, tenant string) map[string]string {
	t.Helper()
	sys := credgate.WithPrincipal(context.Background(), credgate.SystemPrincipal(tenant))
	out := map[string]string{}
	f := credgate.CredentialFilter{Limit: 500, Walk: true}
	for {
		page, err := st.ListCredentials(sys, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range page.Credentials {
			b, _ := json.Marshal(credgate.FactsOf(c))
			out[credgate.SummaryKey(c.IntegrationID, c.ID)] = string(b)
		}
		if page.Next == nil {
			return out
		}
		f.After = page.Next
	}
}

func agree(t *testing.T, st *vaultstore.Store, tenant string) {
	t.Helper()
	facts, marks := summaryOf(t, st, tenant)
	records := recordsOf(t, st, tenant)
	if len(marks) != 0 {
		t.Errorf("%d marks left after the passes: %v", len(marks), marks)
	}
	for k, r := range records {
		if facts[k] != r {
			t.Errorf("%s: the summary says\n  %s\nthe record says\n  %s", k, facts[k], r)
		}
	}
	for k := range facts {
		if _, ok := records[k]; !ok {
			t.Errorf("%s is in the summary, not in the records (deleted)", k)
		}
	}
}

// Ten writers on two replicas change, revoke, create and delete
// credentials while the replicas' monitors pass, the lease going from one
// to the other; after the marks' grace, the summary agrees with the
// records, field for field.
func TestTheSummaryAgreesWithTheRecordsAfterConcurrentWriters(t *testing.T) {
	var ahead atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }
	rs := summaryReplicas(t, 2, clock, 300*time.Millisecond, nil)
	const tenant = "summary"
	ctx := credgate.WithPrincipal(context.Background(), credgate.SystemPrincipal(tenant))
	for s := range 2 {
		if _, err := rs[0].store.CreateService(ctx, &credgate.Service{ID: fmt.Sprintf("svc-%d", s), Name: fmt.Sprintf("Service %d", s), Type: "payment", Status: credgate.StatusActive, Metadata: map[string]any{}}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	var ids []string
	create := func(st *vaultstore.Store, i int) error {
		exp := time.Now().Add(time.Duration(2+i%60) * 24 * time.Hour).UTC().Truncate(time.Second)
		c, err := st.CreateCredential(ctx, &credgate.Credential{
			IntegrationID: fmt.Sprintf("svc-%d", i%2), CredentialName: fmt.Sprintf("key %d", i), AuthType: credgate.AuthAPIKey,
			Status: credgate.CredActive, Metadata: map[string]any{}, ExpiresAt: &exp, Secrets: credgate.Secrets{"apiKey": fmt.Sprint("k", i)},
		})
		if err == nil {
			mu.Lock()
			ids = append(ids, c.ID)
			mu.Unlock()
		}
		return err
	}
	for i := range 30 {
		if err := create(rs[0].store, i); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range rs {
		r.mon.Step(context.Background()) // the first to hold the lease builds the summary
	}

	stop := make(chan struct{})
	var passes sync.WaitGroup
	passes.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			r := rs[(i/5)%2] // five steps of one replica, then the other's
			r.mon.Step(context.Background())
			time.Sleep(80 * time.Millisecond)
		}
	})
	var writers sync.WaitGroup
	for w := range 10 {
		st := rs[w%2].store
		writers.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for op := range 8 {
				mu.Lock()
				id := ids[rng.IntN(len(ids))]
				mu.Unlock()
				var err error
				switch rng.IntN(6) {
				case 0:
					err = create(st, 100+w*10+op)
				case 1:
					_, err = st.DeleteCredential(ctx, id, 0)
				case 2:
					_, err = st.UpdateCredential(ctx, id, 0, func(c *credgate.Credential) error { c.Status = credgate.CredRevoked; return nil })
				default:
					exp := time.Now().Add(time.Duration(1+rng.IntN(50)) * 24 * time.Hour).UTC().Truncate(time.Second)
					_, err = st.UpdateCredential(ctx, id, 0, func(c *credgate.Credential) error { c.ExpiresAt = &exp; return nil })
				}
				if code := credgate.ErrorCode(err); err != nil && code != credgate.ECredentialNotFound && code != credgate.EVersionConflict {
					t.Errorf("writer %d: %v", w, err)
				}
			}
		})
	}
	writers.Wait()
	close(stop)
	passes.Wait()

	// Past the marks' grace, two passes: the first looks at what was
	// marked, the second finds nothing new.
	ahead.Store(int64(credgate.MarkGrace + time.Second))
	time.Sleep(400 * time.Millisecond) // the lease's holder may be either
	for range 2 {
		for _, r := range rs {
			r.mon.Step(context.Background())
		}
	}
	agree(t, rs[0].store, tenant)
}

// A write whose projection is cut after its data is written (Vault gone
// between the two) is in the summary after the monitor's next pass, as its
// data says: the monitor finishes the projection.
func TestAWriteCutAfterItsDataReachesTheSummary(t *testing.T) {
	var ahead atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }
	var proxy *vaulttest.FaultProxy
	rs := summaryReplicas(t, 1, clock, time.Minute, func(addr string) string {
		proxy = vaulttest.StartFaultProxy(t, addr)
		return proxy.URL
	})
	st, mon := rs[0].store, rs[0].mon
	const tenant = "cut"
	ctx := credgate.WithPrincipal(context.Background(), credgate.SystemPrincipal(tenant))
	if _, err := st.CreateService(ctx, &credgate.Service{ID: "svc", Name: "Svc", Type: "payment", Status: credgate.StatusActive, Metadata: map[string]any{}}); err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(60 * 24 * time.Hour).UTC().Truncate(time.Second)
	c, err := st.CreateCredential(ctx, &credgate.Credential{IntegrationID: "svc", CredentialName: "key", AuthType: credgate.AuthAPIKey, Status: credgate.CredActive, Metadata: map[string]any{}, ExpiresAt: &exp, Secrets: credgate.Secrets{"apiKey": "k1"}})
	if err != nil {
		t.Fatal(err)
	}
	mon.Step(context.Background())

	// cutWrite sets the credential's expiry to exp; its projection never
	// reaches Vault.
	cutWrite := func(exp time.Time) {
		t.Helper()
		proxy.Answer(func(r *http.Request) bool {
			return r.Method == http.MethodPatch && strings.Contains(r.URL.Path, "/metadata/") && strings.Contains(r.URL.Path, c.ID)
		}, http.StatusServiceUnavailable, `{"errors":["cut"]}`)
		if _, err := st.UpdateCredential(ctx, c.ID, 0, func(c *credgate.Credential) error { c.ExpiresAt = &exp; return nil }); err == nil {
			t.Fatal("set-up: the cut write succeeded")
		}
		proxy.Heal()
	}
	soon := time.Now().Add(5 * 24 * time.Hour).UTC().Truncate(time.Second)
	cutWrite(soon)

	ahead.Store(int64(credgate.MarkGrace + time.Second))
	mon.Step(context.Background())
	agree(t, st, tenant)
	want := func(version int, exp time.Time) {
		t.Helper()
		facts, _ := summaryOf(t, st, tenant)
		var f credgate.Facts
		_ = json.Unmarshal([]byte(facts[credgate.SummaryKey("svc", c.ID)]), &f)
		if f.Version != version || f.ExpiresAt == nil || !f.ExpiresAt.Equal(exp) {
			t.Fatalf("after the cut write: the summary has version %d expiring %v; want version %d expiring %v", f.Version, f.ExpiresAt, version, exp)
		}
	}
	want(2, soon)

	// Another, found by the day's rebuild, which reads every credential
	// through the inventory (which shows the cut one as it was).
	later := soon.Add(24 * time.Hour)
	cutWrite(later)
	ahead.Store(int64(monitor.DefaultReconcile + credgate.MarkGrace))
	mon.Step(context.Background())
	agree(t, st, tenant)
	want(3, later)
}

package httpapi_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/credgate/credgate/vaultstore/vaulttest"
)

// TestASlowVaultGetsFastHonestAnswers: with Vault answering 0.6, 2 and 5 s
// late, every request is answered within the request deadline (+1 s), and
// what could not finish is 503 BACKEND_UNAVAILABLE with Retry-After, never
// a 500 or a wait as long as the Vault calls it would take; /readyz stays
// ready while Vault answers at all, and answers within 1.5 s.
func TestASlowVaultGetsFastHonestAnswers(t *testing.T) {
	px := vaulttest.StartFaultProxy(t, s.vault.Addr)
	const deadline = 3 * time.Second
	a := newAPI(t, apiOptions{vaultURL: px.URL, requestTimeout: deadline, vaultTimeout: 10 * time.Second})
	tok, _ := adminWithService(t, a, "stripe")
	id := a.mustCreateCredential(tok, map[string]any{"integrationId": "stripe", "credentialName": "live", "authType": "api_key", "apiKey": secret("sk_" + randHex(8))})["id"].(string)
	wantEnvelope(t, a.do("GET", "/api/v1/credentials/stripe", tok, nil), 200) // caches warm
	requests := []struct {
		method, path string
		body         any
	}{
		{"GET", "/api/v1/credentials/stripe", nil},
		{"GET", "/api/v1/credentials/stripe?credentialId=" + id, nil},
		{"PATCH", "/api/v1/credentials/" + id, map[string]any{"description": "slow"}},
		{"POST", "/api/v1/credentials", map[string]any{"integrationId": "stripe", "credentialName": "another", "authType": "api_key", "apiKey": secret("sk_" + randHex(8))}},
		{"POST", "/api/v1/credentials/" + id + "/rotate", map[string]any{"generate": true}},
		{"GET", "/api/v1/services/stripe", nil},
		{"GET", "/api/v1/credentials", nil},
	}
	for _, delay := range []time.Duration{600 * time.Millisecond, 2 * time.Second, 5 * time.Second} {
		px.Delay(delay)
		var mu sync.Mutex
		statuses := map[int]int{}
		var wg sync.WaitGroup
		for _, req := range requests {
			wg.Go(func() {
				start := time.Now()
				r := a.do(req.method, req.path, tok, req.body)
				took := time.Since(start)
				mu.Lock()
				statuses[r.Status]++
				mu.Unlock()
				switch {
				case took > deadline+time.Second:
					t.Errorf("Vault %s late: %s %s took %s", delay, req.method, req.path, took)
				case r.Status == 503 && r.Header.Get("Retry-After") == "":
					t.Errorf("Vault %s late: %s %s: 503 without Retry-After", delay, req.method, req.path)
				case r.Status != 503 && r.Status/100 != 2:
					t.Errorf("Vault %s late: %s %s: %d %.200s", delay, req.method, req.path, r.Status, r.Raw)
				}
				if r.Status == 503 && !strings.Contains(string(r.Raw), "BACKEND_UNAVAILABLE") {
					t.Errorf("Vault %s late: %s %s: %s", delay, req.method, req.path, r.Raw)
				}
			})
		}
		wg.Wait()
		t.Logf("Vault %s late: answers by status %v", delay, statuses)
		if delay < time.Second && statuses[200] < 3 {
			t.Errorf("Vault 0.6 s late: reads should still succeed: %v", statuses)
		}
		if delay == 2*time.Second {
			// Slow, not down: ready (within a probe or two).
			var last reply
			for range 10 {
				start := time.Now()
				last = a.do("GET", "/readyz", "", nil)
				if took := time.Since(start); took > 2*time.Second {
					t.Fatalf("/readyz took %s", took)
				}
				if last.Status == 200 && strings.Contains(string(last.Raw), `"slow"`) {
					break
				}
				time.Sleep(time.Second)
			}
			if last.Status != http.StatusOK || !strings.Contains(string(last.Raw), `"slow"`) {
				t.Errorf("/readyz with Vault 2 s late: %d %s", last.Status, last.Raw)
			}
		}
	}
	px.Heal()
	if r := a.do("GET", "/api/v1/credentials/stripe?credentialId="+id, tok, nil); r.Status != 200 {
		t.Fatalf("after Vault is quick again: %d %s", r.Status, r.Raw)
	}
	_ = fmt.Sprint
}

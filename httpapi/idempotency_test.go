package httpapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/credgate/credgate/vaultstore/vaulttest"
)

// credentialCount is how many credentials the service has.
func credentialCount(t *testing.T, a *testAPI, tok, service string) int {
	t.Helper()
	r := a.do("GET", "/api/v1/credentials?integrationId="+service+"&limit=100", tok, nil)
	if r.Status != 200 {
		t.Fatalf("list: %d %s", r.Status, r.Raw)
	}
	list, _ := r.Body["data"].([]any)
	return len(list)
}

// TestLostAnswersRetriedWithAKeyCreateOnce: 20 creates whose first try
// the client gave up on (a 250 ms timeout, Vault 100 ms late on every
// call), each retried with the same Idempotency-Key until answered, make
// 20 credentials, not 40, whatever point the first try had reached.
func TestLostAnswersRetriedWithAKeyCreateOnce(t *testing.T) {
	px := vaulttest.StartFaultProxy(t, s.vault.Addr)
	a := newAPI(t, apiOptions{vaultURL: px.URL})
	tok, _ := adminWithService(t, a, "stripe")
	px.Delay(100 * time.Millisecond)
	impatient := &http.Client{Timeout: 250 * time.Millisecond}
	gaveUp := 0
	for i := range 20 {
		body, _ := json.Marshal(map[string]any{"integrationId": "stripe", "credentialName": fmt.Sprintf("key-%d", i), "authType": "api_key", "apiKey": secret("sk_" + randHex(8))})
		key := fmt.Sprintf("create-%d-%s", i, randHex(4))
		send := func(c *http.Client) (*http.Response, error) {
			req, _ := http.NewRequest("POST", a.url+"/api/v1/credentials", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Idempotency-Key", key)
			return c.Do(req)
		}
		if res, err := send(impatient); err != nil {
			gaveUp++
		} else {
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
		for try := 0; ; try++ {
			res, err := send(http.DefaultClient)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode == 201 {
				break
			}
			if try > 50 || (res.StatusCode != 409 && res.StatusCode != 503) {
				t.Fatalf("create %d, retry %d: %d", i, try, res.StatusCode)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	px.Heal()
	if gaveUp == 0 {
		t.Fatal("the client never gave up: the test shows nothing")
	}
	if n := credentialCount(t, a, tok, "stripe"); n != 20 {
		t.Fatalf("%d credentials after 20 creates (%d first tries given up on)", n, gaveUp)
	}
	t.Logf("%d of 20 first tries given up on; 20 credentials", gaveUp)
}

// TestConcurrentPostsWithOneKeyMakeOneCredential: 20 POSTs at once with one
// key make one credential and 20 identical answers; the same key with
// another body is 422; another caller's same key is its own.
func TestConcurrentPostsWithOneKeyMakeOneCredential(t *testing.T) {
	a := newAPI(t, apiOptions{})
	tok, ten := adminWithService(t, a, "sendgrid")
	body := map[string]any{"integrationId": "sendgrid", "credentialName": "mail", "authType": "api_key", "apiKey": secret("SG." + randHex(8))}
	var mu sync.Mutex
	var answers []reply
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			r := a.do("POST", "/api/v1/credentials", tok, body, "Idempotency-Key", "one-key")
			mu.Lock()
			answers = append(answers, r)
			mu.Unlock()
		})
	}
	wg.Wait()
	replayed := 0
	for _, r := range answers {
		if r.Status != 201 || !bytes.Equal(r.Raw, answers[0].Raw) || r.Header.Get("Location") != answers[0].Header.Get("Location") || r.Header.Get("ETag") != answers[0].Header.Get("ETag") {
			t.Fatalf("answers differ: %d %s / %d %s", r.Status, r.Raw, answers[0].Status, answers[0].Raw)
		}
		if r.Header.Get("Idempotent-Replayed") == "true" {
			replayed++
		}
	}
	if replayed != 19 {
		t.Fatalf("%d answers replayed; want 19", replayed)
	}
	if n := credentialCount(t, a, tok, "sendgrid"); n != 1 {
		t.Fatalf("%d credentials", n)
	}
	other := body
	other["credentialName"] = "another"
	wantEnvelopeError(t, a.do("POST", "/api/v1/credentials", tok, other, "Idempotency-Key", "one-key"), 422, "IDEMPOTENCY_KEY_REUSED")
	bob := token(t, "bob", ten, "integration_admin")
	if r := a.do("POST", "/api/v1/credentials", bob, body, "Idempotency-Key", "one-key"); r.Status != 201 || r.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("another caller's key: %d %s", r.Status, r.Raw)
	}
	if n := credentialCount(t, a, tok, "sendgrid"); n != 2 {
		t.Fatalf("%d credentials", n)
	}
	wantEnvelopeError(t, a.do("POST", "/api/v1/credentials", tok, body, "Idempotency-Key", "bad key with spaces"), 400, "INVALID_REQUEST")
}

// TestKeyedRotationsWebhooksAndServicesReplay: a rotation retried with its
// key is not a second rotation (same values, same version); a webhook's
// create answers the same secret again; a failed request is not kept, so
// its key runs again.
func TestKeyedRotationsWebhooksAndServicesReplay(t *testing.T) {
	a := newAPI(t, apiOptions{})
	tok, _ := adminWithService(t, a, "github")
	id := a.mustCreateCredential(tok, map[string]any{"integrationId": "github", "credentialName": "ci", "authType": "bearer", "accessToken": secret("ghp_" + randHex(8))})["id"].(string)
	rot := func() reply {
		return a.do("POST", "/api/v1/credentials/"+id+"/rotate", tok, map[string]any{"generate": true}, "Idempotency-Key", "rotate-1")
	}
	first, again := rot(), rot()
	if first.Status != 200 || again.Status != 200 || !bytes.Equal(first.Raw, again.Raw) || again.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("rotation retried: %d %s / %d %s", first.Status, first.Raw, again.Status, again.Raw)
	}
	if v := wantEnvelope(t, a.do("GET", "/api/v1/credentials/github?credentialId="+id, tok, nil), 200)["version"]; v != float64(2) {
		t.Fatalf("version %v after one rotation retried", v)
	}
	hook := map[string]any{"url": "https://hooks.example.com/x", "eventTypes": []string{"credential.created"}}
	w1 := a.do("POST", "/api/v1/webhooks", tok, hook, "Idempotency-Key", "hook-1")
	w2 := a.do("POST", "/api/v1/webhooks", tok, hook, "Idempotency-Key", "hook-1")
	if w1.Status != 201 || !bytes.Equal(w1.Raw, w2.Raw) {
		t.Fatalf("webhook create retried: %s / %s", w1.Raw, w2.Raw)
	}
	if r := a.do("GET", "/api/v1/webhooks", tok, nil); len(r.Body["data"].([]any)) != 1 {
		t.Fatalf("%d webhooks", len(r.Body["data"].([]any)))
	}
	s1 := a.do("POST", "/api/v1/services", tok, map[string]any{"name": "Jira"}, "Idempotency-Key", "svc-1")
	s2 := a.do("POST", "/api/v1/services", tok, map[string]any{"name": "Jira"}, "Idempotency-Key", "svc-1")
	if s1.Status != 201 || s2.Status != 201 || !bytes.Equal(s1.Raw, s2.Raw) {
		t.Fatalf("service create retried: %d %s / %d %s", s1.Status, s1.Raw, s2.Status, s2.Raw)
	}
	// A refused request keeps nothing: the key runs again (and may then
	// carry a corrected body).
	bad := map[string]any{"integrationId": "github", "credentialName": "x", "authType": "api_key"}
	wantEnvelopeError(t, a.do("POST", "/api/v1/credentials", tok, bad, "Idempotency-Key", "fix-me"), 400, "VALIDATION_FAILED")
	bad["apiKey"] = secret("k_" + randHex(6))
	if r := a.do("POST", "/api/v1/credentials", tok, bad, "Idempotency-Key", "fix-me"); r.Status != 201 {
		t.Fatalf("the key after a refused request: %d %s", r.Status, r.Raw)
	}
}

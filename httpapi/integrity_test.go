package httpapi_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/auth"
	"github.com/credgate/credgate/auth/oidctest"
)

// The scenarios of issue 21 that the HTTP API answers: a denial is the
// only access-denied event, revoked is final for every role, parallel
// creates stop at the tenant's limit, and claims with control characters
// neither reach Vault nor break a write.

// TestOnlyDenialsAreAccessDeniedEvents: 15 reads of credentials that do
// not exist are 15 404s, each one Vault read of the credential, and no
// event; the one refusal that follows is the one event.
func TestOnlyDenialsAreAccessDeniedEvents(t *testing.T) {
	var c clock
	a, _ := replicas(t, &c)
	ten := tenant(t)
	admin := token(t, "alice", ten, "integration_admin")
	viewer := token(t, "vera", ten, "integration_viewer")
	rec := startReceiver(t, 0)
	rec.subscribe(a, admin, credgate.EventAccessDenied)
	a.mustCreate(admin, map[string]any{"id": "zendesk", "name": "Zendesk"})
	before := a.opCount("credential_read")
	for i := range 15 {
		r := a.do("GET", fmt.Sprintf("/api/v1/credentials/zendesk?credentialId=cred-00000000-0000-4000-8000-%012d", i), admin, nil)
		wantEnvelopeError(t, r, 404, "CREDENTIAL_NOT_FOUND")
	}
	if n := a.opCount("credential_read") - before; n != 15 {
		t.Errorf("15 reads of missing credentials made %d Vault reads of them", n)
	}
	wantEnvelopeError(t, a.do("GET", "/api/v1/credentials/zendesk", viewer, nil), 403, "INSUFFICIENT_PERMISSIONS")
	eventually(t, 20*time.Second, "the viewer's refusal announced", func() bool { return len(rec.events(credgate.EventAccessDenied)) > 0 })
	time.Sleep(500 * time.Millisecond)
	got := rec.events(credgate.EventAccessDenied)
	if len(got) != 1 || !strings.HasPrefix(got[0].event.Data.Actor.Email, "vera@") {
		t.Fatalf("%d access_denied events; want only the viewer's", len(got))
	}
	rec.check()
}

// TestRevokedCannotBeBroughtBack: PATCH cannot make a revoked credential
// active again, whatever else it says; its description may still change,
// and its values are served to nobody.
func TestRevokedCannotBeBroughtBack(t *testing.T) {
	a := newAPI(t, apiOptions{})
	tok, _ := adminWithService(t, a, "stripe")
	key := secret("sk_live_" + randHex(8))
	id := a.mustCreateCredential(tok, map[string]any{"integrationId": "stripe", "credentialName": "live", "authType": "api_key", "apiKey": key})["id"].(string)
	wantEnvelope(t, a.do("PATCH", "/api/v1/credentials/"+id, tok, map[string]any{"status": "revoked"}), 200)
	for _, body := range []map[string]any{
		{"status": "active", "revokeAt": nil},
		{"status": "inactive"},
		{"status": "active", "apiKey": secret("sk_live_" + randHex(8))},
	} {
		e := wantEnvelopeError(t, a.do("PATCH", "/api/v1/credentials/"+id, tok, body), 400, "VALIDATION_FAILED")
		if f, _ := e["fields"].(map[string]any); f["status"] == nil {
			t.Fatalf("%v: %v", body, e)
		}
	}
	if got := wantEnvelope(t, a.do("PATCH", "/api/v1/credentials/"+id, tok, map[string]any{"description": "leaked 2026-11-30"}), 200); got["status"] != "revoked" {
		t.Fatalf("a revoked credential described anew: %v", got)
	}
	for _, q := range []string{"", "&version=1"} {
		r := a.do("GET", "/api/v1/credentials/stripe?credentialId="+id+q, tok, nil)
		wantEnvelopeError(t, r, 404, "CREDENTIAL_NOT_FOUND")
		noSecrets(t, r, key)
	}
	if r := a.do("GET", "/api/v1/credentials/"+id+"/versions", tok, nil); r.Status != 200 {
		t.Fatalf("the history of a revoked credential: %d", r.Status)
	}
}

// TestParallelWebhookCreatesStopAtTwenty: 40 creates at once through two
// replicas make 20 subscriptions.
func TestParallelWebhookCreatesStopAtTwenty(t *testing.T) {
	var c clock
	a, b := replicas(t, &c)
	admin := token(t, "alice", tenant(t), "integration_admin")
	var mu sync.Mutex
	status := map[int]int{}
	var wg sync.WaitGroup
	for i := range 40 {
		api := a
		if i%2 == 1 {
			api = b
		}
		wg.Go(func() {
			r := api.do("POST", "/api/v1/webhooks", admin, map[string]any{"url": fmt.Sprintf("https://hooks.example.com/%d", i), "eventTypes": []string{credgate.EventCreated}})
			mu.Lock()
			status[r.Status]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if status[201] != credgate.MaxWebhooks || status[400] != 40-credgate.MaxWebhooks {
		t.Fatalf("answers by status %v; want %d 201s and the rest 400", status, credgate.MaxWebhooks)
	}
	if r := a.do("GET", "/api/v1/webhooks", admin, nil); len(r.Body["data"].([]any)) != credgate.MaxWebhooks {
		t.Fatalf("%d webhooks kept", len(r.Body["data"].([]any)))
	}
}

// TestEscapesInClaimsDoNotBreakWrites: a caller whose e-mail and name carry
// terminal escapes and control characters creates and reads as anyone
// does, and the record names it without them.
func TestEscapesInClaimsDoNotBreakWrites(t *testing.T) {
	iss := oidctest.Start(t)
	ten := tenant(t)
	a := newAPI(t, apiOptions{issuers: []auth.IssuerConfig{{Name: "test", URL: iss.URL, Audiences: []string{iss.Audience}, Tenants: []string{ten}}}})
	claims := iss.Claims("mallory", ten, "integration_admin")
	claims["email"] = "x\x1b]0;PWNED\a\x1b[2J\x1b[1;31mFAKE\tCOLUMN\nNEWROW@evil.example"
	claims["name"] = "Mal\x00lory\x1b]52;c;cHduZWQ=\a"
	tok := iss.Sign(t, claims)
	a.mustCreate(tok, map[string]any{"id": "jira", "name": "Jira"})
	got := a.mustCreateCredential(tok, map[string]any{"integrationId": "jira", "credentialName": "bot", "authType": "bearer", "accessToken": secret("jt_" + randHex(8))})
	by, _ := got["createdBy"].(map[string]any)
	if email, _ := by["email"].(string); email != "x]0;PWNED[2J[1;31mFAKECOLUMNNEWROW@evil.example" {
		t.Fatalf("createdBy %v", got["createdBy"])
	}
	wantEnvelope(t, a.do("GET", "/api/v1/credentials/jira", tok, nil), 200)

	// credgate's own subject is nobody's.
	wantEnvelopeError(t, a.do("GET", "/api/v1/credentials/jira", iss.Sign(t, iss.Claims(credgate.SystemSubject, ten, "integration_admin")), nil), 401, "UNAUTHORIZED")
}

// TestDeleteWithoutIfMatchOutlastsConcurrentPatches: a DELETE that names
// no version is not in conflict with anyone: racing PATCHes of the same
// credential (and service) it retries, and it is 200, never 409.
func TestDeleteWithoutIfMatchOutlastsConcurrentPatches(t *testing.T) {
	a := newAPI(t, apiOptions{})
	tok, _ := adminWithService(t, a, "jira")
	for round := range 3 {
		id := a.mustCreateCredential(tok, map[string]any{"integrationId": "jira", "credentialName": fmt.Sprintf("bot-%d", round), "authType": "bearer", "accessToken": secret("jt_" + randHex(8))})["id"].(string)
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				a.do("PATCH", "/api/v1/credentials/"+id, tok, map[string]any{"description": fmt.Sprintf("edit %d", i)})
			})
		}
		r := a.do("DELETE", "/api/v1/credentials/"+id, tok, nil)
		wg.Wait()
		if r.Status != 200 {
			t.Fatalf("round %d: DELETE racing PATCHes: %d %s", round, r.Status, r.Raw)
		}
		wantEnvelopeError(t, a.do("GET", "/api/v1/credentials/jira?credentialId="+id, tok, nil), 404, "CREDENTIAL_NOT_FOUND")
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			a.do("PATCH", "/api/v1/services/jira", tok, map[string]any{"description": fmt.Sprintf("edit %d", i)})
		})
	}
	r := a.do("DELETE", "/api/v1/services/jira", tok, nil)
	wg.Wait()
	if r.Status != 204 && r.Status != 200 {
		t.Fatalf("service DELETE racing PATCHes: %d %s", r.Status, r.Raw)
	}
}

package httpapi_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/credgate/credgate"
)

// Every write is validated whole before anything is written, and every
// write route honours If-Match.

func TestPutServiceWithBadCredentialsWritesNothing(t *testing.T) {
	a := newAPI(t, apiOptions{})
	tok, _ := adminWithService(t, a, "stripe")
	key := secret("sk_" + randHex(10))
	put := a.do("PUT", "/api/v1/services/stripe/credentials", tok, map[string]any{
		"credentials": map[string]any{"api_key": key}, "metadata": map[string]any{"expires_at": "2031-01-01T00:00:00Z"},
	})
	if put.Status != 200 {
		t.Fatalf("put credentials: %d %s", put.Status, put.Raw)
	}
	svc := a.do("GET", "/api/v1/services/stripe", tok, nil)
	etag := svc.Header.Get("ETag")

	bad := []map[string]any{
		{"credentials": map[string]any{"api_key": ""}},                         // empty value
		{"credentials": map[string]any{"bad key!": "x"}},                       // key syntax
		{"credentials": map[string]any{"api_key": 42}},                         // not a string
		{"credentials": map[string]any{}},                                      // nothing to set
		{"credentials": map[string]any{"api_key": "x"}, "base_url": "ftp://x"}, // the service part
	}
	for _, creds := range bad {
		body := map[string]any{"name": "Stripe renamed", "description": "changed"}
		for k, v := range creds {
			body[k] = v
		}
		r := a.do("PUT", "/api/v1/services/stripe", tok, body, "If-Match", etag)
		wantError(t, r, 400, "VALIDATION_FAILED")
	}
	after := a.do("GET", "/api/v1/services/stripe", tok, nil)
	if after.Header.Get("ETag") != etag || after.str("name") != "Service stripe" || after.str("description") != "" {
		t.Fatalf("a refused PUT changed the service: %s %s", after.Header.Get("ETag"), after.Raw)
	}
	creds := a.do("GET", "/api/v1/services/stripe/credentials", tok, nil)
	if creds.Header.Get("ETag") != `"1"` || creds.Body["credentials"].(map[string]any)["api_key"] != key {
		t.Fatalf("a refused PUT changed the credentials: %s", creds.Raw)
	}

	// The same If-Match then works, and covers the credentials: they are
	// written with the service, and their expiry is kept.
	key2 := secret("sk_" + randHex(10))
	ok := a.do("PUT", "/api/v1/services/stripe", tok, map[string]any{"name": "Stripe renamed", "credentials": map[string]any{"api_key": key2}}, "If-Match", etag)
	if ok.Status != 200 || ok.str("name") != "Stripe renamed" {
		t.Fatalf("PUT with the same If-Match: %d %s", ok.Status, ok.Raw)
	}
	creds = a.do("GET", "/api/v1/services/stripe/credentials", tok, nil)
	if creds.Body["credentials"].(map[string]any)["api_key"] != key2 || creds.Body["metadata"].(map[string]any)["expires_at"] != "2031-01-01T00:00:00Z" {
		t.Fatalf("credentials after PUT of the service: %s", creds.Raw)
	}
	// A stale If-Match writes neither record.
	wantError(t, a.do("PUT", "/api/v1/services/stripe", tok, map[string]any{"name": "Lost", "credentials": map[string]any{"api_key": "lost"}}, "If-Match", etag), 409, "VERSION_CONFLICT")
	if c := a.do("GET", "/api/v1/services/stripe/credentials", tok, nil); c.Body["credentials"].(map[string]any)["api_key"] != key2 || c.Header.Get("ETag") != `"2"` {
		t.Fatalf("a stale PUT changed the credentials: %s", c.Raw)
	}
	// Repeating the PUT that succeeded (its answer lost, say) with its
	// If-Match is not a conflict: the change is in the record already.
	again := a.do("PUT", "/api/v1/services/stripe", tok, map[string]any{"name": "Stripe renamed", "credentials": map[string]any{"api_key": key2}}, "If-Match", etag)
	if again.Status != 200 || again.Header.Get("ETag") != ok.Header.Get("ETag") {
		t.Fatalf("repeating an applied PUT: %d %s", again.Status, again.Raw)
	}
}

func TestServiceCredentialsCanBePutBackAsRead(t *testing.T) {
	a := newAPI(t, apiOptions{})
	tok, _ := adminWithService(t, a, "servicenow")
	csec := secret("csec-" + randHex(10))
	a.do("PUT", "/api/v1/services/servicenow/credentials", tok, map[string]any{"credentials": map[string]any{"client_id": "c1", "client_secret": csec}})

	got := a.do("GET", "/api/v1/services/servicenow/credentials", tok, nil)
	body := got.Body
	csec2 := secret("csec-" + randHex(10))
	body["credentials"].(map[string]any)["client_secret"] = csec2
	body["credentials"].(map[string]any)["environment"] = "production"
	put := a.do("PUT", "/api/v1/services/servicenow/credentials", tok, body, "If-Match", got.Header.Get("ETag"))
	if put.Status != 200 {
		t.Fatalf("PUT of what GET answered, modified: %d %s", put.Status, put.Raw)
	}
	want := map[string]any{"client_id": "c1", "client_secret": csec2, "environment": "production"}
	if diff := cmp.Diff(want, a.do("GET", "/api/v1/services/servicenow/credentials", tok, nil).Body["credentials"]); diff != "" {
		t.Fatalf("credentials (-want +got):\n%s", diff)
	}

	// The read-only fields are checked, not trusted.
	other := cloneBody(body)
	other["service_id"] = "another"
	wantError(t, a.do("PUT", "/api/v1/services/servicenow/credentials", tok, other), 400, "VALIDATION_FAILED")
	stale := cloneBody(body)
	stale["credential_id"] = "cred-00000000-0000-4000-8000-000000000000"
	wantError(t, a.do("PUT", "/api/v1/services/servicenow/credentials", tok, stale), 409, "VERSION_CONFLICT")
	// The mask of a write answer is never stored as a value.
	masked := cloneBody(body)
	masked["credentials"] = put.Body["credentials"]
	wantError(t, a.do("PUT", "/api/v1/services/servicenow/credentials", tok, masked), 400, "VALIDATION_FAILED")
}

func cloneBody(m map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

func TestDeletedServicesCredentialsAreNeverServedNorInherited(t *testing.T) {
	a := newAPI(t, apiOptions{})
	tok, _ := adminWithService(t, a, "twilio")
	id := a.mustCreateCredential(tok, map[string]any{"integrationId": "twilio", "credentialName": "sms", "authType": "api_key", "apiKey": secret("AC" + randHex(8))})["id"].(string)

	r := a.do("DELETE", "/api/v1/services/twilio", tok, nil, "If-Match", `"2"`)
	wantError(t, r, 409, "VERSION_CONFLICT")
	if r := a.do("GET", "/api/v1/credentials/twilio?credentialId="+id, tok, nil); r.Status != 200 {
		t.Fatalf("a refused DELETE removed the credential: %d", r.Status)
	}
	if r := a.do("DELETE", "/api/v1/services/twilio", tok, nil, "If-Match", `"1"`); r.Status != 204 {
		t.Fatalf("delete: %d %s", r.Status, r.Raw)
	}
	wantEnvelopeError(t, a.do("GET", "/api/v1/credentials/twilio?credentialId="+id, tok, nil), 404, "CREDENTIAL_NOT_FOUND")
	wantEnvelopeError(t, a.do("GET", "/api/v1/credentials/twilio", tok, nil), 404, "CREDENTIAL_NOT_FOUND")
	wantEnvelopeError(t, a.do("GET", "/api/v1/credentials/"+id+"/versions", tok, nil), 404, "CREDENTIAL_NOT_FOUND")
	wantError(t, a.do("DELETE", "/api/v1/services/twilio", tok, nil), 404, "SERVICE_NOT_FOUND")

	a.mustCreate(tok, map[string]any{"id": "twilio", "name": "Twilio again"})
	wantError(t, a.do("GET", "/api/v1/services/twilio/credentials", tok, nil), 404, "CREDENTIALS_NOT_FOUND")
	wantEnvelopeError(t, a.do("GET", "/api/v1/credentials/twilio?credentialId="+id, tok, nil), 404, "CREDENTIAL_NOT_FOUND")
	if items, _ := a.do("GET", "/api/v1/credentials?integrationId=twilio", tok, nil).Body["data"].([]any); len(items) != 0 {
		t.Fatalf("the new service lists the old one's credentials: %v", items)
	}
}

func TestIfMatchOnCredentialDeleteAndRotate(t *testing.T) {
	a := newAPI(t, apiOptions{})
	tok, _ := adminWithService(t, a, "aws")
	key := secret("AKIA" + randHex(8))
	id := a.mustCreateCredential(tok, map[string]any{"integrationId": "aws", "credentialName": "deploy", "authType": "api_key", "apiKey": key})["id"].(string)
	a.do("PATCH", "/api/v1/credentials/"+id, tok, map[string]any{"description": "v2"})

	e := wantEnvelopeError(t, a.do("POST", "/api/v1/credentials/"+id+"/rotate", tok, map[string]any{"generate": true}, "If-Match", `"1"`), 409, "VERSION_CONFLICT")
	if e["currentVersion"] != float64(2) {
		t.Fatalf("stale rotate: %v", e)
	}
	if got := wantEnvelope(t, a.do("GET", "/api/v1/credentials/aws", tok, nil), 200); got["version"] != float64(2) || got["apiKey"] != key {
		t.Fatalf("a stale rotate changed the credential: %v", got["version"])
	}
	if a.opCount("random") != 0 {
		t.Fatalf("a stale rotate had Vault generate %d values", a.opCount("random"))
	}
	rot := a.do("POST", "/api/v1/credentials/"+id+"/rotate", tok, map[string]any{"generate": true}, "If-Match", `"2"`)
	if wantEnvelope(t, rot, 200)["version"] != float64(3) || rot.Header.Get("ETag") != `"3"` {
		t.Fatalf("rotate with If-Match: %s", rot.Raw)
	}
	secret(wantEnvelope(t, a.do("GET", "/api/v1/credentials/aws", tok, nil), 200)["apiKey"].(string))

	wantEnvelopeError(t, a.do("DELETE", "/api/v1/credentials/"+id, tok, nil, "If-Match", `"2"`), 409, "VERSION_CONFLICT")
	wantEnvelope(t, a.do("GET", "/api/v1/credentials/aws?credentialId="+id, tok, nil), 200)
	wantEnvelope(t, a.do("DELETE", "/api/v1/credentials/"+id, tok, nil, "If-Match", `"3"`), 200)
	wantEnvelopeError(t, a.do("GET", "/api/v1/credentials/aws?credentialId="+id, tok, nil), 404, "CREDENTIAL_NOT_FOUND")
}

// TestEarlierVersionsFollowTheCurrentStatus: reading an earlier version by
// number served the values of a credential revoked since.
func TestEarlierVersionsFollowTheCurrentStatus(t *testing.T) {
	a := newAPI(t, apiOptions{})
	tok, _ := adminWithService(t, a, "github")
	id := a.mustCreateCredential(tok, map[string]any{"integrationId": "github", "credentialName": "ci", "authType": "bearer", "accessToken": secret("ghp_" + randHex(8))})["id"].(string)
	wantEnvelope(t, a.do("POST", "/api/v1/credentials/"+id+"/rotate", tok, map[string]any{"accessToken": secret("ghp_" + randHex(8))}), 200)
	if got := wantEnvelope(t, a.do("GET", "/api/v1/credentials/github?credentialId="+id+"&version=1", tok, nil), 200); got["version"] != float64(1) {
		t.Fatalf("version 1 while active: %v", got)
	}
	for _, status := range []string{"inactive", "revoked"} { // revoked last: it is final
		wantEnvelope(t, a.do("PATCH", "/api/v1/credentials/"+id, tok, map[string]any{"status": status}), 200)
		for _, v := range []string{"1", "2"} {
			r := a.do("GET", "/api/v1/credentials/github?credentialId="+id+"&version="+v, tok, nil)
			if e := wantEnvelopeError(t, r, 404, "CREDENTIAL_NOT_FOUND"); e["status"] != status {
				t.Fatalf("version %s of a %s credential: %s", v, status, r.Raw)
			}
			noSecrets(t, r, "ghp_")
		}
	}
}

// TestEveryRecordFollowsOneRuleOfConditionalWrites: services, credentials
// and webhooks change through the store's one read-modify-write, so the
// same repeated PATCH answers alike on each: a change already in the
// record succeeds with a stale If-Match and writes nothing; another change
// with that If-Match is 409; a change that changes nothing keeps the
// version; concurrent changes without If-Match all land.
func TestEveryRecordFollowsOneRuleOfConditionalWrites(t *testing.T) {
	a := newAPI(t, apiOptions{})
	tok, _ := adminWithService(t, a, "crm")
	cred := a.mustCreateCredential(tok, map[string]any{"integrationId": "crm", "credentialName": "k", "authType": "api_key", "apiKey": secret("k-" + randHex(6))})["id"].(string)
	r := a.do("POST", "/api/v1/webhooks", tok, map[string]any{"url": "https://hooks.example.invalid/x", "eventTypes": []string{"credential.rotated"}})
	hook := wantEnvelope(t, r, 201)["id"].(string)
	secret(r.data()["secret"].(string))
	version := func(r reply) any {
		if d := r.data(); d != nil {
			return d["version"]
		}
		return r.Body["version"]
	}
	records := []struct {
		name, path   string
		change, more func(i int) map[string]any
	}{
		{"service", "/api/v1/services/crm",
			func(int) map[string]any { return map[string]any{"description": "changed once"} },
			func(i int) map[string]any { return map[string]any{"metadata": map[string]any{fmt.Sprint("k", i): i}} }},
		{"credential", "/api/v1/credentials/" + cred,
			func(int) map[string]any { return map[string]any{"description": "changed once"} },
			func(i int) map[string]any {
				return map[string]any{"customFields": map[string]any{fmt.Sprint("k", i): secret(randHex(6))}}
			}},
		{"webhook", "/api/v1/webhooks/" + hook,
			func(int) map[string]any { return map[string]any{"description": "changed once"} },
			nil},
	}
	for _, rec := range records {
		t.Run(rec.name, func(t *testing.T) {
			first := a.do("PATCH", rec.path, tok, rec.change(0), "If-Match", `"1"`)
			if first.Status != 200 || version(first) != float64(2) {
				t.Fatalf("first PATCH: %d %s", first.Status, first.Raw)
			}
			again := a.do("PATCH", rec.path, tok, rec.change(0), "If-Match", `"1"`)
			if again.Status != 200 || version(again) != float64(2) {
				t.Fatalf("the same PATCH repeated with its stale If-Match: %d %s; want 200 at version 2", again.Status, again.Raw)
			}
			other := a.do("PATCH", rec.path, tok, map[string]any{"description": "another change"}, "If-Match", `"1"`)
			if other.Status != 409 {
				t.Fatalf("another change with a stale If-Match: %d %s", other.Status, other.Raw)
			}
			none := a.do("PATCH", rec.path, tok, map[string]any{}, "If-Match", `"2"`)
			if none.Status != 200 || version(none) != float64(2) {
				t.Fatalf("an empty change: %d %s; want 200 at version 2", none.Status, none.Raw)
			}
			if rec.more == nil {
				return
			}
			var wg sync.WaitGroup
			for i := range 6 {
				wg.Go(func() {
					if r := a.do("PATCH", rec.path, tok, rec.more(i)); r.Status != 200 {
						t.Errorf("concurrent PATCH %d: %d %s", i, r.Status, r.Raw)
					}
				})
			}
			wg.Wait()
			got, _ := a.do("GET", "/api/v1/services/crm", tok, nil).Body["metadata"].(map[string]any)
			if rec.name == "credential" {
				got, _ = a.do("GET", "/api/v1/credentials/crm?credentialId="+cred, tok, nil).data()["customFields"].(map[string]any)
			}
			if len(got) != 6 {
				t.Fatalf("after 6 concurrent PATCHes, each adding its own key: %v; want all 6 keys", got)
			}
		})
	}
}

// TestAWriteThatChangesNothingAnnouncesNothing: the same services-family
// PUT repeated, or a rotation to the values a credential has, writes no
// version and sends no event; the first PUT is a creation and a changed one
// a rotation.
func TestAWriteThatChangesNothingAnnouncesNothing(t *testing.T) {
	a, _ := replicas(t, &clock{})
	tok, _ := adminWithService(t, a, "crm")
	rec := startReceiver(t, 0)
	rec.subscribe(a, tok, credgate.EventCreated, credgate.EventRotated)
	put := func(key string) reply {
		return a.do("PUT", "/api/v1/services/crm/credentials", tok, map[string]any{"credentials": map[string]string{"api_key": key}})
	}
	k1, k2 := secret("k1-"+randHex(6)), secret("k2-"+randHex(6))
	for i, want := range []struct {
		key     string
		version float64
	}{{k1, 1}, {k1, 1}, {k2, 2}} {
		if r := put(want.key); r.Status != 200 || r.Body["version"] != want.version {
			t.Fatalf("PUT %d: %d %s; want version %v", i+1, r.Status, r.Raw, want.version)
		}
	}
	id := a.do("GET", "/api/v1/services/crm/credentials", tok, nil).str("credential_id")
	if r := wantEnvelope(t, a.do("POST", "/api/v1/credentials/"+id+"/rotate", tok, map[string]any{"apiKey": k2}), 200); r["version"] != float64(2) {
		t.Fatalf("a rotation to the values it has: version %v", r["version"])
	}
	time.Sleep(time.Second) // deliveries of anything still on its way
	eventually(t, 10*time.Second, "one created and one rotated", func() bool {
		return len(rec.events(credgate.EventCreated)) == 1 && len(rec.events(credgate.EventRotated)) == 1
	})
	time.Sleep(500 * time.Millisecond)
	if c, r := len(rec.events(credgate.EventCreated)), len(rec.events(credgate.EventRotated)); c != 1 || r != 1 {
		t.Fatalf("%d created and %d rotated events; want one of each", c, r)
	}
	rec.check()
}

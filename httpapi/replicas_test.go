package httpapi_test

import (
	"testing"
	"time"
)

// Two credgate instances over one Vault, as two replicas behind a balancer.
// Each remembers, for a bounded time, which credential a service serves;
// the values read from Vault prove their own status, so what one replica
// revokes, deactivates or deletes the other never serves, and what one
// creates the other serves within the bound.

const replicaTTL = 2 * time.Second

func TestSteadyStateReadsAreOneVaultCall(t *testing.T) {
	a := newAPI(t, apiOptions{noAccess: true})
	tok, _ := adminWithService(t, a, "stripe")
	id := a.mustCreateCredential(tok, map[string]any{"integrationId": "stripe", "credentialName": "live", "authType": "api_key", "apiKey": secret("sk_" + randHex(8))})["id"].(string)
	for _, path := range []string{"/api/v1/credentials/stripe", "/api/v1/services/stripe/credentials", "/api/v1/credentials/stripe?credentialId=" + id} {
		if r := a.do("GET", path, tok, nil); r.Status != 200 {
			t.Fatalf("%s: %d %s", path, r.Status, r.Raw)
		}
		before := a.vaultCalls.Load()
		for range 5 {
			if r := a.do("GET", path, tok, nil); r.Status != 200 {
				t.Fatalf("%s: %d", path, r.Status)
			}
		}
		if n := a.vaultCalls.Load() - before; n != 5 {
			t.Errorf("GET %s: %d Vault calls for 5 reads; want 5", path, n)
		}
	}
}

func TestReplicasNeverServeWhatAnotherRevoked(t *testing.T) {
	a := newAPI(t, apiOptions{noAccess: true, serviceCacheTTL: replicaTTL})
	b := newAPI(t, apiOptions{noAccess: true, serviceCacheTTL: replicaTTL})
	tok, _ := adminWithService(t, a, "stripe")
	older := a.mustCreateCredential(tok, map[string]any{"integrationId": "stripe", "credentialName": "older", "authType": "api_key", "apiKey": secret("sk_" + randHex(8))})["id"].(string)
	time.Sleep(1100 * time.Millisecond) // createdAt has second resolution
	newer := a.mustCreateCredential(tok, map[string]any{"integrationId": "stripe", "credentialName": "newer", "authType": "api_key", "apiKey": secret("sk_" + randHex(8))})["id"].(string)
	readOn := func(api *testAPI, path string) reply { return api.do("GET", path, tok, nil) }
	if got := wantEnvelope(t, readOn(b, "/api/v1/credentials/stripe"), 200); got["id"] != newer {
		t.Fatalf("B serves %v; want %s", got["id"], newer)
	}
	wantEnvelope(t, readOn(b, "/api/v1/credentials/stripe?credentialId="+newer), 200)

	// Revoked on A: B, which remembers it as the primary, serves the older
	// one at once, and refuses the revoked one by id.
	wantEnvelope(t, a.do("PATCH", "/api/v1/credentials/"+newer, tok, map[string]any{"status": "revoked"}), 200)
	if got := wantEnvelope(t, readOn(b, "/api/v1/credentials/stripe"), 200); got["id"] != older {
		t.Fatalf("after A revoked %s, B serves %v", newer, got["id"])
	}
	if e := wantEnvelopeError(t, readOn(b, "/api/v1/credentials/stripe?credentialId="+newer), 404, "CREDENTIAL_NOT_FOUND"); e["status"] != "revoked" {
		t.Fatalf("B by id: %v", e)
	}
	if r := readOn(b, "/api/v1/services/stripe/credentials"); r.Status != 200 || r.str("credential_id") != older {
		t.Fatalf("B's services family: %d %s", r.Status, r.Raw)
	}

	// Deactivated, then deleted on A: B never serves them.
	wantEnvelope(t, a.do("PATCH", "/api/v1/credentials/"+older, tok, map[string]any{"status": "inactive"}), 200)
	wantEnvelopeError(t, readOn(b, "/api/v1/credentials/stripe"), 404, "CREDENTIAL_NOT_FOUND")
	wantEnvelope(t, a.do("PATCH", "/api/v1/credentials/"+older, tok, map[string]any{"status": "active"}), 200)
	wantEnvelope(t, readOn(b, "/api/v1/credentials/stripe"), 200)
	wantEnvelope(t, a.do("DELETE", "/api/v1/credentials/"+older, tok, nil), 200)
	wantEnvelopeError(t, readOn(b, "/api/v1/credentials/stripe?credentialId="+older), 404, "CREDENTIAL_NOT_FOUND")
	wantEnvelopeError(t, readOn(b, "/api/v1/credentials/stripe"), 404, "CREDENTIAL_NOT_FOUND")
}

func TestReplicasServeANewCredentialWithinTheBound(t *testing.T) {
	a := newAPI(t, apiOptions{noAccess: true, serviceCacheTTL: replicaTTL})
	b := newAPI(t, apiOptions{noAccess: true, serviceCacheTTL: replicaTTL})
	tok, _ := adminWithService(t, a, "twilio")
	first := a.mustCreateCredential(tok, map[string]any{"integrationId": "twilio", "credentialName": "first", "authType": "api_key", "apiKey": secret("AC" + randHex(8))})["id"].(string)
	if got := wantEnvelope(t, b.do("GET", "/api/v1/credentials/twilio", tok, nil), 200); got["id"] != first {
		t.Fatalf("B: %v", got["id"])
	}
	time.Sleep(1100 * time.Millisecond)
	second := a.mustCreateCredential(tok, map[string]any{"integrationId": "twilio", "credentialName": "second", "authType": "api_key", "apiKey": secret("AC" + randHex(8))})["id"].(string)
	created := time.Now()
	// A serves it at once; B remembers the first for at most the bound.
	if got := wantEnvelope(t, a.do("GET", "/api/v1/credentials/twilio", tok, nil), 200); got["id"] != second {
		t.Fatalf("A: %v", got["id"])
	}
	sawFirst := false
	for {
		got := wantEnvelope(t, b.do("GET", "/api/v1/credentials/twilio", tok, nil), 200)
		if got["id"] == second {
			break
		}
		sawFirst = true
		if time.Since(created) > replicaTTL+time.Second {
			t.Fatalf("B still serves %v %s after the new one was created (bound %s)", got["id"], time.Since(created), replicaTTL)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !sawFirst {
		t.Log("B served the new credential at once (its memory had just expired)")
	}
}

func TestReplicasAnswer404ForAServiceAnotherDeleted(t *testing.T) {
	a := newAPI(t, apiOptions{noAccess: true, serviceCacheTTL: replicaTTL})
	b := newAPI(t, apiOptions{noAccess: true, serviceCacheTTL: replicaTTL})
	tok, _ := adminWithService(t, a, "okta")
	id := a.mustCreateCredential(tok, map[string]any{"integrationId": "okta", "credentialName": "sso", "authType": "bearer", "accessToken": secret("00" + randHex(8))})["id"].(string)
	for _, path := range []string{"/api/v1/credentials/okta", "/api/v1/services/okta/credentials", "/api/v1/credentials/okta?credentialId=" + id} {
		if r := b.do("GET", path, tok, nil); r.Status != 200 {
			t.Fatalf("B %s: %d", path, r.Status)
		}
	}
	if r := a.do("DELETE", "/api/v1/services/okta", tok, nil); r.Status != 204 {
		t.Fatalf("delete on A: %d %s", r.Status, r.Raw)
	}
	wantEnvelopeError(t, b.do("GET", "/api/v1/credentials/okta", tok, nil), 404, "CREDENTIAL_NOT_FOUND")
	wantEnvelopeError(t, b.do("GET", "/api/v1/credentials/okta?credentialId="+id, tok, nil), 404, "CREDENTIAL_NOT_FOUND")
	wantError(t, b.do("GET", "/api/v1/services/okta/credentials", tok, nil), 404, "SERVICE_NOT_FOUND")
	wantError(t, b.do("GET", "/api/v1/services/okta", tok, nil), 404, "SERVICE_NOT_FOUND")
}

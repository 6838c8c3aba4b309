package httpapi_test

import (
	"context"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/credgate/credgate/outbound/outboundtest"
)

// seed002 is seed 002's example credential, verbatim: what a client that
// migrates it from another system sends, read-only fields included.
const seed002 = `{
"id": "cred-550e8400-e29b-41d4-a716-446655440001",
"integrationId": "servicenow-prod-001",
"credentialName": "ServiceNow Production",
"description": "OAuth credentials for ServiceNow ITSM production instance",
"authType": "oauth2_bearer",
"scopes": [
"read",
"write"
],
"tokenEndpoint": "https://instance.service-now.com/oauth_token.do",
"authorizationEndpoint": "https://instance.service-now.com/oauth_auth.do",
"accessToken": "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9...",
"refreshToken": "dGhpcyBpcyBhIHJlZnJlc2ggdG9rZW4...",
"metadata": {
"environment": "production",
"instanceUrl": "https://instance.service-now.com",
"version": "tokyo"
},
"status": "active",
"expiresAt": "2025-07-10T14:15:00.000Z",
"createdAt": "2025-07-10T13:15:00.000Z",
"createdBy": {
"id": "1876278a-3634-4833-b73e-1536d806e117",
"name": "Deepak purohit",
"email": "deepak.purohit@rezolve.ai"
},
"lastAccessedAt": "2025-07-10T13:45:00.000Z",
"tenant": {
"id": "{{tenant_id}}",
"name": "{{tenant_name}}"
}
}`

// resolves reports whether this machine resolves host now.
func resolves(host string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupHost(ctx, host)
	return err == nil && len(addrs) > 0
}

func warnings(r reply) []string {
	var out []string
	list, _ := r.Body["warnings"].([]any)
	for _, w := range list {
		out = append(out, w.(string))
	}
	return out
}

// TestSeed002ExampleIsStoredWithoutDNS: seed 002's credential, sent
// verbatim, is stored under its own id and read back with the seed's curl,
// whether or not this machine resolves the provider's name (the write does
// not depend on DNS; the answer warns when the name does not resolve).
// Its refresh then fails visibly, naming why; the id cannot be taken twice.
func TestSeed002ExampleIsStoredWithoutDNS(t *testing.T) {
	a := newAPI(t, apiOptions{outboundAllow: []string{}})
	tok, _ := adminWithService(t, a, "servicenow-prod-001")
	secret("eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9...")
	secret("dGhpcyBpcyBhIHJlZnJlc2ggdG9rZW4...")
	r := a.do("POST", "/api/v1/credentials", tok, seed002)
	created := wantEnvelope(t, r, 201)
	const id = "cred-550e8400-e29b-41d4-a716-446655440001"
	if created["id"] != id {
		t.Fatalf("stored as %v; want the client's id %s", created["id"], id)
	}
	wantWarning := "tokenEndpoint names a host that does not resolve from credgate now; it is kept, and calls to it fail until it resolves"
	if unresolved := !resolves("instance.service-now.com"); unresolved != slices.Contains(warnings(r), wantWarning) {
		t.Fatalf("the name resolves here: %v; the answer warns %q", !unresolved, warnings(r))
	}
	if loc := r.Header.Get("Location"); loc != "/api/v1/credentials/servicenow-prod-001?credentialId="+id {
		t.Fatalf("Location %q", loc)
	}

	// The seed's curl, with the seed's headers.
	got := wantEnvelope(t, a.do("GET", "/api/v1/credentials/servicenow-prod-001?credentialId="+id, tok, nil, "accept", "application/json"), 200)
	for k, want := range map[string]any{
		"id": id, "integrationId": "servicenow-prod-001", "credentialName": "ServiceNow Production",
		"authType": "oauth2_bearer", "tokenEndpoint": "https://instance.service-now.com/oauth_token.do",
		"authorizationEndpoint": "https://instance.service-now.com/oauth_auth.do",
		"accessToken":           "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9...", "refreshToken": "dGhpcyBpcyBhIHJlZnJlc2ggdG9rZW4...",
		"expiresAt": "2025-07-10T14:15:00Z", "status": "expired", // past its expiresAt: served, marked
	} {
		if got[k] != want {
			t.Errorf("%s = %v; want %v", k, got[k], want)
		}
	}
	if md := got["metadata"].(map[string]any); md["instanceUrl"] != "https://instance.service-now.com" || md["version"] != "tokyo" {
		t.Errorf("metadata %v", md)
	}
	if by := got["createdBy"].(map[string]any); by["email"] == "deepak.purohit@rezolve.ai" {
		t.Errorf("createdBy was taken from the body: %v", by)
	}

	// The same id again is a conflict, not a second credential.
	wantEnvelopeError(t, a.do("POST", "/api/v1/credentials", tok, seed002), 409, "CREDENTIAL_ALREADY_EXISTS")
	bad := strings.Replace(seed002, `"cred-550e8400-e29b-41d4-a716-446655440001"`, `"not-an-id"`, 1)
	if e := wantEnvelopeError(t, a.do("POST", "/api/v1/credentials", tok, bad), 400, "VALIDATION_FAILED"); e["fields"].(map[string]any)["id"] == nil {
		t.Fatalf("a malformed id: %v", e)
	}
	// A write to the credential may send its id back, not another's.
	if e := wantEnvelopeError(t, a.do("PATCH", "/api/v1/credentials/"+id, tok, map[string]any{"id": "cred-550e8400-e29b-41d4-a716-446655440002", "description": "x"}), 400, "VALIDATION_FAILED"); e["fields"].(map[string]any)["id"] == nil {
		t.Fatalf("another id in a PATCH: %v", e)
	}
	wantEnvelope(t, a.do("PATCH", "/api/v1/credentials/"+id, tok, map[string]any{"id": id, "description": "x"}), 200)

	if !resolves("instance.service-now.com") {
		// Stored, but not callable: the refresh says why, and writes nothing.
		e := wantEnvelopeError(t, a.do("POST", "/api/v1/credentials/"+id+"/rotate", tok, nil), 502, "UPSTREAM_ERROR")
		if e["details"] != "the token endpoint names a host that does not resolve; nothing was changed" {
			t.Fatalf("a refresh toward an unresolved name: %v", e)
		}
	}
}

// TestTokenEndpointsAreCheckedByRuleNotByResolution: literal inward
// addresses and names that resolve inward are still refused when written,
// and the refusal never says what a name resolved to; a name that does not
// resolve is kept with a warning.
func TestTokenEndpointsAreCheckedByRuleNotByResolution(t *testing.T) {
	a := newAPI(t, apiOptions{outboundAllow: []string{}})
	tok, _ := adminWithService(t, a, "crm")
	create := func(endpoint string) reply {
		return a.do("POST", "/api/v1/credentials", tok, map[string]any{
			"integrationId": "crm", "credentialName": "oauth " + randHex(3), "authType": "oauth2_bearer",
			"accessToken": "at", "refreshToken": secret("rt-" + randHex(6)), "tokenEndpoint": endpoint,
		})
	}
	e := wantEnvelopeError(t, create("https://localhost:8443/token"), 400, "VALIDATION_FAILED")
	msg := e["fields"].(map[string]any)["tokenEndpoint"].(string)
	if !strings.Contains(msg, "not public") || !strings.Contains(msg, "outbound.allow") || strings.Contains(msg, "127.0.0.1") {
		t.Fatalf("a name that resolves inward: %q", msg)
	}
	r := create("https://idp.example.invalid/token")
	wantEnvelope(t, r, 201)
	if !slices.ContainsFunc(warnings(r), func(w string) bool { return strings.HasPrefix(w, "tokenEndpoint names a host that does not resolve") }) {
		t.Fatalf("no warning for a name that does not resolve: %s", r.Raw)
	}
	if w := warnings(create("https://93.184.215.14/token")); len(w) != 0 {
		t.Fatalf("a public address warned: %v", w)
	}
}

// TestWebhookToAnUnresolvedNameIsKeptAndFailsVisibly: the subscription is
// stored with a warning, and each delivery attempt is in its log with why
// it failed.
func TestWebhookToAnUnresolvedNameIsKeptAndFailsVisibly(t *testing.T) {
	a, _ := replicas(t, &clock{}, func(m *monitorSetup) { m.maxAttempts = 2 })
	tok, _ := adminWithService(t, a, "crm")
	r := a.do("POST", "/api/v1/webhooks", tok, map[string]any{"url": "https://hooks.example.invalid/credgate", "eventTypes": []string{"credential.created"}})
	hook := wantEnvelope(t, r, 201)["id"].(string)
	secret(r.Body["data"].(map[string]any)["secret"].(string))
	if w := warnings(r); len(w) != 1 || !strings.HasPrefix(w[0], "url names a host that does not resolve") {
		t.Fatalf("warnings %v", w)
	}
	a.mustCreateCredential(tok, map[string]any{"integrationId": "crm", "credentialName": "k", "authType": "api_key", "apiKey": secret("k-" + randHex(6))})
	var log []any
	eventually(t, 15*time.Second, "two attempts in the delivery log", func() bool {
		r := a.do("GET", "/api/v1/webhooks/"+hook+"/deliveries", tok, nil)
		log, _ = r.Body["data"].([]any)
		return len(log) == 2
	})
	for i, d := range log {
		d := d.(map[string]any)
		if d["error"] != "not sent: the URL names a host that does not resolve" {
			t.Errorf("attempt %d: %v", i, d)
		}
	}
	if last := log[0].(map[string]any); last["status"] != "failed" {
		t.Fatalf("the last attempt: %v", last)
	}
}

// TestTokenRefreshThroughAnEgressProxy: with outbound.proxy, an OAuth2
// provider that credgate's host cannot resolve is reached through a real
// forward proxy on loopback (CONNECT; TLS with the provider end to end):
// the credential is stored without a warning and its refresh succeeds. The
// guard still applies to what the URL names.
func TestTokenRefreshThroughAnEgressProxy(t *testing.T) {
	ts, cas := startTokenServerNamed(t, "idp.provider.test")
	proxy := outboundtest.Start(t, map[string]string{"idp.provider.test": "127.0.0.1"})
	a := newAPI(t, apiOptions{outboundAllow: []string{}, proxy: proxy.URL, rootCAs: cas})
	tok, _ := adminWithService(t, a, "idp")
	first := ts.login(t)
	r := a.do("POST", "/api/v1/credentials", tok, map[string]any{
		"integrationId": "idp", "credentialName": "through the proxy", "authType": "oauth2_bearer",
		"accessToken": first.AccessToken, "refreshToken": first.RefreshToken,
		"clientId": ts.ClientID, "clientSecret": ts.ClientSecret, "tokenEndpoint": ts.URL + "/token",
	})
	id := wantEnvelope(t, r, 201)["id"].(string)
	if w := warnings(r); len(w) != 0 {
		t.Fatalf("the proxy resolves the name, yet: %v", w)
	}
	rotated := wantEnvelope(t, a.do("POST", "/api/v1/credentials/"+id+"/rotate", tok, nil), 200)
	if rotated["version"] != float64(2) {
		t.Fatalf("rotated: %v", rotated)
	}
	fresh := wantEnvelope(t, a.do("GET", "/api/v1/credentials/idp?credentialId="+id, tok, nil), 200)
	if !ts.accepts(t, secret(fresh["accessToken"].(string))) {
		t.Fatal("the refreshed access token is not the provider's")
	}
	if asked := proxy.Asked(); len(asked) != 1 || !strings.HasPrefix(asked[0], "idp.provider.test:") {
		t.Fatalf("the proxy was asked for %v", asked)
	}
	e := wantEnvelopeError(t, a.do("POST", "/api/v1/credentials", tok, map[string]any{
		"integrationId": "idp", "credentialName": "inward", "authType": "oauth2_bearer",
		"accessToken": "at", "refreshToken": "rt", "tokenEndpoint": "https://10.1.2.3/token",
	}), 400, "VALIDATION_FAILED")
	if !strings.Contains(e["fields"].(map[string]any)["tokenEndpoint"].(string), "is 10.1.2.3, a private address") {
		t.Fatalf("a private literal through a proxy: %v", e)
	}
}

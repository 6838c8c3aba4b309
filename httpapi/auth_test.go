package httpapi_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/credgate/credgate/auth"
	"github.com/credgate/credgate/auth/oidctest"
	"github.com/credgate/credgate/policy"
	"github.com/credgate/credgate/vaultstore/vaulttest"
)

func TestBadTokensAre401WithoutVaultCalls(t *testing.T) {
	iss := oidctest.Start(t)
	ten := tenant(t)
	a := newAPI(t, apiOptions{issuers: []auth.IssuerConfig{
		{Name: "vault", URL: s.idp.IssuerURL, Audiences: []string{s.idp.Audience}, Tenants: []string{ten}},
		{Name: "test", URL: iss.URL, Audiences: []string{iss.Audience}, Tenants: []string{ten}},
	}})
	claims := func(edit func(map[string]any)) map[string]any {
		c := iss.Claims("eve", ten, "integration_admin")
		if edit != nil {
			edit(c)
		}
		return c
	}
	good := claims(nil)
	foreign := oidctest.MustKey(t)
	tests := []struct {
		name   string
		header string // the whole Authorization header
	}{
		{"missing", ""},
		{"basic scheme", "Basic YWxpY2U6c2VjcmV0"},
		{"bearer without token", "Bearer "},
		{"malformed", "Bearer not.a.jwt"},
		{"expired", "Bearer " + iss.Sign(t, claims(func(c map[string]any) { c["exp"] = time.Now().Add(-time.Minute).Unix() }))},
		{"not yet valid", "Bearer " + iss.Sign(t, claims(func(c map[string]any) { c["nbf"] = time.Now().Add(10 * time.Minute).Unix() }))},
		{"wrong issuer", "Bearer " + iss.Sign(t, claims(func(c map[string]any) { c["iss"] = "https://idp.evil.example" }))},
		{"wrong audience", "Bearer " + iss.Sign(t, claims(func(c map[string]any) { c["aud"] = "another-app" }))},
		{"alg none", "Bearer " + oidctest.Unsigned(t, good)},
		{"HS256 signed with the public key", "Bearer " + iss.HS256WithPublicKey(t, good)},
		{"key the issuer does not publish", "Bearer " + oidctest.SignWith(t, foreign, jose.RS256, iss.KeyID, good)},
		{"unknown key id", "Bearer " + oidctest.SignWith(t, foreign, jose.RS256, "kid-nobody-published", good)},
		{"vault issuer's token with a tampered tenant", "Bearer " + tamper(t, token(t, "eve", ten, "integration_admin"), "tenant_id", "someone-else")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := a.do("GET", "/api/v1/services", "", nil, "Authorization", tt.header)
			wantError(t, r, 401, "UNAUTHORIZED")
			if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Fatalf("WWW-Authenticate %q", r.Header.Get("WWW-Authenticate"))
			}
			if tok := strings.TrimPrefix(tt.header, "Bearer "); len(tok) > 20 && strings.Contains(string(r.Raw), tok) {
				t.Fatal("the error repeats the token")
			}
		})
	}
	if n := a.vaultCalls.Load(); n != 0 {
		t.Fatalf("%d Vault calls for bad tokens; want none", n)
	}
	// The same issuer's good token works, selected by iss or by realmname.
	if r := a.do("GET", "/api/v1/services", iss.Sign(t, good), nil); r.Status != 200 {
		t.Fatalf("good test-issuer token: %d %s", r.Status, r.Raw)
	}
	if r := a.do("GET", "/api/v1/services", iss.Sign(t, good), nil, "realmname", "test"); r.Status != 200 {
		t.Fatalf("good token with its realm: %d %s", r.Status, r.Raw)
	}
	wantError(t, a.do("GET", "/api/v1/services", iss.Sign(t, good), nil, "realmname", "vault"), 401, "UNAUTHORIZED")
}

// tamper changes one claim of a signed token, leaving the signature.
func tamper(t *testing.T, tok, claim, value string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	jws, err := jose.ParseSigned(tok, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &c); err != nil {
		t.Fatal(err)
	}
	c[claim] = value
	b, _ := json.Marshal(c)
	return parts[0] + "." + b64(b) + "." + parts[2]
}

func TestDebugAuthShowsTheCallerButNotTheToken(t *testing.T) {
	a := newAPI(t, apiOptions{})
	ten := tenant(t)
	tok := token(t, "carol", ten, "credential_reader", "unmapped_role")
	r := a.do("GET", "/debug/auth", tok, nil)
	if r.Status != 200 {
		t.Fatalf("%d %s", r.Status, r.Raw)
	}
	if r.str("tenant") != ten || r.str("email") != "carol@"+ten+".example" || r.str("subject") == "" {
		t.Fatalf("debug/auth: %s", r.Raw)
	}
	roles, _ := r.Body["roles"].([]any)
	pols, _ := r.Body["vault_policies"].([]any)
	if len(roles) != 1 || roles[0] != "credential_reader" || len(pols) != 1 || pols[0] != policy.Name(ten, policy.CredentialReader) {
		t.Fatalf("roles %v policies %v", roles, pols)
	}
	if strings.Contains(string(r.Raw), tok) || strings.Contains(string(r.Raw), strings.Split(tok, ".")[2]) {
		t.Fatal("debug/auth echoes the token")
	}
	// The token's claims, as it carried them: the unmapped role too.
	claims, _ := r.Body["claims"].(map[string]any)
	if claims["sub"] != r.str("subject") || !strings.Contains(fmt.Sprint(claims), "unmapped_role") {
		t.Fatalf("debug/auth claims: %v", r.Body["claims"])
	}
	wantError(t, a.do("GET", "/debug/auth", "", nil), 401, "UNAUTHORIZED")
}

func TestRoleMapFromIdentityProviderNames(t *testing.T) {
	a := newAPI(t, apiOptions{roleMap: policy.RoleMap{"platform-admins": {policy.IntegrationAdmin}, "auditors": {policy.IntegrationViewer}}})
	ten := tenant(t)
	admin := token(t, "pat", ten, "platform-admins")
	a.mustCreate(admin, map[string]any{"name": "ServiceNow"})
	auditor := token(t, "aud", ten, "auditors")
	if r := a.do("GET", "/api/v1/services", auditor, nil); r.Status != 200 {
		t.Fatalf("auditor list: %d", r.Status)
	}
	wantError(t, a.do("POST", "/api/v1/services", auditor, map[string]any{"name": "x"}), 403, "INSUFFICIENT_PERMISSIONS")
	// Built-in names mean nothing once a map is configured without them.
	wantError(t, a.do("GET", "/api/v1/services", token(t, "raw", ten, "integration_admin"), nil), 403, "INSUFFICIENT_PERMISSIONS")
}

func TestVaultAuditLogNamesTheCallerAndRequest(t *testing.T) {
	a := newAPI(t, apiOptions{})
	ten := tenant(t)
	tok := token(t, "dana", ten, "integration_viewer")
	admin := token(t, "adm", ten, "integration_admin")
	a.mustCreate(admin, map[string]any{"id": "sendgrid", "name": "SendGrid"})
	sub := a.do("GET", "/debug/auth", tok, nil).str("subject")
	rid := "audit-" + ten
	if r := a.do("GET", "/api/v1/services/sendgrid", tok, nil, "X-Request-Id", rid); r.Status != 200 || r.Header.Get("X-Request-Id") != rid {
		t.Fatalf("read: %d, X-Request-Id %q", r.Status, r.Header.Get("X-Request-Id"))
	}
	e := vaulttest.FindAuditResponse(t, s.auditFile, "read", "credgate/data/tenants/"+ten+"/services/sendgrid", rid)
	if e.Auth.Metadata["sub"] != sub || e.Auth.Metadata["tenant"] != ten || e.Auth.Metadata["email"] != "dana@"+ten+".example" {
		t.Fatalf("audit entry names %v; want sub %s, tenant %s", e.Auth.Metadata, sub, ten)
	}
	if len(e.Auth.Policies) != 1 || e.Auth.Policies[0] != policy.Name(ten, policy.IntegrationViewer) {
		t.Fatalf("audit entry policies %v", e.Auth.Policies)
	}
}

// TestIssuersAreBoundToTheirTenants configures two real issuers, Vault's
// identity tokens for one tenant and the test issuer for tenants matching a
// pattern: a token whose issuer may not assert its tenant is refused before
// any Vault call, however valid its signature.
func TestIssuersAreBoundToTheirTenants(t *testing.T) {
	iss := oidctest.Start(t)
	acme := tenant(t)
	a := newAPI(t, apiOptions{issuers: []auth.IssuerConfig{
		{Name: "vault", URL: s.idp.IssuerURL, Audiences: []string{s.idp.Audience}, Tenants: []string{acme}},
		{Name: "partner", URL: iss.URL, Audiences: []string{iss.Audience}, TenantPattern: `partner-[a-z0-9-]+`},
	}})
	vaultTok := token(t, "amy", acme, "integration_admin")
	a.mustCreate(vaultTok, map[string]any{"id": "stripe", "name": "Stripe"})
	id := a.mustCreateCredential(vaultTok, map[string]any{"integrationId": "stripe", "credentialName": "live", "authType": "api_key", "apiKey": secret("sk_" + randHex(8))})["id"].(string)

	calls := a.vaultCalls.Load()
	forged := iss.Sign(t, iss.Claims("mallory", acme, "integration_admin"))
	for _, path := range []string{"/api/v1/credentials/stripe", "/api/v1/credentials/stripe?credentialId=" + id, "/api/v1/services/stripe"} {
		r := a.do("GET", path, forged, nil)
		if r.Status != 401 || r.errCode() != "UNAUTHORIZED" {
			t.Fatalf("the partner issuer asserting %s, GET %s: %d %s", acme, path, r.Status, r.Raw)
		}
	}
	wantError(t, a.do("GET", "/api/v1/services", forged, nil, "realmname", "partner"), 401, "UNAUTHORIZED")
	if n := a.vaultCalls.Load() - calls; n != 0 {
		t.Fatalf("%d Vault calls for tokens whose issuer may not assert their tenant", n)
	}
	// Each issuer works for the tenants it may assert.
	partner := "partner-" + randHex(4)
	if r := a.do("GET", "/api/v1/services", iss.Sign(t, iss.Claims("pat", partner, "integration_admin")), nil); r.Status != 200 {
		t.Fatalf("the partner issuer for %s: %d %s", partner, r.Status, r.Raw)
	}
	if r := a.do("GET", "/api/v1/services", token(t, "vic", "partner-"+randHex(4), "integration_admin"), nil); r.Status != 401 {
		t.Fatalf("Vault's issuer asserting a partner tenant: %d %s", r.Status, r.Raw)
	}
	if got := wantEnvelope(t, a.do("GET", "/api/v1/credentials/stripe", vaultTok, nil), 200); got["id"] != id {
		t.Fatalf("Vault's issuer for its own tenant: %v", got)
	}
}

// TestBearerChallengesFollowRFC6750: a request with no bearer token gets a
// challenge with no error code; a malformed one invalid_request; a bad
// token invalid_token with a description; a missing permission
// insufficient_scope.
func TestBearerChallengesFollowRFC6750(t *testing.T) {
	iss := oidctest.Start(t)
	ten := tenant(t)
	a := newAPI(t, apiOptions{issuers: []auth.IssuerConfig{
		{Name: "vault", URL: s.idp.IssuerURL, Audiences: []string{s.idp.Audience}, Tenants: []string{ten}},
		{Name: "test", URL: iss.URL, Audiences: []string{iss.Audience}, Tenants: []string{ten}},
	}})
	expired := iss.Claims("eve", ten, "integration_admin")
	expired["exp"] = time.Now().Add(-time.Minute).Unix()
	tests := []struct {
		name, header string
		status       int
		want         string
	}{
		{"no header", "", 401, `Bearer realm="credgate"`},
		{"another scheme", "Basic YWxpY2U6c2VjcmV0", 401, `Bearer realm="credgate"`},
		{"empty bearer", "Bearer  ", 401, `Bearer realm="credgate", error="invalid_request", error_description="the bearer token is empty"`},
		{"expired", "Bearer " + iss.Sign(t, expired), 401, `Bearer realm="credgate", error="invalid_token", error_description="token is expired"`},
		{"garbage", "Bearer a.b.c", 401, `Bearer realm="credgate", error="invalid_token", error_description="malformed token"`},
		{"viewer writing", "Bearer " + token(t, "vic", ten, "integration_viewer"), 403, `Bearer realm="credgate", error="insufficient_scope"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := a.do("POST", "/api/v1/services", "", map[string]any{"name": "x"}, "Authorization", tt.header)
			if r.Status != tt.status || r.Header.Get("WWW-Authenticate") != tt.want {
				t.Fatalf("%d %q; want %d %q", r.Status, r.Header.Get("WWW-Authenticate"), tt.status, tt.want)
			}
		})
	}
}

func TestMalformedQueryStringsAreRefused(t *testing.T) {
	a := newAPI(t, apiOptions{})
	tok := token(t, "quinn", tenant(t), "integration_admin")
	for i := range 3 {
		a.mustCreate(tok, map[string]any{"id": fmt.Sprint("svc-", i), "name": fmt.Sprint("Svc ", i)})
	}
	page := a.do("GET", "/api/v1/services?limit=1", tok, nil)
	next := page.str("next_cursor")
	if next == "" {
		t.Fatalf("no next cursor: %s", page.Raw)
	}
	// A cursor mangled in transit must not read the first page again.
	wantError(t, a.do("GET", "/api/v1/services?limit=1&cursor="+next+"%zz", tok, nil), 400, "INVALID_REQUEST")
	wantError(t, a.do("GET", "/api/v1/services?limit=1&cursor=%"+next, tok, nil), 400, "INVALID_REQUEST")
	wantEnvelopeError(t, a.do("GET", "/api/v1/credentials?integrationId=svc-1&x=%G1", tok, nil), 400, "INVALID_PARAMETER")
	if r := a.do("GET", "/api/v1/services?limit=1&cursor="+next, tok, nil); r.Status != 200 || r.Body["services"].([]any)[0].(map[string]any)["id"] != "svc-1" {
		t.Fatalf("the cursor as sent: %d %s", r.Status, r.Raw)
	}
}

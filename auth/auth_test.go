package auth_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/auth"
	"github.com/credgate/credgate/auth/oidctest"
	"github.com/credgate/credgate/policy"
)

// clock is a settable time source shared by the verifier and a test.
type clock struct{ t atomic.Int64 }

func newClock() *clock               { c := &clock{}; c.t.Store(time.Now().UnixNano()); return c }
func (c *clock) Now() time.Time      { return time.Unix(0, c.t.Load()) }
func (c *clock) Add(d time.Duration) { c.t.Add(int64(d)) }

func mustVerifier(tb testing.TB, o auth.Options) *auth.Verifier {
	tb.Helper()
	v, err := auth.New(o)
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

func codeOf(err error) string { return credgate.ErrorCode(err) }

func TestVerifyRefusesBadTokens(t *testing.T) {
	iss := oidctest.Start(t)
	other := oidctest.Start(t)
	v := mustVerifier(t, auth.Options{Issuers: []auth.IssuerConfig{{Name: "test", URL: iss.URL, Audiences: []string{iss.Audience}}}})
	good := iss.Claims("alice", "acme", "integration_admin")
	with := func(k string, val any) map[string]any {
		c := iss.Claims("alice", "acme", "integration_admin")
		if val == nil {
			delete(c, k)
		} else {
			c[k] = val
		}
		return c
	}
	foreignKey := oidctest.MustKey(t)
	// The tokens below differ from one the verifier takes by one thing
	// each: first, that one is taken.
	if p, err := v.Verify(context.Background(), iss.Sign(t, good), ""); err != nil || p.Subject != "alice" {
		t.Fatalf("the good token: %+v, %v; every case below would pass with a verifier that refuses all", p, err)
	}
	tests := []struct {
		name  string
		token string
	}{
		{"empty", ""},
		{"not a jwt", "not-a-token"},
		{"garbage segments", "a.b.c"},
		{"expired", iss.Sign(t, with("exp", time.Now().Add(-time.Minute).Unix()))},
		{"no exp", iss.Sign(t, with("exp", nil))},
		{"not yet valid", iss.Sign(t, with("nbf", time.Now().Add(10*time.Minute).Unix()))},
		{"not yet valid for two minutes (inside go-oidc's own leeway)", iss.Sign(t, with("nbf", time.Now().Add(2*time.Minute).Unix()))},
		{"wrong issuer", iss.Sign(t, with("iss", "https://evil.example"))},
		{"issuer of another trusted-looking server", other.Sign(t, other.Claims("alice", "acme", "integration_admin"))},
		{"wrong audience", iss.Sign(t, with("aud", "someone-else"))},
		{"alg none", oidctest.Unsigned(t, good)},
		{"HS256 signed with the public key", iss.HS256WithPublicKey(t, good)},
		{"signed by an unpublished key under the published kid", oidctest.SignWith(t, foreignKey, jose.RS256, iss.KeyID, good)},
		{"unknown key id", oidctest.SignWith(t, foreignKey, jose.RS256, "rotated-away", good)},
		{"no key id and a foreign key", oidctest.SignWith(t, foreignKey, jose.RS256, "", good)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := v.Verify(context.Background(), tt.token, "")
			if got := codeOf(err); got != credgate.EUnauthorized {
				t.Fatalf("Verify = %+v, %v; want %s", p, err, credgate.EUnauthorized)
			}
		})
	}
}

func TestVerifyMapsClaims(t *testing.T) {
	iss := oidctest.Start(t)
	v := mustVerifier(t, auth.Options{
		Issuers: []auth.IssuerConfig{{Name: "kc", URL: iss.URL, Audiences: []string{"other", iss.Audience}, TenantClaim: "org.id", RolesClaim: "realm_access.roles"}},
		RoleMap: policy.RoleMap{"admins": {policy.IntegrationAdmin}, "readers": {policy.CredentialReader, policy.IntegrationViewer}},
	})
	claims := iss.Claims("bob", "ignored")
	claims["org"] = map[string]any{"id": "globex"}
	claims["realm_access"] = map[string]any{"roles": []string{"readers", "unrelated"}}
	p, err := v.Verify(context.Background(), iss.Sign(t, claims), "kc")
	if err != nil {
		t.Fatal(err)
	}
	want := struct {
		Subject, Tenant, Email string
		Roles                  []string
	}{"bob", "globex", "bob@example.test", []string{"credential_reader", "integration_viewer"}}
	got := struct {
		Subject, Tenant, Email string
		Roles                  []string
	}{p.Subject, p.Tenant, p.Email, p.Roles}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("principal (-want +got):\n%s", d)
	}
}

func TestVerifySelectsIssuerByRealmOrIss(t *testing.T) {
	a, b := oidctest.Start(t), oidctest.Start(t)
	v := mustVerifier(t, auth.Options{Issuers: []auth.IssuerConfig{
		{Name: "realm-a", URL: a.URL, Audiences: []string{a.Audience}, Tenants: []string{"initech"}},
		{Name: "realm-b", URL: b.URL, Audiences: []string{b.Audience}, Tenants: []string{"initech"}},
	}})
	tokB := b.Sign(t, b.Claims("carol", "initech", "integration_viewer"))
	if p, err := v.Verify(context.Background(), tokB, ""); err != nil || p.Tenant != "initech" {
		t.Fatalf("by iss: %+v, %v", p, err)
	}
	if p, err := v.Verify(context.Background(), tokB, "realm-b"); err != nil || p.Issuer != b.URL {
		t.Fatalf("by realm: %+v, %v", p, err)
	}
	if _, err := v.Verify(context.Background(), tokB, "realm-a"); codeOf(err) != credgate.EUnauthorized {
		t.Fatalf("token of realm b under realm a: %v; want UNAUTHORIZED", err)
	}
	// An unknown realm answers as a bad token does: no realm's name can be
	// found by trying.
	_, unknown := v.Verify(context.Background(), tokB, "no-such-realm")
	_, bad := v.Verify(context.Background(), tokB+"x", "realm-b")
	if codeOf(unknown) != credgate.EUnauthorized || unknown.Error() != bad.Error() {
		t.Fatalf("unknown realm: %v; a bad token: %v", unknown, bad)
	}
}

func TestVerifyRefusesTokenWithoutTenant(t *testing.T) {
	iss := oidctest.Start(t)
	v := mustVerifier(t, auth.Options{Issuers: []auth.IssuerConfig{{URL: iss.URL, Audiences: []string{iss.Audience}}}})
	for _, tenant := range []any{nil, "", "../other", "a/b", 42} {
		c := iss.Claims("dave", "x", "integration_admin")
		c["tenant_id"] = tenant
		if _, err := v.Verify(context.Background(), iss.Sign(t, c), ""); codeOf(err) != credgate.EInsufficientPermissions {
			t.Errorf("tenant %#v: %v; want INSUFFICIENT_PERMISSIONS", tenant, err)
		}
	}
}

func TestVerifiedTokensAreCachedUntilExpiry(t *testing.T) {
	iss := oidctest.Start(t)
	clk := newClock()
	var hits, misses atomic.Int64
	v := mustVerifier(t, auth.Options{
		Issuers: []auth.IssuerConfig{{URL: iss.URL, Audiences: []string{iss.Audience}}},
		Now:     clk.Now,
		OnCache: func(hit bool) {
			if hit {
				hits.Add(1)
			} else {
				misses.Add(1)
			}
		},
	})
	c := iss.Claims("erin", "acme", "integration_admin")
	c["exp"] = clk.Now().Add(2 * time.Minute).Unix()
	tok := iss.Sign(t, c)
	for range 5 {
		if _, err := v.Verify(context.Background(), tok, ""); err != nil {
			t.Fatal(err)
		}
	}
	if hits.Load() != 4 || misses.Load() != 1 {
		t.Fatalf("hits %d misses %d; want 4 and 1", hits.Load(), misses.Load())
	}
	clk.Add(3 * time.Minute)
	if _, err := v.Verify(context.Background(), tok, ""); codeOf(err) != credgate.EUnauthorized {
		t.Fatalf("cached token past exp: %v; want UNAUTHORIZED", err)
	}
}

func TestUnknownKeyIDsRefetchJWKSAtMostOncePerInterval(t *testing.T) {
	iss := oidctest.Start(t)
	clk := newClock()
	var fetches atomic.Int64
	v := mustVerifier(t, auth.Options{
		Issuers:     []auth.IssuerConfig{{URL: iss.URL, Audiences: []string{iss.Audience}}},
		Now:         clk.Now,
		OnJWKSFetch: func(string, error) { fetches.Add(1) },
	})
	good := iss.Claims("frank", "acme", "integration_admin")
	if _, err := v.Verify(context.Background(), iss.Sign(t, good), ""); err != nil {
		t.Fatal(err)
	}
	if iss.JWKSHits() != 1 {
		t.Fatalf("JWKS fetched %d times for the first token; want 1", iss.JWKSHits())
	}
	forger := oidctest.MustKey(t)
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			tok := oidctest.SignWith(t, forger, jose.RS256, fmt.Sprintf("kid-%d", i), good)
			if _, err := v.Verify(context.Background(), tok, ""); codeOf(err) != credgate.EUnauthorized {
				t.Errorf("forged token %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	clk.Add(10 * time.Second)
	tok := oidctest.SignWith(t, forger, jose.RS256, "later", good)
	_, _ = v.Verify(context.Background(), tok, "")
	// Within the first 30 s: the initial fetch plus at most one refetch.
	if h := iss.JWKSHits(); h > 2 {
		t.Fatalf("JWKS fetched %d times for 201 unknown key ids within 30s; want at most 2", h)
	}
	clk.Add(31 * time.Second)
	_, _ = v.Verify(context.Background(), oidctest.SignWith(t, forger, jose.RS256, "after-interval", good), "")
	if h := iss.JWKSHits(); h > 3 || h < 2 {
		t.Fatalf("JWKS fetched %d times after the interval passed; want one more", h)
	}
	if fetches.Load() != iss.JWKSHits() {
		t.Fatalf("OnJWKSFetch saw %d fetches, issuer %d", fetches.Load(), iss.JWKSHits())
	}
}

func TestBadSignatureUnderKnownKeyDoesNotRefetch(t *testing.T) {
	iss := oidctest.Start(t)
	v := mustVerifier(t, auth.Options{Issuers: []auth.IssuerConfig{{URL: iss.URL, Audiences: []string{iss.Audience}}}})
	good := iss.Claims("gina", "acme", "integration_admin")
	if _, err := v.Verify(context.Background(), iss.Sign(t, good), ""); err != nil {
		t.Fatal(err)
	}
	forger := oidctest.MustKey(t)
	for range 20 {
		_, _ = v.Verify(context.Background(), oidctest.SignWith(t, forger, jose.RS256, iss.KeyID, good), "")
	}
	if h := iss.JWKSHits(); h != 1 {
		t.Fatalf("JWKS fetched %d times; forged signatures under a known kid must not refetch", h)
	}
}

func TestUnavailableIssuerIsBackendUnavailable(t *testing.T) {
	iss := oidctest.Start(t)
	v := mustVerifier(t, auth.Options{Issuers: []auth.IssuerConfig{{URL: "http://127.0.0.1:1/nowhere", Audiences: []string{"x"}, TenantPattern: ".*"}, {URL: iss.URL, Audiences: []string{iss.Audience}, TenantPattern: ".*"}}})
	if err := v.Ready(context.Background()); err == nil {
		t.Fatal("Ready with an unreachable issuer: want an error")
	}
	c := iss.Claims("hal", "acme", "integration_admin")
	c["iss"] = "http://127.0.0.1:1/nowhere"
	if _, err := v.Verify(context.Background(), iss.Sign(t, c), ""); codeOf(err) != credgate.EBackendUnavailable {
		t.Fatalf("token of an unreachable issuer: %v; want BACKEND_UNAVAILABLE", err)
	}
}

func TestTimeClaimsOfAnyJSONType(t *testing.T) {
	iss := oidctest.Start(t)
	v := mustVerifier(t, auth.Options{Issuers: []auth.IssuerConfig{{URL: iss.URL, Audiences: []string{iss.Audience}}}})
	now := time.Now()
	in := func(d time.Duration) int64 { return now.Add(d).Unix() }
	str := func(d time.Duration) string { return fmt.Sprint(in(d)) }
	tests := []struct {
		name   string
		claim  string
		value  any
		accept bool
	}{
		{"nbf as a string, two minutes ahead", "nbf", str(2 * time.Minute), false},
		{"nbf as a string, now", "nbf", str(0), true},
		{"nbf with a fraction", "nbf", float64(in(0)) + 0.5, true},
		{"nbf as an object", "nbf", map[string]any{"t": in(0)}, false},
		{"nbf as a word", "nbf", "soon", false},
		{"nbf null", "nbf", nil, false},
		{"exp as a string", "exp", str(time.Hour), true},
		{"exp as a boolean", "exp", true, false},
		{"exp as a string, passed", "exp", str(-time.Minute), false},
		{"exp far beyond any date", "exp", 1e300, false},
		{"iat in the future", "iat", in(10 * time.Minute), false},
		{"iat as a string, now", "iat", str(0), true},
		{"iat as an array", "iat", []any{in(0)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := iss.Claims("ivy", "acme", "integration_admin")
			c[tt.claim] = tt.value
			_, err := v.Verify(context.Background(), iss.Sign(t, c), "")
			if tt.accept && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tt.accept && codeOf(err) != credgate.EUnauthorized {
				t.Fatalf("got %v; want UNAUTHORIZED", err)
			}
		})
	}
}

func TestSubjectIsRequired(t *testing.T) {
	iss := oidctest.Start(t)
	v := mustVerifier(t, auth.Options{Issuers: []auth.IssuerConfig{{URL: iss.URL, Audiences: []string{iss.Audience}}}})
	for _, sub := range []any{"", "   ", nil} {
		c := iss.Claims("x", "acme", "integration_admin")
		if sub == nil {
			delete(c, "sub")
		} else {
			c["sub"] = sub
		}
		if _, err := v.Verify(context.Background(), iss.Sign(t, c), ""); codeOf(err) != credgate.EUnauthorized {
			t.Errorf("sub %#v: %v; want UNAUTHORIZED", sub, err)
		}
	}
}

// TestReservedAndUnprintableSubjectsAreRefused: credgate's own subject is
// never a caller's (its events and audit entries would pass as credgate's),
// nor is one that cannot be shown as text.
func TestReservedAndUnprintableSubjectsAreRefused(t *testing.T) {
	iss := oidctest.Start(t)
	v := mustVerifier(t, auth.Options{Issuers: []auth.IssuerConfig{{URL: iss.URL, Audiences: []string{iss.Audience}}}})
	for _, sub := range []string{credgate.SystemSubject, "bob\x1b[2J", "a\nb", strings.Repeat("s", 513)} {
		if _, err := v.Verify(context.Background(), iss.Sign(t, iss.Claims(sub, "acme", "integration_admin")), ""); codeOf(err) != credgate.EUnauthorized {
			t.Errorf("sub %q: %v; want UNAUTHORIZED", sub, err)
		}
	}
}

// TestClaimsShownAsTextLoseControlCharacters: a name or e-mail with
// terminal escapes is kept without them (they would reach Vault's token
// metadata, which refuses them, and every table that shows them).
func TestClaimsShownAsTextLoseControlCharacters(t *testing.T) {
	iss := oidctest.Start(t)
	v := mustVerifier(t, auth.Options{Issuers: []auth.IssuerConfig{{URL: iss.URL, Audiences: []string{iss.Audience}}}})
	c := iss.Claims("mallory", "acme", "integration_admin")
	c["email"] = "x\x1b]0;PWNED\a\x1b[2J\x1b[1;31mFAKE\tCOLUMN\nNEWROW@evil.example"
	c["name"] = "Mal\u0000lory\u009b31m" + strings.Repeat("é", 200)
	p, err := v.Verify(context.Background(), iss.Sign(t, c), "")
	if err != nil {
		t.Fatal(err)
	}
	if p.Email != "x]0;PWNED[2J[1;31mFAKECOLUMNNEWROW@evil.example" {
		t.Errorf("email %q", p.Email)
	}
	if strings.ContainsFunc(p.Name, unicode.IsControl) || !utf8.ValidString(p.Name) || len(p.Name) > 256 || !strings.HasPrefix(p.Name, "Mallory31m") {
		t.Errorf("name %q", p.Name)
	}
}

func TestIssuersAreBoundToTheirTenants(t *testing.T) {
	a, b := oidctest.Start(t), oidctest.Start(t)
	v := mustVerifier(t, auth.Options{Issuers: []auth.IssuerConfig{
		{Name: "acme", URL: a.URL, Audiences: []string{a.Audience}, Tenants: []string{"acme"}},
		{Name: "globex", URL: b.URL, Audiences: []string{b.Audience}, TenantPattern: `globex(-[a-z]+)?`},
	}})
	tests := []struct {
		iss    *oidctest.Issuer
		tenant string
		accept bool
	}{
		{a, "acme", true},
		{a, "globex", false},
		{a, "acme-eu", false},
		{b, "globex", true},
		{b, "globex-eu", true},
		{b, "acme", false},
		{b, "xglobex", false}, // the pattern matches the whole id
	}
	for _, tt := range tests {
		_, err := v.Verify(context.Background(), tt.iss.Sign(t, tt.iss.Claims("kim", tt.tenant, "integration_admin")), "")
		if tt.accept != (err == nil) || (!tt.accept && codeOf(err) != credgate.EUnauthorized) {
			t.Errorf("issuer %s asserting %s: %v; accept %v", tt.iss.URL, tt.tenant, err, tt.accept)
		}
	}
	// With several issuers, an unbound one is a configuration error.
	_, err := auth.New(auth.Options{Issuers: []auth.IssuerConfig{
		{URL: a.URL, Audiences: []string{a.Audience}, Tenants: []string{"acme"}},
		{URL: b.URL, Audiences: []string{b.Audience}},
	}})
	if err == nil || !strings.Contains(err.Error(), "which tenants") {
		t.Fatalf("two issuers, one unbound: %v", err)
	}
}

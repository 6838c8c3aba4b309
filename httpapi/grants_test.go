package httpapi_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/auth"
	"github.com/credgate/credgate/auth/oidctest"
	"github.com/credgate/credgate/policy"
)

// subjectOf is the sub claim of a JWT.
func subjectOf(t testing.TB, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Sub string `json:"sub"`
	}
	if err := json.Unmarshal(b, &c); err != nil || c.Sub == "" {
		t.Fatalf("no sub in the token: %v", err)
	}
	return c.Sub
}

// keyring is a tenant with four integrations, each with one api_key
// credential whose value is registered as a secret.
type keyring struct {
	tenant, admin string
	creds, keys   map[string]string // by integration: credential id, value
}

func newKeyring(t *testing.T, a *testAPI, integrations ...string) *keyring {
	t.Helper()
	k := &keyring{tenant: tenant(t), creds: map[string]string{}, keys: map[string]string{}}
	k.admin = token(t, "admin", k.tenant, "integration_admin")
	for _, id := range integrations {
		a.mustCreate(k.admin, map[string]any{"id": id, "name": "Service " + id})
		k.keys[id] = secret("key-" + id + "-" + randHex(6))
		k.creds[id] = a.mustCreateCredential(k.admin, map[string]any{"integrationId": id, "credentialName": id + " key", "authType": "api_key", "apiKey": k.keys[id]})["id"].(string)
	}
	return k
}

// grant makes a grant through the API and returns its id.
func (k *keyring) grant(t *testing.T, a *testAPI, body map[string]any) string {
	t.Helper()
	r := a.do("POST", "/api/v1/grants", k.admin, body)
	g := wantEnvelope(t, r, 201)
	if r.Header.Get("Location") != "/api/v1/grants/"+g["id"].(string) || r.Header.Get("ETag") != `"1"` {
		t.Fatalf("created grant: Location %q, ETag %q", r.Header.Get("Location"), r.Header.Get("ETag"))
	}
	return g["id"].(string)
}

// reads reports the status of reading integration's values through both
// families.
func reads(a *testAPI, tok, integration string) (creds, services int) {
	return a.do("GET", "/api/v1/credentials/"+integration, tok, nil).Status,
		a.do("GET", "/api/v1/services/"+integration+"/credentials", tok, nil).Status
}

func listedIDs(r reply, key, field string) []string {
	var out []string
	items, _ := r.Body[key].([]any)
	for _, it := range items {
		out = append(out, it.(map[string]any)[field].(string))
	}
	slices.Sort(out)
	return out
}

// TestAGrantGivesOneApplicationOneIntegration: the checkout service's
// token (no roles at all) is granted credential_reader on
// stripe_production only. It reads Stripe through both families and
// nothing else: every other integration is 403 for values and writes and
// absent from listings; its own Vault token, used directly against Vault,
// reads Stripe's values and is refused the others' and the tenant's lists.
func TestAGrantGivesOneApplicationOneIntegration(t *testing.T) {
	a := newAPI(t, apiOptions{noAccess: true})
	k := newKeyring(t, a, "stripe_production", "crm", "sendgrid_eu")
	app := token(t, "checkout", k.tenant) // a workload: no roles
	if c, s := reads(a, app, "stripe_production"); c != 403 || s != 403 {
		t.Fatalf("before any grant: %d, %d; want 403 both", c, s)
	}
	grant := k.grant(t, a, map[string]any{"subject": subjectOf(t, app), "role": "credential_reader", "integrations": []string{"stripe_production"},
		"description": "checkout reads Stripe"})

	got := wantEnvelope(t, a.do("GET", "/api/v1/credentials/stripe_production", app, nil), 200)
	if got["apiKey"] != k.keys["stripe_production"] {
		t.Fatalf("the granted read: %v", got["apiKey"])
	}
	if r := a.do("GET", "/api/v1/services/stripe_production/credentials", app, nil); r.Status != 200 || r.Body["credentials"].(map[string]any)["api_key"] != k.keys["stripe_production"] {
		t.Fatalf("the granted read, services family: %d %s", r.Status, r.Raw)
	}
	for _, other := range []string{"crm", "sendgrid_eu", "no-such-integration"} {
		if c, s := reads(a, app, other); c != 403 || s != 403 {
			t.Errorf("reading %s: %d, %d; want 403 through both families", other, c, s)
		}
	}
	wantEnvelopeError(t, a.do("GET", "/api/v1/credentials/crm", app, nil), 403, "INSUFFICIENT_PERMISSIONS")
	if got := listedIDs(a.do("GET", "/api/v1/services", app, nil), "services", "id"); !slices.Equal(got, []string{"stripe_production"}) {
		t.Fatalf("GET /services lists %v", got)
	}
	inv := a.do("GET", "/api/v1/credentials", app, nil)
	if got := listedIDs(inv, "data", "integrationId"); !slices.Equal(got, []string{"stripe_production"}) {
		t.Fatalf("the inventory lists %v", got)
	}
	wantEnvelopeError(t, a.do("GET", "/api/v1/credentials?integrationId=crm", app, nil), 404, "SERVICE_NOT_FOUND")
	wantError(t, a.do("GET", "/api/v1/services/crm", app, nil), 403, "INSUFFICIENT_PERMISSIONS")
	// By credential id: another integration's credential is as if absent;
	// its own may be read about but not written.
	wantEnvelopeError(t, a.do("GET", "/api/v1/credentials/"+k.creds["crm"]+"/versions", app, nil), 404, "CREDENTIAL_NOT_FOUND")
	wantEnvelopeError(t, a.do("PATCH", "/api/v1/credentials/"+k.creds["crm"], app, map[string]any{"description": "x"}), 404, "CREDENTIAL_NOT_FOUND")
	wantEnvelope(t, a.do("GET", "/api/v1/credentials/"+k.creds["stripe_production"]+"/versions", app, nil), 200)
	wantEnvelopeError(t, a.do("PATCH", "/api/v1/credentials/"+k.creds["stripe_production"], app, map[string]any{"description": "x"}), 403, "INSUFFICIENT_PERMISSIONS")
	wantEnvelopeError(t, a.do("POST", "/api/v1/credentials", app, map[string]any{"integrationId": "stripe_production", "credentialName": "x", "authType": "api_key", "apiKey": "x"}), 403, "INSUFFICIENT_PERMISSIONS")
	for _, path := range []string{"/api/v1/grants", "/api/v1/webhooks"} {
		wantEnvelopeError(t, a.do("GET", path, app, nil), 403, "INSUFFICIENT_PERMISSIONS")
	}

	// /debug/auth shows the grant and the policy it renders.
	dbg := a.do("GET", "/debug/auth", app, nil)
	grants, _ := dbg.Body["grants"].([]any)
	if len(grants) != 1 || grants[0].(map[string]any)["id"] != grant ||
		!strings.Contains(grants[0].(map[string]any)["vault_policy_text"].(string), "/credentials/stripe_production/*") ||
		!slices.Contains(dbg.Body["vault_policies"].([]any), any(policy.GrantPolicyName(k.tenant, grant))) {
		t.Fatalf("/debug/auth: %s", dbg.Raw)
	}

	// The caller's own Vault token: Vault itself refuses what the grant
	// does not name.
	vc := callerVault(t, a, app)
	base := "credgate/data/tenants/" + k.tenant
	if sec, err := vc.Logical().Read(base + "/credentials/stripe_production/" + k.creds["stripe_production"]); err != nil || sec == nil {
		t.Fatalf("the caller's token reading its granted credential: %v", err)
	}
	for _, path := range []string{
		base + "/credentials/crm/" + k.creds["crm"],
		base + "/credentials/sendgrid_eu/" + k.creds["sendgrid_eu"],
		base + "/services/crm",
		base + "/credential-index/" + k.creds["crm"],
	} {
		if _, err := vc.Logical().Read(path); !forbidden(err) {
			t.Errorf("the caller's token reading %s: %v; want Vault's 403", path, err)
		}
	}
	if _, err := vc.Logical().List("credgate/metadata/tenants/" + k.tenant + "/services/"); !forbidden(err) {
		t.Errorf("the caller's token listing the tenant's services: %v; want Vault's 403", err)
	}

	// The steady-state read of a caller with a grant is one Vault call.
	a.do("GET", "/api/v1/credentials/stripe_production", app, nil)
	before := a.vaultCalls.Load()
	for range 10 {
		a.do("GET", "/api/v1/credentials/stripe_production", app, nil)
	}
	if n := a.vaultCalls.Load() - before; n > 11 { // 10 reads, and at most one check of the grants
		t.Fatalf("10 reads by a caller with a grant made %d Vault calls", n)
	}
}

// callerVault is a Vault client with the token a minted for the caller of
// tok: what credgate uses on that caller's behalf.
func callerVault(t *testing.T, a *testAPI, tok string) *api.Client {
	t.Helper()
	v, err := auth.New(auth.Options{Issuers: []auth.IssuerConfig{{Name: "vault", URL: s.idp.IssuerURL, Audiences: []string{s.idp.Audience}}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p, err := v.Verify(ctx, tok, "")
	if err != nil {
		t.Fatal(err)
	}
	if p, err = a.grants.Resolve(ctx, p); err != nil {
		t.Fatal(err)
	}
	vt, err := a.store.TokenFor(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.vault.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(vt)
	return c
}

func forbidden(err error) bool {
	var re *api.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusForbidden
}

// TestPrefixAndExpiringGrants: a prefix grant covers the integrations it
// starts, and no other; a grant that expires stops counting at that
// instant, and the Vault token minted for it ends with it.
func TestPrefixAndExpiringGrants(t *testing.T) {
	a := newAPI(t, apiOptions{noAccess: true})
	k := newKeyring(t, a, "sendgrid_eu", "sendgrid_us", "sendgridx", "stripe_production", "crm")
	app := token(t, "mailer", k.tenant)
	k.grant(t, a, map[string]any{"subject": subjectOf(t, app), "role": "credential_reader", "integrations": []string{"sendgrid_*"}})
	for id, want := range map[string]int{"sendgrid_eu": 200, "sendgrid_us": 200, "sendgridx": 403, "stripe_production": 403} {
		if c, s := reads(a, app, id); c != want || s != want {
			t.Errorf("%s: %d, %d; want %d", id, c, s, want)
		}
	}
	until := time.Now().Add(3 * time.Second).UTC().Truncate(time.Second).Add(time.Second)
	k.grant(t, a, map[string]any{"subject": subjectOf(t, app), "role": "credential_reader", "integrations": []string{"crm"}, "expiresAt": until.Format(time.RFC3339)})
	if c, _ := reads(a, app, "crm"); c != 200 {
		t.Fatalf("crm before the grant expires: %d", c)
	}
	vc := callerVault(t, a, app) // its Vault token carries the expiring grant
	time.Sleep(time.Until(until) + 100*time.Millisecond)
	if c, s := reads(a, app, "crm"); c != 403 || s != 403 {
		t.Fatalf("crm after the grant expired: %d, %d; want 403", c, s)
	}
	if _, err := vc.Logical().Read("credgate/data/tenants/" + k.tenant + "/credentials/crm/" + k.creds["crm"]); err == nil {
		t.Fatal("the Vault token minted for an expired grant still reads")
	}
	if c, _ := reads(a, app, "sendgrid_eu"); c != 200 {
		t.Fatalf("the other grant after one expired: %d", c)
	}
}

// TestGrantRevocationReachesEveryReplicaWithin5s: with both replicas'
// caches warm (the caller's grant, its Vault token), a grant deleted
// through one is refused by the other within 5 seconds, and the Vault
// token that replica had minted is refused by Vault at once.
func TestGrantRevocationReachesEveryReplicaWithin5s(t *testing.T) {
	a := newAPI(t, apiOptions{noAccess: true})
	b := newAPI(t, apiOptions{noAccess: true})
	k := newKeyring(t, a, "stripe_production")
	app := token(t, "checkout", k.tenant)
	id := k.grant(t, a, map[string]any{"subject": subjectOf(t, app), "role": "credential_reader", "integrations": []string{"stripe_production"}})
	for range 3 {
		for _, r := range []*testAPI{a, b} {
			if c, _ := reads(r, app, "stripe_production"); c != 200 {
				t.Fatalf("warming: %d", c)
			}
		}
	}
	warm := callerVault(t, b, app) // the token b uses for the caller
	path := "credgate/data/tenants/" + k.tenant + "/credentials/stripe_production/" + k.creds["stripe_production"]
	if _, err := warm.Logical().Read(path); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	wantEnvelope(t, a.do("DELETE", "/api/v1/grants/"+id, k.admin, nil, "If-Match", `"1"`), 200)
	if _, err := warm.Logical().Read(path); !forbidden(err) {
		t.Fatalf("b's cached Vault token after the delete: %v; want Vault's 403", err)
	}
	for {
		c, s := reads(b, app, "stripe_production")
		if c == 403 && s == 403 {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("b still answers %d, %d five seconds after the grant was deleted", c, s)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("the other replica's answers refused the deleted grant %s after the delete (Vault refused its token)", time.Since(start).Round(10*time.Millisecond))
	// Its own decisions follow within 5 s: the grant is gone from what
	// it resolves for the caller.
	for {
		g, _ := b.do("GET", "/debug/auth", app, nil).Body["grants"].([]any)
		if len(g) == 0 {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatal("the other replica still resolves the deleted grant five seconds after")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("the other replica's own check dropped the grant %s after the delete", time.Since(start).Round(10*time.Millisecond))
	if c, _ := reads(a, app, "stripe_production"); c != 403 {
		t.Fatalf("the replica that deleted it: %d", c)
	}
	wantEnvelopeError(t, a.do("GET", "/api/v1/grants/"+id, k.admin, nil), 404, "NOT_FOUND")
}

// TestWorkloadIdentityWithATenantBoundIssuer: a Kubernetes
// service-account token (no tenant, no roles claim) from an issuer bound
// to one tenant is a caller whose grants say what it may read; a group of
// the issuer's groups claim can be granted too; a token naming another
// tenant is refused.
func TestWorkloadIdentityWithATenantBoundIssuer(t *testing.T) {
	cluster := oidctest.Start(t)
	ten := tenant(t)
	a := newAPI(t, apiOptions{noAccess: true, issuers: []auth.IssuerConfig{
		{Name: "vault", URL: s.idp.IssuerURL, Audiences: []string{s.idp.Audience}, TenantPattern: ".*"},
		{Name: "cluster", URL: cluster.URL, Audiences: []string{cluster.Audience}, Tenant: ten, GroupsClaim: "groups"},
	}})
	k := &keyring{tenant: ten, admin: token(t, "admin", ten, "integration_admin"), creds: map[string]string{}, keys: map[string]string{}}
	for _, id := range []string{"stripe_production", "crm"} {
		a.mustCreate(k.admin, map[string]any{"id": id, "name": id})
		k.keys[id] = secret("key-" + randHex(8))
		a.mustCreateCredential(k.admin, map[string]any{"integrationId": id, "credentialName": "k", "authType": "api_key", "apiKey": k.keys[id]})
	}
	sa := cluster.Sign(t, cluster.ServiceAccountClaims("payments", "checkout"))
	s.tokens.Store(sa, true)
	if c, _ := reads(a, sa, "stripe_production"); c != 403 {
		t.Fatalf("a service account without a grant: %d", c)
	}
	if p := a.do("GET", "/debug/auth", sa, nil); p.Status != 200 || p.Body["tenant"] != ten || p.Body["subject"] != "system:serviceaccount:payments:checkout" {
		t.Fatalf("the service account's principal: %d %s", p.Status, p.Raw)
	}
	k.grant(t, a, map[string]any{"subject": "system:serviceaccount:payments:checkout", "role": "credential_reader", "integrations": []string{"stripe_production"}})
	if c, s := reads(a, sa, "stripe_production"); c != 200 || s != 200 {
		t.Fatalf("the granted service account: %d, %d", c, s)
	}
	if c, _ := reads(a, sa, "crm"); c != 403 {
		t.Fatalf("the service account on crm: %d", c)
	}

	// A group of the issuer's groups claim.
	claims := cluster.ServiceAccountClaims("billing", "invoicer")
	claims["groups"] = []string{"billing-team"}
	inv := cluster.Sign(t, claims)
	s.tokens.Store(inv, true)
	k.grant(t, a, map[string]any{"group": "billing-team", "role": "integration_viewer", "integrations": []string{"crm"}})
	if got := wantEnvelope(t, a.do("GET", "/api/v1/credentials?integrationId=crm", inv, nil), 200); got != nil {
		t.Fatalf("%v", got)
	}
	if c, _ := reads(a, inv, "crm"); c != 403 {
		t.Fatalf("a viewer by group reading values: %d", c)
	}

	// The bound issuer speaks for its tenant only.
	other := cluster.ServiceAccountClaims("payments", "checkout")
	other["tenant_id"] = "another-tenant"
	forged := cluster.Sign(t, other)
	s.tokens.Store(forged, true)
	wantEnvelopeError(t, a.do("GET", "/api/v1/credentials/stripe_production", forged, nil), 401, "UNAUTHORIZED")
}

// TestAccessReviewListsEveryWayIn: who may read a credential, and how:
// each tenant-wide role with the role-claim values that map to it, and
// each grant in force that names the integration (with its expiry); a
// grant for another integration is not listed.
func TestAccessReviewListsEveryWayIn(t *testing.T) {
	a := newAPI(t, apiOptions{noAccess: true, roleMap: policy.RoleMap{
		"platform-admins": {policy.IntegrationAdmin}, "integration_admin": {policy.IntegrationAdmin},
		"apps": {policy.CredentialReader}, "auditors": {policy.IntegrationViewer},
	}})
	k := &keyring{tenant: tenant(t), creds: map[string]string{}}
	k.admin = token(t, "admin", k.tenant, "integration_admin")
	a.mustCreate(k.admin, map[string]any{"id": "stripe_production", "name": "Stripe"})
	a.mustCreate(k.admin, map[string]any{"id": "crm", "name": "CRM"})
	cred := a.mustCreateCredential(k.admin, map[string]any{"integrationId": "stripe_production", "credentialName": "k", "authType": "api_key", "apiKey": secret(randHex(8))})["id"].(string)
	expiry := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
	direct := k.grant(t, a, map[string]any{"subject": "checkout", "role": "credential_reader", "integrations": []string{"stripe_production"}, "expiresAt": expiry.Format(time.RFC3339)})
	prefix := k.grant(t, a, map[string]any{"group": "payments", "role": "integration_viewer", "integrations": []string{"stripe_*"}})
	k.grant(t, a, map[string]any{"subject": "crm-sync", "role": "integration_admin", "integrations": []string{"crm"}})

	r := wantEnvelope(t, a.do("GET", "/api/v1/credentials/"+cred+"/access", k.admin, nil), 200)
	type way struct {
		via, role, grant string
		reads            bool
		values           string
	}
	var got []way
	for _, e := range r["access"].([]any) {
		e := e.(map[string]any)
		w := way{via: e["via"].(string), role: e["role"].(string), reads: e["readsValues"].(bool)}
		if g, ok := e["grant"].(map[string]any); ok {
			w.grant = g["id"].(string)
			if g["id"] == direct && g["expiresAt"] != expiry.Format(time.RFC3339) {
				t.Errorf("the direct grant's expiry: %v", g["expiresAt"])
			}
		}
		if vs, ok := e["roleClaimValues"].([]any); ok {
			for _, v := range vs {
				w.values += v.(string) + " "
			}
		}
		got = append(got, w)
	}
	want := []way{
		{"role", "credential_reader", "", true, "apps "},
		{"role", "integration_admin", "", true, "integration_admin platform-admins "},
		{"role", "integration_viewer", "", false, "auditors "},
		{"grant", "credential_reader", direct, true, ""},
		{"grant", "integration_viewer", prefix, false, ""},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("access review:\n got %+v\nwant %+v", got, want)
	}
	svc := a.do("GET", "/api/v1/services/crm/access", k.admin, nil)
	if svc.Status != 200 || len(svc.Body["access"].([]any)) != 4 { // three roles, the crm grant
		t.Fatalf("the services family's review of crm: %d %s", svc.Status, svc.Raw)
	}
	reader := token(t, "reader", k.tenant, "credential_reader")
	wantEnvelopeError(t, a.do("GET", "/api/v1/credentials/"+cred+"/access", reader, nil), 403, "INSUFFICIENT_PERMISSIONS")
}

// TestGrantsAreValidatedAndConfiguredOnesStay: a grant names one subject
// or group, a role, integrations; one from configuration is listed and
// applies, and is changed in configuration, not through the API.
func TestGrantsAreValidatedAndConfiguredOnesStay(t *testing.T) {
	ten := tenant(t)
	cfg := credgate.Grant{Subject: "ci-deployer", Role: "credential_reader", Integrations: []string{"stripe_production"}, Source: credgate.GrantFromConfig, Version: 1}
	cfg.ID = credgate.ConfigGrantID(ten, cfg)
	a := newAPI(t, apiOptions{noAccess: true, configured: map[string][]credgate.Grant{ten: {cfg}}})
	admin := token(t, "admin", ten, "integration_admin")
	a.mustCreate(admin, map[string]any{"id": "stripe_production", "name": "Stripe"})
	for name, body := range map[string]map[string]any{
		"subject and group": {"subject": "a", "group": "b", "role": "credential_reader", "integrations": []string{"x"}},
		"neither":           {"role": "credential_reader", "integrations": []string{"x"}},
		"unknown role":      {"subject": "a", "role": "superuser", "integrations": []string{"x"}},
		"no integrations":   {"subject": "a", "role": "credential_reader", "integrations": []string{}},
		"a bad pattern":     {"subject": "a", "role": "credential_reader", "integrations": []string{"a/b"}},
		"an inner glob":     {"subject": "a", "role": "credential_reader", "integrations": []string{"a*b"}},
		"expired":           {"subject": "a", "role": "credential_reader", "integrations": []string{"x"}, "expiresAt": "2020-01-01T00:00:00Z"},
		"credgate itself":   {"subject": "credgate", "role": "integration_admin", "integrations": []string{"*"}},
		"an unknown field":  {"subject": "a", "role": "credential_reader", "integrations": []string{"x"}, "roles": "x"},
	} {
		r := a.do("POST", "/api/v1/grants", admin, body)
		if r.Status != 400 {
			t.Errorf("%s: %d %s", name, r.Status, r.Raw)
		}
	}
	reader := token(t, "reader", ten, "credential_reader")
	wantEnvelopeError(t, a.do("POST", "/api/v1/grants", reader, map[string]any{"subject": "a", "role": "credential_reader", "integrations": []string{"x"}}), 403, "INSUFFICIENT_PERMISSIONS")

	list := a.do("GET", "/api/v1/grants", admin, nil)
	if ids := listedIDs(list, "data", "id"); !slices.Equal(ids, []string{cfg.ID}) {
		t.Fatalf("grants listed: %v", ids)
	}
	if g := wantEnvelope(t, a.do("GET", "/api/v1/grants/"+cfg.ID, admin, nil), 200); g["source"] != "config" {
		t.Fatalf("a configured grant: %v", g)
	}
	wantEnvelopeError(t, a.do("DELETE", "/api/v1/grants/"+cfg.ID, admin, nil), 400, "INVALID_REQUEST")
	wantEnvelopeError(t, a.do("GET", "/api/v1/grants/grant_00000000-0000-4000-8000-000000000000", admin, nil), 404, "NOT_FOUND")
	// A scoped admin (a grant of integration_admin) manages its
	// integrations, never the tenant's grants or webhooks.
	scoped := token(t, "scoped", ten)
	a.do("POST", "/api/v1/grants", admin, map[string]any{"subject": subjectOf(t, scoped), "role": "integration_admin", "integrations": []string{"stripe_production"}})
	a.mustCreateCredential(scoped, map[string]any{"integrationId": "stripe_production", "credentialName": "by the scoped admin", "authType": "api_key", "apiKey": secret(randHex(8))})
	wantEnvelopeError(t, a.do("POST", "/api/v1/grants", scoped, map[string]any{"subject": subjectOf(t, scoped), "role": "integration_admin", "integrations": []string{"*"}}), 403, "INSUFFICIENT_PERMISSIONS")
	wantEnvelopeError(t, a.do("GET", "/api/v1/webhooks", scoped, nil), 403, "INSUFFICIENT_PERMISSIONS")
	wantError(t, a.do("POST", "/api/v1/services", scoped, map[string]any{"id": "another", "name": "Another"}), 403, "INSUFFICIENT_PERMISSIONS")
}

// TestGrantEventsReachTheTenantsWebhooks: grant.created and grant.deleted
// when they happen, grant.expired when the monitor finds one past its
// expiry (and removes it, its Vault policy first).
func TestGrantEventsReachTheTenantsWebhooks(t *testing.T) {
	var c clock
	a, _ := replicas(t, &c)
	ten := tenant(t)
	admin := token(t, "alice", ten, "integration_admin")
	rec := startReceiver(t, 0)
	rec.subscribe(a, admin, credgate.EventGrantCreated, credgate.EventGrantDeleted, credgate.EventGrantExpired)
	a.mustCreate(admin, map[string]any{"id": "stripe_production", "name": "Stripe"})
	k := &keyring{tenant: ten, admin: admin}
	kept := k.grant(t, a, map[string]any{"subject": "checkout", "role": "credential_reader", "integrations": []string{"stripe_production"}})
	gone := k.grant(t, a, map[string]any{"subject": "old-app", "role": "credential_reader", "integrations": []string{"stripe_production"}})
	wantEnvelope(t, a.do("DELETE", "/api/v1/grants/"+gone, admin, nil), 200)
	soon := time.Now().Add(2 * time.Second).UTC().Truncate(time.Second).Add(time.Second)
	expiring := k.grant(t, a, map[string]any{"subject": "temp", "role": "credential_reader", "integrations": []string{"stripe_production"}, "expiresAt": soon.Format(time.RFC3339)})
	eventually(t, 20*time.Second, "grant.expired", func() bool { return len(rec.events(credgate.EventGrantExpired)) == 1 })
	created := rec.events(credgate.EventGrantCreated)
	deleted := rec.events(credgate.EventGrantDeleted)
	if len(created) != 3 || len(deleted) != 1 || deleted[0].event.Data.Grant.ID != gone || created[0].event.Data.Grant.ID != kept ||
		!strings.HasPrefix(created[0].event.Data.Actor.Email, "alice@") || created[0].event.Data.Tenant != ten {
		t.Fatalf("created %+v, deleted %+v", created, deleted)
	}
	if e := rec.events(credgate.EventGrantExpired)[0].event; e.Data.Grant.ID != expiring || e.Data.Actor.Subject != credgate.SystemSubject {
		t.Fatalf("expired: %+v", e)
	}
	if ids := listedIDs(a.do("GET", "/api/v1/grants", admin, nil), "data", "id"); !slices.Equal(ids, []string{kept}) {
		t.Fatalf("grants after the expiry was cleaned up: %v; want only %s", ids, kept)
	}
	rec.check()
}

package httpapi_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-oauth2/oauth2/v4/manage"
	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/vault/api"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/vaultstore/vaulttest"
)

// data returns the envelope's data object.
func (r reply) data() map[string]any {
	d, _ := r.Body["data"].(map[string]any)
	return d
}

// wantEnvelopeError fails unless r is a credentials-family error: an
// envelope whose error has a human-readable details string. It returns the
// error object.
func wantEnvelopeError(t *testing.T, r reply, status int, code string) map[string]any {
	t.Helper()
	e, _ := r.Body["error"].(map[string]any)
	if details, ok := e["details"].(string); r.Status != status || r.Body["success"] != false || r.errCode() != code || r.Body["timestamp"] == nil || !ok || details == "" {
		t.Fatalf("got %d %s; want %d %s in an envelope with a details sentence\n%s", r.Status, r.errCode(), status, code, r.Raw)
	}
	return e
}

func wantEnvelope(t *testing.T, r reply, status int) map[string]any {
	t.Helper()
	if r.Status != status || r.Body["success"] != true || r.Body["timestamp"] == nil {
		t.Fatalf("got %d; want %d success envelope\n%s", r.Status, status, r.Raw)
	}
	return r.data()
}

// noSecrets fails when r carries any of values.
func noSecrets(t *testing.T, r reply, values ...string) {
	t.Helper()
	for _, v := range values {
		if strings.Contains(string(r.Raw), v) {
			t.Fatalf("answer carries a secret value:\n%s", r.Raw)
		}
	}
}

// adminWithService returns an admin's token in a new tenant that has
// service id.
func adminWithService(t *testing.T, a *testAPI, id string) (tok, ten string) {
	t.Helper()
	ten = tenant(t)
	tok = token(t, "admin", ten, "integration_admin")
	a.mustCreate(tok, map[string]any{"id": id, "name": "Service " + id})
	return tok, ten
}

func (a *testAPI) mustCreateCredential(tok string, body map[string]any, hdr ...string) map[string]any {
	a.t.Helper()
	r := a.do("POST", "/api/v1/credentials", tok, body, hdr...)
	if r.Status != 201 {
		a.t.Fatalf("create credential: %d %s", r.Status, r.Raw)
	}
	return r.data()
}

func TestCredentialLifecycle(t *testing.T) {
	a := newAPI(t, apiOptions{})
	tok, ten := adminWithService(t, a, "stripe")
	key, key2 := secret("sk_live_"+randHex(12)), secret("sk_live_"+randHex(12))
	apiSecret := secret("whsec_" + randHex(12))

	r := a.do("POST", "/api/v1/credentials", tok, map[string]any{
		"integrationId": "stripe", "credentialName": "Stripe live", "description": "charges",
		"authType": "api_key", "apiKey": key, "apiSecret": apiSecret, "scopes": []string{"charges:write"},
		"metadata": map[string]any{"env": "production"}, "expiresAt": "2030-01-01T00:00:00Z",
	})
	created := wantEnvelope(t, r, 201)
	noSecrets(t, r, key, apiSecret)
	id, _ := created["id"].(string)
	if !strings.HasPrefix(id, "cred-") || !validCredentialID(id) {
		t.Fatalf("generated id %q", id)
	}
	if created["apiKey"] != "********" || created["apiSecret"] != "********" || created["version"] != float64(1) {
		t.Fatalf("created: %s", r.Raw)
	}
	if tn := created["tenant"].(map[string]any); tn["id"] != ten {
		t.Fatalf("tenant %v", tn)
	}

	first := a.do("GET", "/api/v1/credentials/stripe", tok, nil)
	got := wantEnvelope(t, first, 200)
	want := map[string]any{"id": id, "integrationId": "stripe", "credentialName": "Stripe live", "description": "charges",
		"authType": "api_key", "apiKey": key, "apiSecret": apiSecret, "scopes": []any{"charges:write"},
		"metadata": map[string]any{"env": "production"}, "status": "active", "expiresAt": "2030-01-01T00:00:00Z", "version": float64(1)}
	for k, v := range want {
		if d := cmp.Diff(v, got[k]); d != "" {
			t.Errorf("GET %s (-want +got):\n%s", k, d)
		}
	}
	if _, set := got["lastAccessedAt"]; set || got["createdAt"] == nil || got["createdBy"].(map[string]any)["email"] != "admin@"+ten+".example" {
		t.Fatalf("GET (the first read: no earlier access to show): %v", got)
	}

	// A descriptive change and a secret change are each a new version.
	p1 := a.do("PATCH", "/api/v1/credentials/"+id, tok, map[string]any{"description": "charges and refunds"})
	if wantEnvelope(t, p1, 200)["version"] != float64(2) {
		t.Fatalf("patch: %s", p1.Raw)
	}
	p2 := a.do("PATCH", "/api/v1/credentials/"+id, tok, map[string]any{"apiKey": key2}, "If-Match", `"2"`)
	noSecrets(t, p2, key2, apiSecret)
	if wantEnvelope(t, p2, 200)["version"] != float64(3) || p2.Header.Get("ETag") != `"3"` {
		t.Fatalf("patch secret: %s", p2.Raw)
	}
	wantEnvelopeError(t, a.do("PATCH", "/api/v1/credentials/"+id, tok, map[string]any{"apiKey": "lost"}, "If-Match", `"2"`), 409, "VERSION_CONFLICT")
	if v := wantEnvelope(t, a.do("GET", "/api/v1/credentials/stripe", tok, nil), 200); v["apiKey"] != key2 || v["description"] != "charges and refunds" {
		t.Fatalf("after patches: %v", v)
	}

	vr := a.do("GET", "/api/v1/credentials/"+id+"/versions", tok, nil)
	noSecrets(t, vr, key, key2, apiSecret)
	versions := wantEnvelope(t, vr, 200)["versions"].([]any)
	var changes []string
	for _, v := range versions {
		changes = append(changes, v.(map[string]any)["change"].(string))
	}
	if d := cmp.Diff([]string{"created", "updated", "rotated"}, changes); d != "" {
		t.Fatalf("version changes (-want +got):\n%s", d)
	}
	// An admin reads an earlier version by number.
	old := wantEnvelope(t, a.do("GET", "/api/v1/credentials/stripe?credentialId="+id+"&version=1", tok, nil), 200)
	if old["apiKey"] != key || old["version"] != float64(1) {
		t.Fatalf("version 1: %v", old)
	}

	list := a.do("GET", "/api/v1/credentials?integrationId=stripe", tok, nil)
	noSecrets(t, list, key, key2, apiSecret)
	items, _ := list.Body["data"].([]any)
	if len(items) != 1 || items[0].(map[string]any)["id"] != id || items[0].(map[string]any)["apiKey"] != nil {
		t.Fatalf("list: %s", list.Raw)
	}

	wantEnvelope(t, a.do("DELETE", "/api/v1/credentials/"+id, tok, nil), 200)
	wantEnvelopeError(t, a.do("GET", "/api/v1/credentials/stripe", tok, nil), 404, "CREDENTIAL_NOT_FOUND")
	wantEnvelopeError(t, a.do("DELETE", "/api/v1/credentials/"+id, tok, nil), 404, "CREDENTIAL_NOT_FOUND")
	wantEnvelopeError(t, a.do("GET", "/api/v1/credentials/"+id+"/versions", tok, nil), 404, "CREDENTIAL_NOT_FOUND")
}

func TestCredentialSelectionAndStatus(t *testing.T) {
	a := newAPI(t, apiOptions{})
	tok, _ := adminWithService(t, a, "jira")
	mk := func(name string, extra map[string]any) string {
		body := map[string]any{"integrationId": "jira", "credentialName": name, "authType": "basic", "username": "bot", "password": secret("pw-" + name + "-" + randHex(6))}
		for k, v := range extra {
			body[k] = v
		}
		time.Sleep(1100 * time.Millisecond) // createdAt has second resolution
		return a.mustCreateCredential(tok, body)["id"].(string)
	}
	older := mk("older", nil)
	newer := mk("newer", nil)
	revoked := mk("revoked", map[string]any{"status": "revoked"})
	expired := mk("expired", map[string]any{"expiresAt": "2020-01-01T00:00:00Z"})

	if got := wantEnvelope(t, a.do("GET", "/api/v1/credentials/jira", tok, nil), 200); got["id"] != newer {
		t.Fatalf("default credential %v; want the newest active %s", got["id"], newer)
	}
	if got := wantEnvelope(t, a.do("GET", "/api/v1/credentials/jira?credentialId="+older, tok, nil), 200); got["id"] != older {
		t.Fatalf("credentialId selection: %v", got["id"])
	}
	exp := wantEnvelope(t, a.do("GET", "/api/v1/credentials/jira?credentialId="+expired, tok, nil), 200)
	if exp["status"] != "expired" || exp["password"] == nil {
		t.Fatalf("an expired credential reads with status expired: %v", exp)
	}
	r := a.do("GET", "/api/v1/credentials/jira?credentialId="+revoked, tok, nil)
	if e := wantEnvelopeError(t, r, 404, "CREDENTIAL_NOT_FOUND"); e["status"] != "revoked" || !strings.Contains(e["details"].(string), "revoked") {
		t.Fatalf("refusal does not say why: %s", r.Raw)
	}
	a.do("PATCH", "/api/v1/credentials/"+newer, tok, map[string]any{"status": "inactive"})
	wantEnvelopeError(t, a.do("GET", "/api/v1/credentials/jira?credentialId="+newer, tok, nil), 404, "CREDENTIAL_NOT_FOUND")
	if got := wantEnvelope(t, a.do("GET", "/api/v1/credentials/jira", tok, nil), 200); got["id"] != older {
		t.Fatalf("after the newest became inactive, default %v; want %s", got["id"], older)
	}
	a.do("PATCH", "/api/v1/credentials/"+older, tok, map[string]any{"status": "revoked"})
	if got := wantEnvelope(t, a.do("GET", "/api/v1/credentials/jira", tok, nil), 200); got["id"] != expired {
		t.Fatalf("with no active credential the default is the newest expired: %v", got["id"])
	}

	for _, q := range []string{"?credentialId=nope", "?credentialId=cred-../x", "?credentialId=" + older + "&version=0", "?version=2"} {
		wantEnvelopeError(t, a.do("GET", "/api/v1/credentials/jira"+q, tok, nil), 400, "INVALID_PARAMETER")
	}
	wantEnvelopeError(t, a.do("GET", "/api/v1/credentials/a..b", tok, nil), 400, "INVALID_PARAMETER")
	wantEnvelopeError(t, a.do("PATCH", "/api/v1/credentials/not-a-uuid", tok, map[string]any{"description": "x"}), 400, "INVALID_PARAMETER")
	for _, q := range []string{"integrationId=a..b", "integrationId=", "status=gone", "authType=saml", "expiresBefore=tomorrow", "expiringWithin=30", "expiringWithin=-1d", "limit=0", "limit=501", "cursor=nope"} {
		wantEnvelopeError(t, a.do("GET", "/api/v1/credentials?"+q, tok, nil), 400, "INVALID_PARAMETER")
	}
	wantEnvelopeError(t, a.do("GET", "/api/v1/credentials/no-such-service", tok, nil), 404, "CREDENTIAL_NOT_FOUND")
	wantEnvelopeError(t, a.do("POST", "/api/v1/credentials", tok, map[string]any{"integrationId": "no-such-service", "credentialName": "x", "authType": "api_key", "apiKey": "k"}), 404, "SERVICE_NOT_FOUND")
}

func TestCredentialValidation(t *testing.T) {
	a := newAPI(t, apiOptions{})
	tok, _ := adminWithService(t, a, "svc")
	pw := secret("pw-" + randHex(8))
	tests := []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"no name", map[string]any{"authType": "api_key", "apiKey": "k"}, "credentialName"},
		{"unknown auth type", map[string]any{"credentialName": "x", "authType": "kerberos", "apiKey": "k"}, "authType"},
		{"api_key without a key", map[string]any{"credentialName": "x", "authType": "api_key"}, "apiKey"},
		{"basic without password", map[string]any{"credentialName": "x", "authType": "basic", "username": "u"}, "password"},
		{"client credentials without endpoint", map[string]any{"credentialName": "x", "authType": "oauth2_client_credentials", "clientId": "c", "clientSecret": pw}, "tokenEndpoint"},
		{"refresh token without endpoint", map[string]any{"credentialName": "x", "authType": "oauth2_bearer", "accessToken": "a", "refreshToken": pw}, "tokenEndpoint"},
		{"http token endpoint", map[string]any{"credentialName": "x", "authType": "oauth2_bearer", "accessToken": "a", "tokenEndpoint": "http://idp.example.com/token"}, "tokenEndpoint"},
		{"secret not a string", map[string]any{"credentialName": "x", "authType": "api_key", "apiKey": 42}, "apiKey"},
		{"empty secret", map[string]any{"credentialName": "x", "authType": "basic", "username": "u", "password": ""}, "password"},
		{"expired status", map[string]any{"credentialName": "x", "authType": "basic", "username": "u", "password": pw, "status": "expired"}, "status"},
		{"bad expiry", map[string]any{"credentialName": "x", "authType": "basic", "username": "u", "password": pw, "expiresAt": "tomorrow"}, "expiresAt"},
		{"unknown field", map[string]any{"credentialName": "x", "authType": "basic", "username": "u", "password": pw, "passwd": "x"}, "passwd"},
		{"huge metadata", map[string]any{"credentialName": "x", "authType": "basic", "username": "u", "password": pw, "metadata": map[string]any{"k": strings.Repeat("m", 5000)}}, "metadata"},
		{"bad custom key", map[string]any{"credentialName": "x", "authType": "custom", "customFields": map[string]any{"a b": "v"}}, "customFields"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.body["integrationId"] = "svc"
			r := a.do("POST", "/api/v1/credentials", tok, tt.body)
			e := wantEnvelopeError(t, r, 400, "VALIDATION_FAILED")
			fields, _ := e["fields"].(map[string]any)
			if _, ok := fields[tt.field]; !ok || !strings.Contains(e["details"].(string), tt.field) {
				t.Fatalf("the error does not name %q in fields and details: %s", tt.field, r.Raw)
			}
			noSecrets(t, r, pw)
		})
	}
	// Descriptive fields each within its limit are stored up to what
	// Vault's custom_metadata holds together (about 13 KB), and refused
	// beyond, before anything is written.
	big := func(authEndpoint int) map[string]any {
		scopes := make([]string, 32)
		for i := range scopes {
			scopes[i] = strings.Repeat("s", 128)
		}
		return map[string]any{"integrationId": "svc", "credentialName": "big", "authType": "basic", "username": "u", "password": pw,
			"description": strings.Repeat("d", 2000), "metadata": map[string]any{"k": strings.Repeat("m", 4000)}, "scopes": scopes,
			"tokenEndpoint": "https://127.0.0.1:9/" + strings.Repeat("e", 1990), "authorizationEndpoint": "https://" + strings.Repeat("a", authEndpoint) + ".example/a"}
	}
	fits := a.do("POST", "/api/v1/credentials", tok, big(100))
	id := wantEnvelope(t, fits, 201)["id"].(string)
	if got := wantEnvelope(t, a.do("GET", "/api/v1/credentials/"+id+"/versions", tok, nil), 200); len(got["versions"].([]any)) != 1 {
		t.Fatalf("versions of the large credential: %v", got)
	}
	e := wantEnvelopeError(t, a.do("POST", "/api/v1/credentials", tok, big(1990)), 400, "VALIDATION_FAILED")
	if _, ok := e["fields"].(map[string]any)["body"]; !ok {
		t.Fatalf("too large together: %v", e)
	}
	if items, _ := a.do("GET", "/api/v1/credentials?integrationId=svc", tok, nil).Body["data"].([]any); len(items) != 1 {
		t.Fatalf("after the refused create the service has %d credentials; want 1", len(items))
	}
}

func TestViewerSeesMetadataButNeverValues(t *testing.T) {
	a := newAPI(t, apiOptions{})
	tok, ten := adminWithService(t, a, "sendgrid")
	key := secret("SG." + randHex(16))
	id := a.mustCreateCredential(tok, map[string]any{"integrationId": "sendgrid", "credentialName": "mail", "authType": "api_key", "apiKey": key})["id"].(string)

	viewer := token(t, "viewer", ten, "integration_viewer")
	list := a.do("GET", "/api/v1/credentials?integrationId=sendgrid", viewer, nil)
	noSecrets(t, list, key)
	if items, _ := list.Body["data"].([]any); len(items) != 1 || items[0].(map[string]any)["credentialName"] != "mail" {
		t.Fatalf("viewer list: %s", list.Raw)
	}
	wantEnvelope(t, a.do("GET", "/api/v1/credentials/"+id+"/versions", viewer, nil), 200)
	if r := a.do("GET", "/api/v1/services/sendgrid/credentials/versions", viewer, nil); r.Status != 200 {
		t.Fatalf("viewer service credential versions: %d %s", r.Status, r.Raw)
	}
	wantEnvelopeError(t, a.do("GET", "/api/v1/credentials/sendgrid", viewer, nil), 403, "INSUFFICIENT_PERMISSIONS")
	wantError(t, a.do("GET", "/api/v1/services/sendgrid/credentials", viewer, nil), 403, "INSUFFICIENT_PERMISSIONS")
	wantEnvelopeError(t, a.do("POST", "/api/v1/credentials/"+id+"/rotate", viewer, map[string]any{"generate": true}), 403, "INSUFFICIENT_PERMISSIONS")

	// Vault itself refuses the viewer's token on the value path.
	vp, err := a.store.TokenFor(context.Background(), viewerPrincipal(t, a, viewer))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := s.vault.NewClient()
	c.SetToken(vp)
	_, err = c.Logical().Read("credgate/data/tenants/" + ten + "/credentials/sendgrid/" + id)
	var re *api.ResponseError
	if !errors.As(err, &re) || re.StatusCode != 403 {
		t.Fatalf("the viewer's Vault token reading the value: %v; want 403 from Vault", err)
	}
	if _, err := c.Logical().Read("credgate/metadata/tenants/" + ten + "/credentials/sendgrid/" + id); err != nil {
		t.Fatalf("the viewer's Vault token reading the description: %v", err)
	}

	reader := token(t, "reader", ten, "credential_reader")
	if got := wantEnvelope(t, a.do("GET", "/api/v1/credentials/sendgrid", reader, nil), 200); got["apiKey"] != key {
		t.Fatalf("reader: %v", got)
	}
	// The current version by number is what a read without it serves;
	// another version (but the previous one kept by a rotation) is history.
	if got := wantEnvelope(t, a.do("GET", "/api/v1/credentials/sendgrid?credentialId="+id+"&version=1", reader, nil), 200); got["apiKey"] != key {
		t.Fatalf("reader, current version by number: %v", got)
	}
	wantEnvelopeError(t, a.do("GET", "/api/v1/credentials/sendgrid?credentialId="+id+"&version=2", reader, nil), 403, "INSUFFICIENT_PERMISSIONS")
	wantEnvelopeError(t, a.do("POST", "/api/v1/credentials", reader, map[string]any{"integrationId": "sendgrid"}), 403, "INSUFFICIENT_PERMISSIONS")

	// Another tenant's admin sees nothing of it.
	other := token(t, "other", tenant(t), "integration_admin")
	wantEnvelopeError(t, a.do("GET", "/api/v1/credentials/sendgrid?credentialId="+id, other, nil), 404, "CREDENTIAL_NOT_FOUND")
	wantEnvelopeError(t, a.do("PATCH", "/api/v1/credentials/"+id, other, map[string]any{"description": "x"}), 404, "CREDENTIAL_NOT_FOUND")
	wantEnvelopeError(t, a.do("POST", "/api/v1/credentials/"+id+"/rotate", other, map[string]any{"generate": true}), 404, "CREDENTIAL_NOT_FOUND")
}

// viewerPrincipal asks credgate who tok is and rebuilds the principal, so
// the test can obtain the very Vault token credgate uses for it.
func viewerPrincipal(t *testing.T, a *testAPI, tok string) *credgate.Principal {
	t.Helper()
	r := a.do("GET", "/debug/auth", tok, nil)
	var roles []string
	for _, x := range r.Body["roles"].([]any) {
		roles = append(roles, x.(string))
	}
	exp, _ := time.Parse(time.RFC3339, r.str("expires_at"))
	return &credgate.Principal{Subject: r.str("subject"), Name: r.str("name"), Email: r.str("email"), Tenant: r.str("tenant"), Issuer: r.str("issuer"), Roles: roles, Expiry: exp}
}

func TestServicesFamilyCredentials(t *testing.T) {
	a := newAPI(t, apiOptions{})
	tok, _ := adminWithService(t, a, "servicenow")
	wantError(t, a.do("GET", "/api/v1/services/servicenow/credentials", tok, nil), 404, "CREDENTIALS_NOT_FOUND")
	wantError(t, a.do("GET", "/api/v1/services/nope/credentials", tok, nil), 404, "SERVICE_NOT_FOUND")
	wantError(t, a.do("PUT", "/api/v1/services/nope/credentials", tok, map[string]any{"credentials": map[string]any{"api_key": "x"}}), 404, "SERVICE_NOT_FOUND")
	wantError(t, a.do("GET", "/api/v1/services/servicenow/credentials/versions", tok, nil), 404, "CREDENTIALS_NOT_FOUND")

	cid, csec := secret("cid-"+randHex(6)), secret("csec-"+randHex(12))
	put := a.do("PUT", "/api/v1/services/servicenow/credentials", tok, map[string]any{
		"credentials": map[string]any{"client_id": cid, "client_secret": csec, "environment": "production"},
		"metadata":    map[string]any{"expires_at": "2031-06-01T00:00:00Z"},
	})
	noSecrets(t, put, cid, csec)
	if put.Status != 200 || put.Header.Get("ETag") != `"1"` {
		t.Fatalf("put credentials: %d %s", put.Status, put.Raw)
	}
	got := a.do("GET", "/api/v1/services/servicenow/credentials", tok, nil)
	if got.Status != 200 {
		t.Fatalf("get credentials: %d %s", got.Status, got.Raw)
	}
	if d := cmp.Diff(map[string]any{"client_id": cid, "client_secret": csec, "environment": "production"}, got.Body["credentials"]); d != "" {
		t.Fatalf("credentials (-want +got):\n%s", d)
	}
	meta := got.Body["metadata"].(map[string]any)
	if got.str("service_id") != "servicenow" || meta["expires_at"] != "2031-06-01T00:00:00Z" || meta["last_rotated"] == nil {
		t.Fatalf("shape: %s", got.Raw)
	}

	// The credentials family reads and writes the same record.
	fam := wantEnvelope(t, a.do("GET", "/api/v1/credentials/servicenow", tok, nil), 200)
	if fam["clientId"] != cid || fam["clientSecret"] != csec || fam["customFields"].(map[string]any)["environment"] != "production" || fam["integrationId"] != "servicenow" {
		t.Fatalf("credentials family view: %v", fam)
	}
	csec2 := secret("csec-" + randHex(12))
	wantEnvelope(t, a.do("PATCH", "/api/v1/credentials/"+fam["id"].(string), tok, map[string]any{"clientSecret": csec2}), 200)

	// PUT of the service with credentials sets both; every write is a version.
	svc := a.do("GET", "/api/v1/services/servicenow", tok, nil).Body
	svc["description"] = "ITSM"
	svc["credentials"] = map[string]any{"client_id": cid, "client_secret": secret("csec-" + randHex(12))}
	if r := a.do("PUT", "/api/v1/services/servicenow", tok, svc); r.Status != 200 || r.str("description") != "ITSM" || strings.Contains(string(r.Raw), "csec-") {
		t.Fatalf("put service with credentials: %d %s", r.Status, r.Raw)
	}
	vr := a.do("GET", "/api/v1/services/servicenow/credentials/versions", tok, nil)
	noSecrets(t, vr, csec, csec2)
	if vs, _ := vr.Body["versions"].([]any); len(vs) != 3 || vs[2].(map[string]any)["current"] != true || vs[2].(map[string]any)["change"] != "rotated" {
		t.Fatalf("versions: %s", vr.Raw)
	}
	if c := a.do("GET", "/api/v1/services/servicenow/credentials", tok, nil).Body["credentials"].(map[string]any); c["environment"] != nil || c["client_secret"] == csec2 {
		t.Fatalf("PUT replaces the whole set: %v", c)
	}
	wantError(t, a.do("PUT", "/api/v1/services/servicenow/credentials", tok, map[string]any{"credentials": map[string]any{"a": "x"}}, "If-Match", `"1"`), 409, "VERSION_CONFLICT")
	wantError(t, a.do("PUT", "/api/v1/services/servicenow/credentials", tok, map[string]any{"credentials": map[string]any{}}), 400, "VALIDATION_FAILED")
	wantError(t, a.do("POST", "/api/v1/services", tok, map[string]any{"name": "x", "credentials": map[string]any{"a": "b"}}), 400, "VALIDATION_FAILED")

	// A viewer may not set credentials through PUT of the service.
	viewer := token(t, "v", tenant(t), "integration_viewer")
	wantError(t, a.do("PUT", "/api/v1/services/servicenow", viewer, svc), 403, "INSUFFICIENT_PERMISSIONS")

	// Deleting the service removes its credentials.
	id := fam["id"].(string)
	if r := a.do("DELETE", "/api/v1/services/servicenow", tok, nil); r.Status != 204 {
		t.Fatalf("delete service: %d %s", r.Status, r.Raw)
	}
	wantEnvelopeError(t, a.do("GET", "/api/v1/credentials/"+id+"/versions", tok, nil), 404, "CREDENTIAL_NOT_FOUND")
	a.mustCreate(tok, map[string]any{"id": "servicenow", "name": "ServiceNow again"})
	wantError(t, a.do("GET", "/api/v1/services/servicenow/credentials", tok, nil), 404, "CREDENTIALS_NOT_FOUND")
}

func TestRotateWithValuesAndGenerated(t *testing.T) {
	a := newAPI(t, apiOptions{})
	tok, _ := adminWithService(t, a, "twilio")
	k1 := secret("AC" + randHex(16))
	id := a.mustCreateCredential(tok, map[string]any{"integrationId": "twilio", "credentialName": "sms", "authType": "api_key", "apiKey": k1})["id"].(string)

	k2 := secret("AC" + randHex(16))
	r := a.do("POST", "/api/v1/credentials/"+id+"/rotate", tok, map[string]any{"apiKey": k2})
	noSecrets(t, r, k1, k2)
	if d := wantEnvelope(t, r, 200); d["version"] != float64(2) || d["apiKey"] != "********" || d["lastRotatedAt"] == nil {
		t.Fatalf("rotate with values: %s", r.Raw)
	}
	g := a.do("POST", "/api/v1/credentials/"+id+"/rotate", tok, map[string]any{"generate": true})
	wantEnvelope(t, g, 200)
	got := wantEnvelope(t, a.do("GET", "/api/v1/credentials/twilio", tok, nil), 200)
	gen, _ := got["apiKey"].(string)
	secret(gen)
	if gen == k2 || len(gen) < 40 || got["version"] != float64(3) {
		t.Fatalf("generated key %q at version %v", gen, got["version"])
	}
	if a.opCount("random") != 1 {
		t.Fatalf("Vault generated %d values; want 1", a.opCount("random"))
	}

	wantEnvelopeError(t, a.do("POST", "/api/v1/credentials/"+id+"/rotate", tok, map[string]any{"generate": true, "apiKey": "x"}), 400, "VALIDATION_FAILED")
	wantEnvelopeError(t, a.do("POST", "/api/v1/credentials/"+id+"/rotate", tok, map[string]any{"description": "x"}), 400, "VALIDATION_FAILED")
	wantEnvelopeError(t, a.do("POST", "/api/v1/credentials/"+id+"/rotate", tok, nil), 400, "VALIDATION_FAILED") // no refresh token

	// Concurrent rotations: every one lands, none is lost.
	const n = 20
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			r := a.do("POST", "/api/v1/credentials/"+id+"/rotate", tok, map[string]any{"generate": true})
			if r.Status != 200 {
				t.Errorf("concurrent rotate: %d %s", r.Status, r.Raw)
			}
		})
	}
	wg.Wait()
	final := wantEnvelope(t, a.do("GET", "/api/v1/credentials/twilio", tok, nil), 200)
	secret(final["apiKey"].(string))
	if final["version"] != float64(3+n) {
		t.Fatalf("after %d concurrent rotations: version %v; want %d", n, final["version"], 3+n)
	}
	// What a viewer sees (the metadata projection) describes that version too.
	items, _ := a.do("GET", "/api/v1/credentials?integrationId=twilio", tok, nil).Body["data"].([]any)
	if len(items) != 1 || items[0].(map[string]any)["version"] != float64(3+n) {
		t.Fatalf("after %d concurrent rotations the description shows %v; want version %d", n, items, 3+n)
	}
}

func TestOAuth2Rotation(t *testing.T) {
	a := newAPI(t, apiOptions{})
	tok, _ := adminWithService(t, a, "salesforce")
	ts := startTokenServer(t)
	first := ts.login(t)
	id := a.mustCreateCredential(tok, map[string]any{
		"integrationId": "salesforce", "credentialName": "api user", "authType": "oauth2_bearer",
		"accessToken": first.AccessToken, "refreshToken": first.RefreshToken,
		"clientId": ts.ClientID, "clientSecret": ts.ClientSecret, "tokenEndpoint": ts.URL + "/token",
	})["id"].(string)

	r := a.do("POST", "/api/v1/credentials/"+id+"/rotate", tok, nil)
	noSecrets(t, r, first.AccessToken, first.RefreshToken, ts.ClientSecret)
	if d := wantEnvelope(t, r, 200); d["version"] != float64(2) || d["expiresAt"] == nil {
		t.Fatalf("rotate: %s", r.Raw)
	}
	got := wantEnvelope(t, a.do("GET", "/api/v1/credentials/salesforce", tok, nil), 200)
	at, rt := got["accessToken"].(string), got["refreshToken"].(string)
	secret(at)
	secret(rt)
	if at == first.AccessToken || rt == first.RefreshToken || !ts.accepts(t, at) || ts.accepts(t, first.AccessToken) {
		t.Fatalf("the stored tokens are not the new ones the server issued")
	}
	if ts.grantCounts()[first.RefreshToken] != 1 {
		t.Fatalf("grants: %v", ts.grantCounts())
	}

	// A refused refresh is 502 and writes nothing.
	ts.Refuse(true)
	bad := a.do("POST", "/api/v1/credentials/"+id+"/rotate", tok, nil)
	wantEnvelopeError(t, bad, 502, "UPSTREAM_ERROR")
	noSecrets(t, bad, rt, at, ts.ClientSecret)
	if e := wantEnvelopeError(t, bad, 502, "UPSTREAM_ERROR"); e["upstreamError"] != "invalid_grant" || e["upstream_status"] != nil {
		t.Fatalf("502 says no more than the OAuth2 error code: %s", bad.Raw)
	}
	after := wantEnvelope(t, a.do("GET", "/api/v1/credentials/salesforce", tok, nil), 200)
	if after["version"] != float64(2) || after["refreshToken"] != rt {
		t.Fatalf("a refused refresh changed the credential: version %v", after["version"])
	}
	ts.Refuse(false)
	ts.ResetCounts()

	// 20 rotations at once, spread over two replicas (two credgate
	// instances with their own caches, one Vault): one grant per refresh
	// token, one version each.
	replicas := []*testAPI{a, newAPI(t, apiOptions{})}
	const n = 20
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if r := replicas[i%2].do("POST", "/api/v1/credentials/"+id+"/rotate", tok, nil); r.Status != 200 {
				t.Errorf("concurrent rotate: %d %s", r.Status, r.Raw)
			}
		})
	}
	wg.Wait()
	grants := ts.grantCounts()
	total := 0
	for rtok, c := range grants {
		secret(rtok)
		total += c
		if c != 1 {
			t.Errorf("a refresh token was used in %d grants", c)
		}
	}
	if total != n {
		t.Fatalf("%d grants for %d rotations", total, n)
	}
	final := wantEnvelope(t, a.do("GET", "/api/v1/credentials/salesforce", tok, nil), 200)
	secret(final["accessToken"].(string))
	secret(final["refreshToken"].(string))
	if final["version"] != float64(2+n) || !ts.accepts(t, final["accessToken"].(string)) {
		t.Fatalf("after %d rotations: version %v (want %d), token accepted %v", n, final["version"], 2+n, ts.accepts(t, final["accessToken"].(string)))
	}
	if _, used := grants[final["refreshToken"].(string)]; used {
		t.Fatal("the stored refresh token was already spent")
	}
	vs := wantEnvelope(t, a.do("GET", "/api/v1/credentials/"+id+"/versions", tok, nil), 200)["versions"].([]any)
	if last := vs[len(vs)-1].(map[string]any); last["change"] != "rotated" || last["current"] != true {
		t.Fatalf("last version: %v", last)
	}
}

func TestOAuth2RotationKeepsRefreshTokenTheServerDoesNotReplace(t *testing.T) {
	a := newAPI(t, apiOptions{})
	tok, _ := adminWithService(t, a, "hubspot")
	ts := startTokenServerWith(t, &manage.RefreshingConfig{IsGenerateRefresh: false, IsRemoveAccess: true})
	first := ts.login(t)
	id := a.mustCreateCredential(tok, map[string]any{
		"integrationId": "hubspot", "credentialName": "crm", "authType": "oauth2_bearer",
		"accessToken": first.AccessToken, "refreshToken": first.RefreshToken,
		"clientId": ts.ClientID, "clientSecret": ts.ClientSecret, "tokenEndpoint": ts.URL + "/token",
	})["id"].(string)
	for i := range 2 {
		wantEnvelope(t, a.do("POST", "/api/v1/credentials/"+id+"/rotate", tok, nil), 200)
		got := wantEnvelope(t, a.do("GET", "/api/v1/credentials/hubspot", tok, nil), 200)
		secret(got["accessToken"].(string))
		if got["refreshToken"] != first.RefreshToken || got["accessToken"] == first.AccessToken || !ts.accepts(t, got["accessToken"].(string)) {
			t.Fatalf("rotation %d: the refresh token must stay and the access token be new", i+1)
		}
	}
}

func TestLastAccessedAtIsBookkeeping(t *testing.T) {
	a := newAPI(t, apiOptions{})
	tok, ten := adminWithService(t, a, "okta")
	id := a.mustCreateCredential(tok, map[string]any{"integrationId": "okta", "credentialName": "sso", "authType": "bearer", "accessToken": secret("00" + randHex(16))})["id"].(string)
	for range 5 {
		wantEnvelope(t, a.do("GET", "/api/v1/credentials/okta", tok, nil), 200)
	}
	viewer := token(t, "viewer", ten, "integration_viewer")
	deadline := time.Now().Add(5 * time.Second)
	var seen any
	for time.Now().Before(deadline) {
		list := a.do("GET", "/api/v1/credentials?integrationId=okta", viewer, nil)
		if items, _ := list.Body["data"].([]any); len(items) == 1 {
			if seen = items[0].(map[string]any)["lastAccessedAt"]; seen != nil {
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if seen == nil {
		t.Fatal("lastAccessedAt never reached the credential's metadata")
	}
	if n := a.opCount("credential_touch"); n != 1 {
		t.Fatalf("%d lastAccessedAt writes for 5 reads within a minute; want 1", n)
	}
	if v := wantEnvelope(t, a.do("GET", "/api/v1/credentials/"+id+"/versions", tok, nil), 200)["versions"].([]any); len(v) != 1 {
		t.Fatalf("lastAccessedAt made a version: %v", v)
	}
}

func TestDecryptedReadsAreAuditedAsTheCaller(t *testing.T) {
	a := newAPI(t, apiOptions{})
	tok, ten := adminWithService(t, a, "aws")
	id := a.mustCreateCredential(tok, map[string]any{"integrationId": "aws", "credentialName": "deploy", "authType": "api_key", "apiKey": secret("AKIA" + randHex(8))})["id"].(string)
	reader := token(t, "rita", ten, "credential_reader")
	sub := a.do("GET", "/debug/auth", reader, nil).str("subject")
	rid := "cred-read-" + randHex(6)
	wantEnvelope(t, a.do("GET", "/api/v1/credentials/aws", reader, nil, "X-Request-Id", rid), 200)
	e := vaulttest.FindAuditResponse(t, s.auditFile, "read", "credgate/data/tenants/"+ten+"/credentials/aws/"+id, rid)
	if e.Auth.Metadata["sub"] != sub || e.Auth.Metadata["tenant"] != ten {
		t.Fatalf("the read is attributed to %v", e.Auth.Metadata)
	}
}

func validCredentialID(id string) bool {
	_, ok := credgate.CanonicalCredentialID(id)
	return ok
}

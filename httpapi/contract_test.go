package httpapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/credgate/credgate/vaultstore/vaultidp"
)

// The contract as the seed clients read it: what a typed client decodes,
// which fields may be absent, how ids are written. Each test is one thing a
// seed client was seen to trip on.

// seedError is the credentials family's error as seed 002 types it: details
// is a string.
type seedError struct {
	Success bool `json:"success"`
	Error   struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Details string `json:"details"`
	} `json:"error"`
	Timestamp time.Time `json:"timestamp"`
}

func decodeSeedError(t *testing.T, r reply) seedError {
	t.Helper()
	var e seedError
	if err := json.Unmarshal(r.Raw, &e); err != nil {
		t.Fatalf("a typed client cannot decode the error: %v\n%s", err, r.Raw)
	}
	if e.Success || e.Error.Code == "" || e.Error.Message == "" || e.Error.Details == "" || e.Timestamp.IsZero() {
		t.Fatalf("decoded error is incomplete: %+v\n%s", e, r.Raw)
	}
	return e
}

func TestCredentialsFamilyErrorsDecodeIntoTheSeedShape(t *testing.T) {
	a := newAPI(t, apiOptions{})
	tok, _ := adminWithService(t, a, "stripe")
	id := a.mustCreateCredential(tok, map[string]any{"integrationId": "stripe", "credentialName": "live", "authType": "api_key", "apiKey": secret("sk_" + randHex(8))})["id"].(string)

	// The seed 002 example: a malformed credentialId.
	e := decodeSeedError(t, a.do("GET", "/api/v1/credentials/stripe?credentialId=not-a-uuid", tok, nil))
	if e.Error.Code != "INVALID_PARAMETER" || !strings.Contains(e.Error.Details, "credentialId") {
		t.Fatalf("malformed credentialId: %+v", e)
	}

	tests := []struct {
		name           string
		method, path   string
		tok            string
		body           any
		hdr            []string
		status         int
		code           string
		sibling, value string // a structured fact beside details
	}{
		{"validation names the fields", "POST", "/api/v1/credentials", tok, map[string]any{"integrationId": "stripe", "authType": "api_key"}, nil, 400, "VALIDATION_FAILED", "fields", ""},
		{"stale If-Match names the version", "PATCH", "/api/v1/credentials/" + id, tok, map[string]any{"description": "x"}, []string{"If-Match", `"7"`}, 409, "VERSION_CONFLICT", "currentVersion", "1"},
		{"no token", "GET", "/api/v1/credentials/stripe", "", nil, nil, 401, "UNAUTHORIZED", "", ""},
		{"unknown credential", "GET", "/api/v1/credentials/stripe?credentialId=cred-00000000-0000-4000-8000-000000000000", tok, nil, nil, 404, "CREDENTIAL_NOT_FOUND", "", ""},
		{"wrong method", "PUT", "/api/v1/credentials/" + id + "/versions", tok, map[string]any{}, nil, 405, "METHOD_NOT_ALLOWED", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := a.do(tt.method, tt.path, tt.tok, tt.body, tt.hdr...)
			if r.Status != tt.status {
				t.Fatalf("status %d; want %d\n%s", r.Status, tt.status, r.Raw)
			}
			e := decodeSeedError(t, r)
			if e.Error.Code != tt.code {
				t.Fatalf("code %s; want %s", e.Error.Code, tt.code)
			}
			if tt.sibling != "" {
				raw, _ := r.Body["error"].(map[string]any)[tt.sibling]
				if raw == nil || (tt.value != "" && strings.Trim(string(mustJSON(t, raw)), `"`) != tt.value) {
					t.Fatalf("error.%s = %v; want %q\n%s", tt.sibling, raw, tt.value, r.Raw)
				}
			}
		})
	}

	// The services family keeps its details object.
	r := a.do("POST", "/api/v1/services", tok, map[string]any{"base_url": "ftp://x"})
	wantError(t, r, 400, "VALIDATION_FAILED")
	if f := r.Body["error"].(map[string]any)["details"].(map[string]any)["fields"].(map[string]any); f["name"] == nil || f["base_url"] == nil {
		t.Fatalf("services family details: %s", r.Raw)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOptionalFieldsAreLeftOutNotNull(t *testing.T) {
	a := newAPI(t, apiOptions{})
	tok, _ := adminWithService(t, a, "sendgrid")
	a.mustCreateCredential(tok, map[string]any{"integrationId": "sendgrid", "credentialName": "mail", "authType": "api_key", "apiKey": secret("SG." + randHex(8))})

	fam := a.do("GET", "/api/v1/credentials/sendgrid", tok, nil)
	for _, key := range []string{"expiresAt", "lastAccessedAt", "lastRotatedAt", "customFields", "password"} {
		if _, present := fam.data()[key]; present {
			t.Errorf("credentials family: %s is present although unset\n%s", key, fam.Raw)
		}
	}
	svc := a.do("GET", "/api/v1/services/sendgrid/credentials", tok, nil)
	meta := svc.Body["metadata"].(map[string]any)
	if _, present := meta["expires_at"]; present || meta["last_rotated"] == nil {
		t.Errorf("services family metadata: %v", meta)
	}
	for _, r := range []reply{fam, svc} {
		if err := noNulls(r.Raw); err != nil {
			t.Fatalf("%v:\n%s", err, r.Raw)
		}
	}
}

func TestBareUUIDNamesTheSameCredential(t *testing.T) {
	a := newAPI(t, apiOptions{})
	tok, _ := adminWithService(t, a, "jira")
	id := a.mustCreateCredential(tok, map[string]any{"integrationId": "jira", "credentialName": "bot", "authType": "basic", "username": "bot", "password": secret("pw-" + randHex(8))})["id"].(string)
	bare := strings.TrimPrefix(id, "cred-")
	upper := strings.ToUpper(bare)

	for _, form := range []string{bare, upper, "CRED-" + upper} {
		got := wantEnvelope(t, a.do("GET", "/api/v1/credentials/jira?credentialId="+form, tok, nil), 200)
		if got["id"] != id {
			t.Fatalf("credentialId=%s read %v; want %s", form, got["id"], id)
		}
		versions := wantEnvelope(t, a.do("GET", "/api/v1/credentials/"+form+"/versions", tok, nil), 200)
		if versions["credentialId"] != id {
			t.Fatalf("versions of %s: %v", form, versions)
		}
	}
	if got := wantEnvelope(t, a.do("PATCH", "/api/v1/credentials/"+bare, tok, map[string]any{"description": "by uuid"}), 200); got["id"] != id || got["description"] != "by uuid" {
		t.Fatalf("PATCH by the bare UUID: %v", got)
	}
	if got := wantEnvelope(t, a.do("POST", "/api/v1/credentials/"+upper+"/rotate", tok, map[string]any{"password": secret("pw-" + randHex(8))}), 200); got["id"] != id || got["version"] != float64(3) {
		t.Fatalf("rotate by the upper-case UUID: %v", got)
	}
	wantEnvelope(t, a.do("DELETE", "/api/v1/credentials/"+bare, tok, nil), 200)
	wantEnvelopeError(t, a.do("GET", "/api/v1/credentials/jira?credentialId="+id, tok, nil), 404, "CREDENTIAL_NOT_FOUND")
}

func TestLastAccessedAtIsThePreviousAccess(t *testing.T) {
	a := newAPI(t, apiOptions{})
	tok, _ := adminWithService(t, a, "okta")
	a.mustCreateCredential(tok, map[string]any{"integrationId": "okta", "credentialName": "sso", "authType": "bearer", "accessToken": secret("00" + randHex(16))})

	first := a.do("GET", "/api/v1/credentials/okta", tok, nil)
	if _, set := wantEnvelope(t, first, 200)["lastAccessedAt"]; set {
		t.Fatalf("the first read shows an access: %s", first.Raw)
	}
	readAt, _ := time.Parse(time.RFC3339, first.Body["timestamp"].(string))
	// The access is recorded in the background; wait until a read shows it,
	// then check it is the first read, not the read showing it.
	time.Sleep(1100 * time.Millisecond) // a later read has a later second
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := a.do("GET", "/api/v1/credentials/okta", tok, nil)
		d := wantEnvelope(t, r, 200)
		if s, ok := d["lastAccessedAt"].(string); ok {
			seen, _ := time.Parse(time.RFC3339, s)
			now, _ := time.Parse(time.RFC3339, r.Body["timestamp"].(string))
			if seen.Sub(readAt).Abs() > time.Second || !seen.Before(now) {
				t.Fatalf("lastAccessedAt %s; want the first read's time %s (this read is at %s)", seen, readAt, now)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the first read was never recorded")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestTenantNameComesFromTheClaimOrTheConfiguration(t *testing.T) {
	named, configured, plain := tenant(t), tenant(t), tenant(t)
	a := newAPI(t, apiOptions{tenantNames: map[string]string{configured: "Globex Corporation"}})
	tests := []struct {
		name string
		user vaultidp.User
		want string
	}{
		{"claim", vaultidp.User{Name: "amy", Tenant: named, TenantName: "Acme Corporation", Roles: []string{"integration_admin"}}, "Acme Corporation"},
		{"configuration", vaultidp.User{Name: "gus", Tenant: configured, Roles: []string{"integration_admin"}}, "Globex Corporation"},
		{"neither", vaultidp.User{Name: "pat", Tenant: plain, Roles: []string{"integration_admin"}}, plain},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := tokenFor(t, tt.user)
			a.mustCreate(tok, map[string]any{"id": "svc", "name": "Svc"})
			d := wantEnvelope(t, a.do("POST", "/api/v1/credentials", tok, map[string]any{"integrationId": "svc", "credentialName": "k", "authType": "api_key", "apiKey": secret("k-" + randHex(6))}), 201)
			want := map[string]any{"id": tt.user.Tenant, "name": tt.want}
			if diff := cmp.Diff(want, d["tenant"]); diff != "" {
				t.Fatalf("tenant (-want +got):\n%s", diff)
			}
		})
	}
}

var cmpSorted = cmpopts.SortSlices(func(a, b string) bool { return a < b })

func TestWrongMethodIs405WithAllowBeforeAuthentication(t *testing.T) {
	a := newAPI(t, apiOptions{})
	tests := []struct {
		method, path string
		allow        []string
	}{
		{"POST", "/api/v1/services/x", []string{"GET", "PUT", "PATCH", "DELETE"}},
		{"DELETE", "/api/v1/services", []string{"GET", "POST"}},
		{"PUT", "/api/v1/credentials/cred-00000000-0000-4000-8000-000000000000", []string{"GET", "PATCH", "DELETE"}},
		{"GET", "/api/v1/credentials/x/rotate", []string{"POST"}},
	}
	for _, tt := range tests {
		r := a.do(tt.method, tt.path, "", nil)
		if r.Status != http.StatusMethodNotAllowed || r.errCode() != "METHOD_NOT_ALLOWED" {
			t.Errorf("%s %s: %d %s", tt.method, tt.path, r.Status, r.Raw)
			continue
		}
		got := strings.Split(r.Header.Get("Allow"), ", ")
		if diff := cmp.Diff(tt.allow, got, cmpSorted); diff != "" {
			t.Errorf("%s %s: Allow (-want +got):\n%s", tt.method, tt.path, diff)
		}
	}
}

package httpapi_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/credgate/credgate"
)

// An unknown query parameter is 400 INVALID_PARAMETER naming it, in both
// families (the document's parameters are the one list); a body declared
// as something other than JSON is 415; JSON under its own media types, or
// without a Content-Type, is read. (Issue 17, items 2 and 4.)
func TestUnknownQueryParametersAndNonJSONBodiesAreRefused(t *testing.T) {
	a := newAPI(t, apiOptions{})
	tok, _ := adminWithService(t, a, "stripe")
	e := wantEnvelopeError(t, a.do("GET", "/api/v1/credentials?integration_id=stripe", tok, nil), 400, credgate.EInvalidParameter)
	if d, _ := e["details"].(string); !strings.Contains(d, "integration_id") || !strings.Contains(d, "integrationId") {
		t.Fatalf("the refusal names neither the parameter nor what the route takes: %v", e)
	}
	r := a.do("GET", "/api/v1/services?colour=red", tok, nil)
	wantError(t, r, 400, credgate.EInvalidParameter)
	if !strings.Contains(string(r.Raw), "colour") {
		t.Fatalf("services family: %s", r.Raw)
	}
	wantEnvelope(t, a.do("GET", "/api/v1/credentials?integrationId=stripe&limit=5", tok, nil), 200)
	if r := a.do("GET", "/api/v1/services?limit=5", tok, nil); r.Status != 200 {
		t.Fatalf("a documented parameter: %d %s", r.Status, r.Raw)
	}

	body := `{"id":"sendgrid","name":"SendGrid"}`
	r = a.do("POST", "/api/v1/services", tok, body, "Content-Type", "text/plain")
	wantError(t, r, http.StatusUnsupportedMediaType, credgate.EUnsupportedMediaType)
	r = a.do("POST", "/api/v1/credentials", tok, `{"integrationId":"stripe"}`, "Content-Type", "application/x-www-form-urlencoded")
	wantEnvelopeError(t, r, http.StatusUnsupportedMediaType, credgate.EUnsupportedMediaType)
	if r := a.do("GET", "/api/v1/services/sendgrid", tok, nil); r.Status != 404 {
		t.Fatalf("a refused body was stored: %d", r.Status)
	}
	if r := a.do("POST", "/api/v1/services", tok, body, "Content-Type", "application/json; charset=utf-8"); r.Status != 201 {
		t.Fatalf("application/json with a charset: %d %s", r.Status, r.Raw)
	}
	if r := a.do("PATCH", "/api/v1/services/sendgrid", tok, `{"description":"email"}`, "Content-Type", "application/merge-patch+json"); r.Status != 200 {
		t.Fatalf("a merge patch under its media type: %d %s", r.Status, r.Raw)
	}
}

// Every GET answers HEAD; a GET whose If-None-Match names the record's
// ETag is 304 without a body; If-Match: * writes whatever the version.
// (Issue 17, item 5.)
func TestHeadConditionalGetsAndIfMatchAny(t *testing.T) {
	a := newAPI(t, apiOptions{})
	tok, _ := adminWithService(t, a, "stripe")
	get := a.do("GET", "/api/v1/services/stripe", tok, nil)
	tag := get.Header.Get("ETag")
	if get.Status != 200 || tag == "" {
		t.Fatalf("GET: %d %q", get.Status, tag)
	}
	head := a.do("HEAD", "/api/v1/services/stripe", tok, nil)
	if head.Status != 200 || len(head.Raw) != 0 || head.Header.Get("ETag") != tag || head.Header.Get("X-RateLimit-Limit") == "" {
		t.Fatalf("HEAD: %d %q %v", head.Status, head.Raw, head.Header)
	}
	if r := a.do("HEAD", "/api/v1/services/nope", tok, nil); r.Status != 404 || len(r.Raw) != 0 {
		t.Fatalf("HEAD of nothing: %d %q", r.Status, r.Raw)
	}
	if r := a.do("HEAD", "/api/v1/credentials?integrationId=stripe", tok, nil); r.Status != 200 || len(r.Raw) != 0 {
		t.Fatalf("HEAD of the inventory: %d", r.Status)
	}
	nm := a.do("GET", "/api/v1/services/stripe", tok, nil, "If-None-Match", tag)
	if nm.Status != http.StatusNotModified || len(nm.Raw) != 0 || nm.Header.Get("ETag") != tag {
		t.Fatalf("If-None-Match the current ETag: %d %q", nm.Status, nm.Raw)
	}
	if r := a.do("GET", "/api/v1/services/stripe", tok, nil, "If-None-Match", `"999"`); r.Status != 200 || len(r.Raw) == 0 {
		t.Fatalf("If-None-Match another: %d", r.Status)
	}
	// A write through If-Match: * (the record must exist).
	if r := a.do("PATCH", "/api/v1/services/stripe", tok, map[string]any{"description": "payments"}, "If-Match", "*"); r.Status != 200 {
		t.Fatalf("If-Match *: %d %s", r.Status, r.Raw)
	}
	// The credentials family's records too.
	id := a.mustCreateCredential(tok, map[string]any{"integrationId": "stripe", "credentialName": "live", "authType": "api_key", "apiKey": secret("sk_" + randHex(8))})["id"].(string)
	read := a.do("GET", "/api/v1/credentials/stripe?credentialId="+id, tok, nil)
	if r := a.do("GET", "/api/v1/credentials/stripe?credentialId="+id, tok, nil, "If-None-Match", read.Header.Get("ETag")); r.Status != http.StatusNotModified || len(r.Raw) != 0 {
		t.Fatalf("a credential's If-None-Match: %d %q", r.Status, r.Raw)
	}
}

// CORS: a configured origin's preflight is 204 saying what may be sent,
// and its answers carry Access-Control-Allow-Origin; another origin gets
// none of it. (Issue 17, item 5.)
func TestCORSForConfiguredOriginsOnly(t *testing.T) {
	a := newAPI(t, apiOptions{corsOrigins: []string{"https://app.example.com"}})
	tok, _ := adminWithService(t, a, "stripe")
	pre := a.do("OPTIONS", "/api/v1/services/stripe", "", nil, "Origin", "https://app.example.com", "Access-Control-Request-Method", "PATCH", "Access-Control-Request-Headers", "authorization, if-match")
	if pre.Status != http.StatusNoContent || pre.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		!strings.Contains(pre.Header.Get("Access-Control-Allow-Methods"), "PATCH") || !strings.Contains(pre.Header.Get("Access-Control-Allow-Headers"), "If-Match") ||
		pre.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Fatalf("preflight: %d %v", pre.Status, pre.Header)
	}
	got := a.do("GET", "/api/v1/services/stripe", tok, nil, "Origin", "https://app.example.com")
	if got.Status != 200 || got.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" || !strings.Contains(got.Header.Get("Access-Control-Expose-Headers"), "ETag") {
		t.Fatalf("a request from the origin: %d %v", got.Status, got.Header)
	}
	other := a.do("OPTIONS", "/api/v1/services/stripe", "", nil, "Origin", "https://evil.example", "Access-Control-Request-Method", "GET")
	if other.Status == http.StatusNoContent || other.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("another origin's preflight: %d %v", other.Status, other.Header)
	}
	if r := a.do("GET", "/api/v1/services/stripe", tok, nil, "Origin", "https://evil.example"); r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatal("another origin was allowed")
	}
}

// TestTextsNameWhatWasLookedFor: a not-found answer says which id was looked
// for and where (seed 000's "Service with ID 'svc_abc123' not found", seed
// 002's "No credential exists for integration ID: servicenow-prod-999"),
// never a details that repeats the message; texts are not HTML-escaped; a
// problem with the whole body is said without a field name in front.
func TestTextsNameWhatWasLookedFor(t *testing.T) {
	a := newAPI(t, apiOptions{})
	tok, _ := adminWithService(t, a, "stripe")
	const cred = "cred-550e8400-e29b-41d4-a716-446655440001"
	const hook = "wh_00000000-0000-0000-0000-000000000000"
	const rot = "rot_00000000-0000-0000-0000-000000000000"
	for _, tc := range []struct{ path, code, text string }{
		{"/api/v1/credentials/servicenow-prod-999", "CREDENTIAL_NOT_FOUND", "No credential exists for integration ID: servicenow-prod-999"},
		{"/api/v1/credentials/stripe?credentialId=" + cred, "CREDENTIAL_NOT_FOUND", "No credential " + cred + " exists for integration ID: stripe"},
		{"/api/v1/credentials/" + cred + "/versions", "CREDENTIAL_NOT_FOUND", "No credential exists with ID: " + cred},
		{"/api/v1/services/svc_abc123", "SERVICE_NOT_FOUND", "Service with ID 'svc_abc123' not found"},
		{"/api/v1/services/svc_abc123/credentials", "SERVICE_NOT_FOUND", "Service with ID 'svc_abc123' not found"},
		{"/api/v1/services/stripe/credentials", "CREDENTIALS_NOT_FOUND", "Service 'stripe' has no credentials"},
		{"/api/v1/webhooks/" + hook, "NOT_FOUND", "No webhook exists with ID: " + hook},
		{"/api/v1/rotators/" + rot, "NOT_FOUND", "No rotator exists with ID: " + rot},
		{"/api/v1/grants/grant_x", "NOT_FOUND", "No grant exists with ID: grant_x"},
	} {
		res := a.do("GET", tc.path, tok, nil)
		if res.Status != http.StatusNotFound || res.errCode() != tc.code {
			t.Errorf("GET %s = %d %s, want 404 %s", tc.path, res.Status, res.Raw, tc.code)
			continue
		}
		e, _ := res.Body["error"].(map[string]any)
		said := e["details"] // the credentials family's sentence
		if strings.HasPrefix(tc.path, "/api/v1/services") {
			said = e["message"] // the services family's
		}
		if said != tc.text {
			t.Errorf("GET %s said %q, want %q", tc.path, said, tc.text)
		}
	}

	res := a.do("POST", "/api/v1/credentials", tok, map[string]any{
		"integrationId": "stripe", "credentialName": "<primary> & co", "authType": "oauth2_bearer", "accessToken": "at-1",
	})
	if res.Status != http.StatusCreated || !strings.Contains(string(res.Raw), `"credentialName":"<primary> & co"`) {
		t.Fatalf("create = %d %s, want the name as sent, not \\u003c-escaped", res.Status, res.Raw)
	}
	id := res.Body["data"].(map[string]any)["id"].(string)
	if got := a.do("GET", "/api/v1/credentials/stripe", tok, nil); got.Body["message"] != "Credentials retrieved successfully" {
		t.Errorf("read's message = %v, want seed 002's", got.Body["message"])
	}
	res = a.do("POST", "/api/v1/credentials/"+id+"/rotate", tok, map[string]any{})
	e, _ := res.Body["error"].(map[string]any)
	if res.Status != http.StatusBadRequest || !strings.HasPrefix(fmt.Sprint(e["details"]), "the credential has no refresh token") {
		t.Errorf("rotate with nothing to rotate with = %d %s, want 400 saying so without a field name in front", res.Status, res.Raw)
	}
}

package httpapi_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestServiceLifecycle(t *testing.T) {
	a := newAPI(t, apiOptions{})
	ten := tenant(t)
	tok := token(t, "alice", ten, "integration_admin")

	created := a.mustCreate(tok, map[string]any{
		"name": "Stripe", "description": "payments", "type": "payment_gateway",
		"base_url": "https://api.stripe.com", "api_version": "2024-06-20",
		"metadata": map[string]any{"team": "billing", "tier": 1},
	})
	id := created.str("id")
	if !strings.HasPrefix(id, "svc_") {
		t.Fatalf("generated id %q; want svc_…", id)
	}
	if loc := created.Header.Get("Location"); loc != "/api/v1/services/"+id {
		t.Fatalf("Location %q", loc)
	}
	if et := created.Header.Get("ETag"); et != `"1"` {
		t.Fatalf("ETag %q; want \"1\"", et)
	}
	want := map[string]any{
		"id": id, "name": "Stripe", "description": "payments", "type": "payment_gateway", "status": "active",
		"base_url": "https://api.stripe.com", "api_version": "2024-06-20", "tenant_id": ten,
		"metadata": map[string]any{"team": "billing", "tier": float64(1)}, "version": float64(1),
	}
	ignoreServerFields := func(m map[string]any) map[string]any {
		out := map[string]any{}
		for k, v := range m {
			if k != "created_at" && k != "updated_at" && k != "created_by" {
				out[k] = v
			}
		}
		return out
	}
	if d := cmp.Diff(want, ignoreServerFields(created.Body)); d != "" {
		t.Fatalf("created service (-want +got):\n%s", d)
	}
	by, _ := created.Body["created_by"].(map[string]any)
	if by["email"] != "alice@"+ten+".example" || by["id"] == "" {
		t.Fatalf("created_by %v", by)
	}

	got := a.do("GET", "/api/v1/services/"+id, tok, nil)
	if got.Status != 200 || got.Header.Get("ETag") != `"1"` {
		t.Fatalf("get: %d %s", got.Status, got.Raw)
	}
	if d := cmp.Diff(created.Body, got.Body); d != "" {
		t.Fatalf("get differs from create (-create +get):\n%s", d)
	}

	// PUT replaces every mutable field: what is not sent is reset.
	put := a.do("PUT", "/api/v1/services/"+id, tok, map[string]any{"name": "Stripe EU", "type": "payment_gateway", "status": "inactive"})
	if put.Status != 200 || put.Header.Get("ETag") != `"2"` {
		t.Fatalf("put: %d %s", put.Status, put.Raw)
	}
	if put.str("name") != "Stripe EU" || put.str("status") != "inactive" || put.str("base_url") != "" || put.str("description") != "" {
		t.Fatalf("put result %s", put.Raw)
	}
	if put.str("created_at") != created.str("created_at") || put.Body["created_by"] == nil {
		t.Fatalf("put changed created_at/created_by: %s", put.Raw)
	}

	// PATCH is a JSON merge patch: nested merge, null removes.
	a.do("PATCH", "/api/v1/services/"+id, tok, map[string]any{"metadata": map[string]any{"team": "billing", "region": "eu"}})
	patched := a.do("PATCH", "/api/v1/services/"+id, tok, map[string]any{"description": "EU payments", "metadata": map[string]any{"team": nil}})
	if patched.Status != 200 || patched.Header.Get("ETag") != `"4"` {
		t.Fatalf("patch: %d %s", patched.Status, patched.Raw)
	}
	if d := cmp.Diff(map[string]any{"region": "eu"}, patched.Body["metadata"]); d != "" {
		t.Fatalf("patched metadata (-want +got):\n%s", d)
	}
	if patched.str("description") != "EU payments" || patched.str("name") != "Stripe EU" {
		t.Fatalf("patch result %s", patched.Raw)
	}

	del := a.do("DELETE", "/api/v1/services/"+id, tok, nil)
	if del.Status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", del.Status, del.Raw)
	}
	wantError(t, a.do("GET", "/api/v1/services/"+id, tok, nil), 404, "SERVICE_NOT_FOUND")
	wantError(t, a.do("DELETE", "/api/v1/services/"+id, tok, nil), 404, "SERVICE_NOT_FOUND")
	wantError(t, a.do("PATCH", "/api/v1/services/"+id, tok, map[string]any{"name": "x"}), 404, "SERVICE_NOT_FOUND")
}

func TestServiceAlreadyExists(t *testing.T) {
	a := newAPI(t, apiOptions{})
	tok := token(t, "alice", tenant(t), "integration_admin")
	a.mustCreate(tok, map[string]any{"id": "stripe", "name": "Stripe"})

	wantError(t, a.do("POST", "/api/v1/services", tok, map[string]any{"id": "stripe", "name": "Other"}), 409, "SERVICE_ALREADY_EXISTS")
	wantError(t, a.do("POST", "/api/v1/services", tok, map[string]any{"name": "sTRIPE"}), 409, "SERVICE_ALREADY_EXISTS")
	wantError(t, a.do("POST", "/api/v1/services", tok, map[string]any{"name": "  Stripe "}), 409, "SERVICE_ALREADY_EXISTS")

	// A rename frees the old name and takes the new one.
	a.mustCreate(tok, map[string]any{"id": "adyen", "name": "Adyen"})
	wantError(t, a.do("PATCH", "/api/v1/services/adyen", tok, map[string]any{"name": "STRIPE"}), 409, "SERVICE_ALREADY_EXISTS")
	if r := a.do("PATCH", "/api/v1/services/stripe", tok, map[string]any{"name": "Stripe Old"}); r.Status != 200 {
		t.Fatalf("rename: %d %s", r.Status, r.Raw)
	}
	a.mustCreate(tok, map[string]any{"name": "stripe"})
	wantError(t, a.do("POST", "/api/v1/services", tok, map[string]any{"name": "stripe old"}), 409, "SERVICE_ALREADY_EXISTS")

	// A delete frees both the id and the name.
	if r := a.do("DELETE", "/api/v1/services/adyen", tok, nil); r.Status != 204 {
		t.Fatalf("delete: %d", r.Status)
	}
	a.mustCreate(tok, map[string]any{"id": "adyen", "name": "ADYEN"})

	// Names are unique per tenant only.
	other := token(t, "bob", tenant(t), "integration_admin")
	a.mustCreate(other, map[string]any{"id": "stripe", "name": "Stripe Old"})
}

func TestIfMatch(t *testing.T) {
	a := newAPI(t, apiOptions{})
	tok := token(t, "alice", tenant(t), "integration_admin")
	a.mustCreate(tok, map[string]any{"id": "jira", "name": "Jira"})
	if r := a.do("PATCH", "/api/v1/services/jira", tok, map[string]any{"type": "itsm"}, "If-Match", `"1"`); r.Status != 200 || r.Header.Get("ETag") != `"2"` {
		t.Fatalf("patch at the current version: %d %s", r.Status, r.Raw)
	}
	for _, m := range []string{"PUT", "PATCH"} {
		r := a.do(m, "/api/v1/services/jira", tok, map[string]any{"name": "Lost update"}, "If-Match", `"1"`)
		wantError(t, r, 409, "VERSION_CONFLICT")
	}
	wantError(t, a.do("DELETE", "/api/v1/services/jira", tok, nil, "If-Match", `"1"`), 409, "VERSION_CONFLICT")
	got := a.do("GET", "/api/v1/services/jira", tok, nil)
	if got.str("name") != "Jira" || got.Header.Get("ETag") != `"2"` {
		t.Fatalf("a stale write changed the record: %s", got.Raw)
	}
	for _, bad := range []string{"abc", `"0"`, `"-1"`, `"1.5"`} {
		wantError(t, a.do("PATCH", "/api/v1/services/jira", tok, map[string]any{"type": "x"}, "If-Match", bad), 400, "INVALID_REQUEST")
	}
	if r := a.do("PUT", "/api/v1/services/jira", tok, map[string]any{"name": "Jira Cloud"}, "If-Match", `W/"2"`); r.Status != 200 {
		t.Fatalf("put with a weak current ETag: %d %s", r.Status, r.Raw)
	}
	if r := a.do("DELETE", "/api/v1/services/jira", tok, nil, "If-Match", `"3"`); r.Status != 204 {
		t.Fatalf("delete at the current version: %d %s", r.Status, r.Raw)
	}
	// The id is free again after a conditional delete (its tombstone is gone).
	a.mustCreate(tok, map[string]any{"id": "jira", "name": "Jira"})
}

func TestListPagesWithCursorAndFilters(t *testing.T) {
	a := newAPI(t, apiOptions{})
	tok := token(t, "alice", tenant(t), "integration_admin")
	var all []string
	for i := range 7 {
		typ := "itsm"
		if i%2 == 0 {
			typ = "payment_gateway"
		}
		r := a.mustCreate(tok, map[string]any{"id": fmt.Sprintf("svc-%02d", i), "name": fmt.Sprintf("Service %d", i), "type": typ})
		all = append(all, r.str("id"))
	}
	a.do("PATCH", "/api/v1/services/svc-04", tok, map[string]any{"status": "inactive"})

	var seen []string
	cursor, pages := "", 0
	for {
		path := "/api/v1/services?limit=3"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		r := a.do("GET", path, tok, nil)
		if r.Status != 200 {
			t.Fatalf("list: %d %s", r.Status, r.Raw)
		}
		pages++
		list, _ := r.Body["services"].([]any)
		for _, e := range list {
			seen = append(seen, e.(map[string]any)["id"].(string))
		}
		cursor = r.str("next_cursor")
		if cursor == "" {
			break
		}
		if pages > 5 {
			t.Fatal("paging does not end")
		}
	}
	if pages != 3 {
		t.Errorf("7 services at limit 3 took %d pages; want 3", pages)
	}
	if d := cmp.Diff(all, seen); d != "" {
		t.Fatalf("paged ids (-want +got):\n%s", d)
	}

	ids := func(path string) []string {
		r := a.do("GET", path, tok, nil)
		var out []string
		list, _ := r.Body["services"].([]any)
		for _, e := range list {
			out = append(out, e.(map[string]any)["id"].(string))
		}
		return out
	}
	if d := cmp.Diff([]string{"svc-00", "svc-02", "svc-04", "svc-06"}, ids("/api/v1/services?type=payment_gateway")); d != "" {
		t.Errorf("type filter (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"svc-00", "svc-02", "svc-06"}, ids("/api/v1/services?type=payment_gateway&status=active")); d != "" {
		t.Errorf("type and status filter (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"svc-00", "svc-02"}, ids("/api/v1/services?type=payment_gateway&status=active&limit=2")); d != "" {
		t.Errorf("filtered page (-want +got):\n%s", d)
	}
	for _, q := range []string{"limit=0", "limit=501", "limit=x", "status=deleted", "cursor=not-a-cursor", "cursor=YWZ0ZXI6Li4"} {
		wantError(t, a.do("GET", "/api/v1/services?"+q, tok, nil), 400, "INVALID_REQUEST")
	}
	empty := a.do("GET", "/api/v1/services", token(t, "nobody", tenant(t), "integration_viewer"), nil)
	if empty.Status != 200 || string(empty.Raw) != `{"services":[],"next_cursor":""}` {
		t.Fatalf("empty tenant: %d %s", empty.Status, empty.Raw)
	}
}

func TestTenantsCannotSeeEachOther(t *testing.T) {
	a := newAPI(t, apiOptions{})
	tenA, tenB := tenant(t), tenant(t)
	alice := token(t, "alice", tenA, "integration_admin")
	mallory := token(t, "mallory", tenB, "integration_admin")
	a.mustCreate(alice, map[string]any{"id": "stripe", "name": "Stripe"})

	wantError(t, a.do("GET", "/api/v1/services/stripe", mallory, nil), 404, "SERVICE_NOT_FOUND")
	wantError(t, a.do("PUT", "/api/v1/services/stripe", mallory, map[string]any{"name": "pwned"}), 404, "SERVICE_NOT_FOUND")
	wantError(t, a.do("PATCH", "/api/v1/services/stripe", mallory, map[string]any{"name": "pwned"}), 404, "SERVICE_NOT_FOUND")
	wantError(t, a.do("DELETE", "/api/v1/services/stripe", mallory, nil), 404, "SERVICE_NOT_FOUND")
	if r := a.do("GET", "/api/v1/services", mallory, nil); string(r.Raw) != `{"services":[],"next_cursor":""}` {
		t.Fatalf("B's list shows: %s", r.Raw)
	}
	// The answer for A's service is exactly the answer for a missing one
	// (which names the id looked for).
	missing := a.do("GET", "/api/v1/services/no-such-service", mallory, nil)
	theirs := a.do("GET", "/api/v1/services/stripe", mallory, nil)
	if missing.Status != theirs.Status || strings.ReplaceAll(string(missing.Raw), "no-such-service", "stripe") != string(theirs.Raw) {
		t.Fatalf("another tenant's service answers differently from a missing one:\n%s\n%s", missing.Raw, theirs.Raw)
	}
	// x-tenantid naming the other tenant does not get there either.
	wantError(t, a.do("GET", "/api/v1/services/stripe", mallory, nil, "X-Tenantid", tenA), 403, "TENANT_MISMATCH")
	if r := a.do("GET", "/api/v1/services/stripe", alice, nil, "x-tenantid", tenA); r.Status != 200 {
		t.Fatalf("own tenant in x-tenantid: %d", r.Status)
	}
	if r := a.do("GET", "/api/v1/services/stripe", alice, nil); r.str("name") != "Stripe" {
		t.Fatalf("A's service changed: %s", r.Raw)
	}
}

func TestMalformedIDsAreRefusedBeforeVault(t *testing.T) {
	a := newAPI(t, apiOptions{})
	tok := token(t, "alice", tenant(t), "integration_admin")
	a.do("GET", "/api/v1/services", tok, nil) // mint the caller's token first
	before := a.vaultCalls.Load()
	long := strings.Repeat("a", 129)
	for _, path := range []string{
		"/api/v1/services/..", "/api/v1/services/a..b", "/api/v1/services/a%2Fb", "/api/v1/services/%2E%2E",
		"/api/v1/services/a/b", "/api/v1/services/", "/api/v1/services/" + long, "/api/v1/services/-lead",
		"/api/v1/services/sp%20ace", "/api/v1/services/%00",
	} {
		for _, m := range []string{"GET", "PUT", "PATCH", "DELETE"} {
			var body any
			if m == "PUT" || m == "PATCH" {
				body = map[string]any{"name": "x"}
			}
			r := a.do(m, path, tok, body)
			if r.Status != 400 || r.errCode() != "INVALID_REQUEST" {
				t.Errorf("%s %s: %d %s; want 400 INVALID_REQUEST", m, path, r.Status, r.Raw)
			}
		}
	}
	wantError(t, a.do("POST", "/api/v1/services", tok, map[string]any{"id": "../etc", "name": "x"}), 400, "VALIDATION_FAILED")
	if n := a.vaultCalls.Load() - before; n != 0 {
		t.Fatalf("%d Vault calls for malformed ids; want none", n)
	}
	if r := a.do("GET", "/api/v1/services/"+long[:128], tok, nil); r.Status != 404 {
		t.Fatalf("a 128-character id is valid: %d %s", r.Status, r.Raw)
	}
}

func TestServiceValidation(t *testing.T) {
	a := newAPI(t, apiOptions{})
	tok := token(t, "alice", tenant(t), "integration_admin")
	tests := []struct {
		name      string
		body      any
		wantCode  string
		wantField string
	}{
		{"no name", map[string]any{"type": "itsm"}, "VALIDATION_FAILED", "name"},
		{"blank name", map[string]any{"name": "   "}, "VALIDATION_FAILED", "name"},
		{"name not a string", map[string]any{"name": 5}, "VALIDATION_FAILED", "name"},
		{"http to a public host", map[string]any{"name": "x", "base_url": "http://api.example.com"}, "VALIDATION_FAILED", "base_url"},
		{"ftp", map[string]any{"name": "x", "base_url": "ftp://files.example.com"}, "VALIDATION_FAILED", "base_url"},
		{"relative url", map[string]any{"name": "x", "base_url": "/api"}, "VALIDATION_FAILED", "base_url"},
		{"secret in url", map[string]any{"name": "x", "base_url": "https://user:hunter2@api.example.com"}, "VALIDATION_FAILED", "base_url"},
		{"bad status", map[string]any{"name": "x", "status": "deleted"}, "VALIDATION_FAILED", "status"},
		{"metadata not an object", map[string]any{"name": "x", "metadata": []int{1}}, "VALIDATION_FAILED", "metadata"},
		{"unknown field", map[string]any{"name": "x", "base_uri": "https://x"}, "VALIDATION_FAILED", "base_uri"},
		{"long name", map[string]any{"name": strings.Repeat("n", 201)}, "VALIDATION_FAILED", "name"},
		{"control characters", map[string]any{"name": "a\x00b"}, "VALIDATION_FAILED", "name"},
		{"malformed json", `{"name":`, "INVALID_REQUEST", ""},
		{"empty body", "", "INVALID_REQUEST", ""},
		{"array body", `[{"name":"x"}]`, "INVALID_REQUEST", ""},
		{"two objects", `{"name":"x"} {"name":"y"}`, "INVALID_REQUEST", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := a.do("POST", "/api/v1/services", tok, tt.body)
			wantError(t, r, 400, tt.wantCode)
			if tt.wantField != "" {
				e := r.Body["error"].(map[string]any)
				fields, _ := e["details"].(map[string]any)["fields"].(map[string]any)
				if _, ok := fields[tt.wantField]; !ok {
					t.Fatalf("details do not name %q: %s", tt.wantField, r.Raw)
				}
			}
			if strings.Contains(string(r.Raw), "hunter2") {
				t.Fatalf("the error repeats a secret: %s", r.Raw)
			}
		})
	}
	for _, ok := range []string{"http://localhost:9000", "http://127.0.0.1/api", "http://[::1]:8443", "https://api.example.com/v2"} {
		a.mustCreate(tok, map[string]any{"name": "ok " + ok, "base_url": ok})
	}
	// A client may PUT back what it read, read-only fields included.
	got := a.mustCreate(tok, map[string]any{"id": "roundtrip", "name": "Round trip"})
	got.Body["description"] = "edited"
	if r := a.do("PUT", "/api/v1/services/roundtrip", tok, got.Body); r.Status != 200 || r.str("description") != "edited" {
		t.Fatalf("PUT of a read record: %d %s", r.Status, r.Raw)
	}
	got.Body["id"] = "other"
	wantError(t, a.do("PUT", "/api/v1/services/roundtrip", tok, got.Body), 400, "VALIDATION_FAILED")
	wantError(t, a.do("PATCH", "/api/v1/services/roundtrip", tok, map[string]any{"id": "other"}), 400, "VALIDATION_FAILED")
	wantError(t, a.do("PATCH", "/api/v1/services/roundtrip", tok, `"name"`), 400, "INVALID_REQUEST")
}

func TestRolesGateOperations(t *testing.T) {
	a := newAPI(t, apiOptions{})
	ten := tenant(t)
	admin := token(t, "admin", ten, "integration_admin")
	a.mustCreate(admin, map[string]any{"id": "pd", "name": "PagerDuty"})
	for _, role := range []string{"integration_viewer", "credential_reader"} {
		tok := token(t, role, ten, role)
		if r := a.do("GET", "/api/v1/services/pd", tok, nil); r.Status != 200 {
			t.Errorf("%s GET: %d", role, r.Status)
		}
		if r := a.do("GET", "/api/v1/services", tok, nil); r.Status != 200 {
			t.Errorf("%s list: %d", role, r.Status)
		}
		wantError(t, a.do("POST", "/api/v1/services", tok, map[string]any{"name": "x"}), 403, "INSUFFICIENT_PERMISSIONS")
		wantError(t, a.do("PUT", "/api/v1/services/pd", tok, map[string]any{"name": "x"}), 403, "INSUFFICIENT_PERMISSIONS")
		wantError(t, a.do("PATCH", "/api/v1/services/pd", tok, map[string]any{"name": "x"}), 403, "INSUFFICIENT_PERMISSIONS")
		wantError(t, a.do("DELETE", "/api/v1/services/pd", tok, nil), 403, "INSUFFICIENT_PERMISSIONS")
	}
	none := token(t, "stranger", ten, "some_other_app_role")
	wantError(t, a.do("GET", "/api/v1/services/pd", none, nil), 403, "INSUFFICIENT_PERMISSIONS")
	if r := a.do("GET", "/api/v1/services/pd", admin, nil); r.str("name") != "PagerDuty" {
		t.Fatalf("refused writes changed the record: %s", r.Raw)
	}
}

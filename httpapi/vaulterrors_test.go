package httpapi_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/credgate/credgate/vaultstore/vaulttest"
)

// nested returns a JSON object nested depth levels deep.
func nested(depth int) map[string]any {
	m := map[string]any{"leaf": true}
	for range depth - 1 {
		m = map[string]any{"n": m}
	}
	return m
}

func wide(keys int) map[string]any {
	m := make(map[string]any, keys)
	for i := range keys {
		m[randHex(4)+"-"+strings.Repeat("k", i%7)] = i
	}
	return m
}

// TestClientInputIsBoundedBeforeVault: metadata nested hundreds of levels
// deep or with thousands of keys made Vault answer 500, which credgate
// passed on as 503 "retry later". It is refused as the client's mistake
// before Vault sees it.
func TestClientInputIsBoundedBeforeVault(t *testing.T) {
	a := newAPI(t, apiOptions{})
	tok, _ := adminWithService(t, a, "svc")
	cred := a.mustCreateCredential(tok, map[string]any{"integrationId": "svc", "credentialName": "c", "authType": "api_key", "apiKey": secret("k-" + randHex(6))})["id"].(string)
	writes := func() int { return a.opCount("service_write") + a.opCount("credential_write") }
	before := writes()
	for name, meta := range map[string]map[string]any{"300 levels deep": nested(300), "10,000 keys": wide(10000), "9 levels deep": nested(9)} {
		for _, req := range []struct {
			method, path string
			body         map[string]any
		}{
			{"POST", "/api/v1/services", map[string]any{"name": "x-" + randHex(4), "metadata": meta}},
			{"PUT", "/api/v1/services/svc", map[string]any{"name": "svc", "metadata": meta}},
			{"PATCH", "/api/v1/services/svc", map[string]any{"metadata": meta}},
			{"POST", "/api/v1/credentials", map[string]any{"integrationId": "svc", "credentialName": "c2", "authType": "api_key", "apiKey": "k", "metadata": meta}},
			{"PATCH", "/api/v1/credentials/" + cred, map[string]any{"metadata": meta}},
		} {
			r := a.do(req.method, req.path, tok, req.body)
			if r.Status != 400 || r.errCode() != "VALIDATION_FAILED" || !strings.Contains(string(r.Raw), "metadata") {
				t.Errorf("%s %s with metadata %s: %d %.300s", req.method, req.path, name, r.Status, r.Raw)
			}
		}
	}
	if n := writes() - before; n != 0 {
		t.Fatalf("%d writes reached Vault", n)
	}
	// Within the bounds it is stored.
	if r := a.do("PATCH", "/api/v1/services/svc", tok, map[string]any{"metadata": nested(8)}); r.Status != 200 {
		t.Fatalf("8 levels: %d %s", r.Status, r.Raw)
	}
}

// TestVaultErrorsAreTranslatedByWhatTheyMean: only an unavailable Vault is
// a 503. A Vault that is up and fails a request gives a 500 with the cause
// in the log; one that refuses the request's content a 400 or 413.
func TestVaultErrorsAreTranslatedByWhatTheyMean(t *testing.T) {
	px := vaulttest.StartFaultProxy(t, s.vault.Addr)
	a := newAPI(t, apiOptions{vaultURL: px.URL})
	ten := tenant(t)
	tok := token(t, "vera", ten, "integration_admin")
	a.mustCreate(tok, map[string]any{"id": "svc", "name": "Svc"})
	serviceWrite := func(r *http.Request) bool {
		return r.Method != http.MethodGet && strings.Contains(r.URL.Path, "/v1/credgate/data/tenants/"+ten+"/services/")
	}
	health := func(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/v1/sys/health") }
	patch := func() reply {
		return a.do("PATCH", "/api/v1/services/svc", tok, map[string]any{"description": randHex(4)}, "X-Request-Id", "vault-errors-"+randHex(4))
	}

	// Vault up, failing the write.
	px.Answer(serviceWrite, 500, `{"errors":["1 error occurred:\n\t* internal error\n\n"]}`)
	r := patch()
	wantError(t, r, 500, "INTERNAL_ERROR")
	if r.Header.Get("Retry-After") != "" || strings.Contains(string(r.Raw), "credgate/data") {
		t.Fatalf("a 500 of a healthy Vault: %v %s", r.Header, r.Raw)
	}
	if !strings.Contains(s.logs.String(), r.Header.Get("X-Request-Id")) || !strings.Contains(s.logs.String(), "failed the request while healthy") {
		t.Fatal("the cause is not in the log")
	}
	if rz := a.do("GET", "/readyz", "", nil); rz.Status != 200 {
		t.Fatalf("/readyz: %d", rz.Status)
	}
	// Vault refusing the content.
	px.Answer(serviceWrite, 400, `{"errors":["invalid request"]}`)
	wantError(t, patch(), 400, "INVALID_REQUEST")
	px.Answer(serviceWrite, 413, `{"errors":["request too large"]}`)
	wantError(t, patch(), 413, "PAYLOAD_TOO_LARGE")

	// outage: with faults in place a write is 503 with Retry-After; after
	// they heal (and credgate's memory of Vault's health lapses) it works.
	outage := func(what string, faults func()) {
		t.Helper()
		time.Sleep(1100 * time.Millisecond) // past credgate's memory of Vault's health
		faults()
		r := patch()
		wantError(t, r, 503, "BACKEND_UNAVAILABLE")
		if r.Header.Get("Retry-After") == "" {
			t.Fatalf("%s: 503 without Retry-After", what)
		}
		px.Heal()
		time.Sleep(1100 * time.Millisecond)
		if r := patch(); r.Status != 200 {
			t.Fatalf("after %s: %d %s", what, r.Status, r.Raw)
		}
	}
	// An audit device that fails: Vault answers 500 to every audited
	// call, and sys/health (not audited) says it is fine. That is an
	// outage a retry survives.
	outage("the audit device recovered", func() {
		px.Answer(func(r *http.Request) bool { return !health(r) }, 500, `{"errors":["internal error"]}`)
	})
	// Vault down: the same 500 is an outage now.
	outage("Vault is back", func() {
		px.Answer(serviceWrite, 500, `{"errors":["internal error"]}`)
		px.Answer(health, 503, `{"initialized":true,"sealed":true}`)
	})
}

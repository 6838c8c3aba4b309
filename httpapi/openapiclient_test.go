package httpapi_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGeneratedTypeScriptClient: the OpenAPI document is the TypeScript
// callers' SDK. openapi-typescript generates types from the document the
// live server serves (/openapi.json); a client using them with
// openapi-fetch (testdata/openapiclient/client.ts) compiles under tsc
// --strict with no cast, and runs against that server: it registers a
// service, stores a credential, reads its value, lists the inventory and
// reads both families' typed errors.
func TestGeneratedTypeScriptClient(t *testing.T) {
	dir, run := tsProject(t, "openapiclient", "package.json", "package-lock.json", "tsconfig.json", "client.ts")
	a := newAPI(t, apiOptions{})
	bin := func(name string) string { return filepath.Join(dir, "node_modules", ".bin", name) }
	run(nil, bin("openapi-typescript"), a.url+"/openapi.json", "-o", "schema.d.ts")
	run(nil, bin("tsc"), "-p", ".", "--strict")
	src, err := os.ReadFile(filepath.Join(dir, "client.ts"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(src), "\n") {
		if code, _, _ := strings.Cut(line, "//"); strings.Contains(code, " as ") || strings.Contains(code, "!.") {
			t.Fatalf("the client casts: %s", line)
		}
	}
	key := secret("sk_live_" + randHex(10))
	tok := token(t, "ts", tenant(t), "integration_admin")
	out := run([]string{"CREDGATE_URL=" + a.url, "CREDGATE_TOKEN=" + tok, "API_KEY=" + key}, "node", "dist/client.js")
	var got struct {
		ServiceID     string `json:"serviceId"`
		CredentialID  string `json:"credentialId"`
		ReadKey       string `json:"readKey"`
		Version       int    `json:"version"`
		Listed        int    `json:"listed"`
		MissingCode   string `json:"missingCode"`
		NoServiceCode string `json:"noServiceCode"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &got); err != nil {
		t.Fatalf("client.js printed %q: %v", out, err)
	}
	if got.ServiceID != "stripe_production" || !strings.HasPrefix(got.CredentialID, "cred-") || got.ReadKey != key || got.Version != 1 ||
		got.Listed != 1 || got.MissingCode != "CREDENTIAL_NOT_FOUND" || got.NoServiceCode != "SERVICE_NOT_FOUND" {
		t.Fatalf("the generated client saw: %+v", got)
	}
}

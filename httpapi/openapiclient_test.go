package httpapi_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/credgate/credgate/internal/oapigen"
)

// TestGeneratedTypeScriptClient: the OpenAPI document is the TypeScript
// callers' SDK. openapi-typescript generates types from the document the
// live server serves (/openapi.json); a client using them with
// openapi-fetch (testdata/openapiclient/client.ts) compiles under tsc
// --strict with no cast, and runs against that server: it registers a
// walks the README's "A walk through the API": services (merge patch, a
// stale If-Match's typed 409, PUT), credentials (read, inventory, rotate,
// versions, the services family's PUT, a scheduled revocation), webhooks
// (create, a PATCH of enabled alone) and both families' typed errors.
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
	key, newKey := secret("sk_live_"+randHex(10)), secret("sk_live_"+randHex(10))
	ten := tenant(t)
	tok := token(t, "ts", ten, "integration_admin")
	out := run([]string{"CREDGATE_URL=" + a.url, "CREDGATE_TOKEN=" + tok, "TENANT=" + ten, "API_KEY=" + key, "NEW_KEY=" + newKey}, "node", "dist/client.js")
	checkWalk(t, "client.js", out, ten, key, newKey)
}

// checkWalk checks what a generated client's walk (client.ts, oapiwalk)
// printed: every value it read through the generated types.
func checkWalk(t *testing.T, client, out, ten, key, newKey string) {
	t.Helper()
	var got map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &got); err != nil {
		t.Fatalf("%s printed %q: %v", client, out, err)
	}
	want := map[string]any{
		"servicesListed": 1.0, "patchedDescription": "Card payments", "patchedBaseUrl": "", "patchedOwner": "finance",
		"staleStatus": 409.0, "staleCode": "VERSION_CONFLICT", "staleCurrent": 2.0, "putName": "Stripe EU",
		"readKey": key, "readTenant": ten, "listed": 1.0, "expiring": 0.0, "rotatedVersion": 2.0, "versions": 2.0,
		"putCredsVersion": 3.0, "serviceKey": newKey, "serviceExpires": "2030-01-01T00:00:00Z", "revokeAt": "2029-02-01T00:00:00Z",
		"hookWarnings": 1.0, "hookEnabled": false, "hookEvents": 2.0,
		"missingStatus": 404.0, "missingCode": "CREDENTIAL_NOT_FOUND", "noServiceCode": "SERVICE_NOT_FOUND", "unknownQueryCode": "INVALID_PARAMETER",
		"deleteStatus": 204.0,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %s saw %v, want %v", client, k, got[k], v)
		}
	}
	if id, _ := got["requestId"].(string); id == "" {
		t.Error("no X-Request-Id read through the generated types")
	}
	if d, _ := got["missingDetails"].(string); !strings.Contains(d, "nope") {
		t.Errorf("a missing credential's details do not name what was looked for: %q", d)
	}
}

// TestGeneratedGoClient: the OpenAPI document is the Go callers' SDK too.
// oapi-codegen generates models and ClientWithResponses (a typed body and
// typed headers per status) from the document this build serves, with
// nullable.Nullable for nullable fields; a program using them
// (testdata/oapiwalk) compiles with no type assertion and runs the same
// walk as the TypeScript client against a live server. The client is built
// in a scratch module with this module's requirements, so nothing is
// fetched that go.mod does not pin.
func TestGeneratedGoClient(t *testing.T) {
	src, err := oapigen.GoClient("oapiclient")
	if err != nil {
		t.Fatal(err)
	}
	walk, err := os.ReadFile(filepath.Join("testdata", "oapiwalk", "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(walk), "\n") {
		if code, _, _ := strings.Cut(line, "//"); strings.Contains(code, ".(") || strings.Contains(code, "json.Unmarshal") {
			t.Fatalf("the walk reads an answer by hand: %s", line)
		}
	}
	mod, err := os.ReadFile(filepath.Join("..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	first, rest, _ := strings.Cut(string(mod), "\n")
	if !strings.HasPrefix(first, "module ") {
		t.Fatalf("go.mod starts with %q", first)
	}
	sum, err := os.ReadFile(filepath.Join("..", "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, b := range map[string][]byte{
		"go.mod": []byte("module oapiwalk\n" + rest), "go.sum": sum, "main.go": walk,
		filepath.Join("oapiclient", "client.gen.go"): src,
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	run := runIn(t, dir)
	run([]string{"GOWORK=off", "GOFLAGS=-mod=mod"}, goTool, "build", "-o", "walk", ".")

	a := newAPI(t, apiOptions{})
	key, newKey := secret("sk_live_"+randHex(10)), secret("sk_live_"+randHex(10))
	ten := tenant(t)
	tok := token(t, "go", ten, "integration_admin")
	out := run([]string{"CREDGATE_URL=" + a.url, "CREDGATE_TOKEN=" + tok, "TENANT=" + ten, "API_KEY=" + key, "NEW_KEY=" + newKey}, filepath.Join(dir, "walk"))
	checkWalk(t, "oapiwalk", out, ten, key, newKey)
}

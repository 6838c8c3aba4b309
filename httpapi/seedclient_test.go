package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTypedSeedClient compiles the typed client in testdata/seedclient
// (typed as the seed clients type credgate's answers: seed 000's services
// family with `expires_at?: string`, seed 002's credentials family with a
// string `details`) with tsc --strict, generates a JSON schema from its own
// types, and runs it against the real stack: every answer it gets must
// match the type it is read as. Node.js and npm come with the machine
// (.ci/run installs Debian's when missing); the npm packages are pinned by
// package-lock.json.
func TestTypedSeedClient(t *testing.T) {
	dir, run := tsProject(t, "seedclient", "package.json", "package-lock.json", "tsconfig.json", "client.ts", "check.ts")
	run(nil, filepath.Join(dir, "node_modules", ".bin", "tsc"), "-p", ".", "--strict")
	run(nil, filepath.Join(dir, "node_modules", ".bin", "ts-json-schema-generator"),
		"--path", "client.ts", "--type", "*", "--additional-properties", "--no-type-check", "-o", "dist/schema.json")

	a := newAPI(t, apiOptions{})
	tok := token(t, "seed", tenant(t), "integration_admin")
	out := run([]string{"CREDGATE_URL=" + a.url, "CREDGATE_TOKEN=" + tok}, "node", "dist/check.js")
	var res struct {
		Checked  int      `json:"checked"`
		Types    []string `json:"types"`
		Failures []string `json:"failures"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &res); err != nil {
		t.Fatalf("check.js printed %q: %v", out, err)
	}
	if len(res.Failures) > 0 || res.Checked < 12 || len(res.Types) < 6 {
		t.Fatalf("typed client: %d answers of %v checked; failures:\n%s", res.Checked, res.Types, strings.Join(res.Failures, "\n"))
	}
	t.Logf("typed client: %d answers of types %v match them", res.Checked, res.Types)
}

// tsProject copies the TypeScript project testdata/<name> (files) into a
// folder of the test's own, installs its pinned npm packages (npm ci, from
// package-lock.json) and answers the folder and a way to run commands in
// it, each bounded, failing the test with their output.
func tsProject(t *testing.T, name string, files ...string) (string, func(env []string, cmd string, args ...string) string) {
	t.Helper()
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Fatal("npm is not installed (apt-get install nodejs npm; .ci/run does it)")
	}
	dir := t.TempDir()
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join("testdata", name, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run := runIn(t, dir)
	run(nil, npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
	return dir, run
}

// runIn returns a runner of commands in dir (with env added to the
// test's), for at most five minutes in all, that fails the test with the
// command's output when one fails and returns its standard output.
func runIn(t *testing.T, dir string) func(env []string, cmd string, args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return func(env []string, cmdName string, args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, cmdName, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), env...)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s %s: %v\n%s\n%s", cmdName, strings.Join(args, " "), err, out.String(), errOut.String())
		}
		return out.String()
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// cli runs credgate RESOURCE VERB... as user, with stdin.
func (s *auditStory) cli(user, stdin string, args ...string) (string, string, error) {
	env := map[string]string{"CREDGATE_ADDR": s.base, "CREDGATE_TOKEN": s.tokens[user]}
	var out, errOut bytes.Buffer
	err := apiCmd(context.Background(), args[0], args[1:], func(k string) string { return env[k] }, strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), err
}

// TestAPICommandsForPeopleAndScripts: the services, credentials, webhooks
// and grants commands over the Go client; values only with -reveal and
// from standard input; the documented exit codes.
func TestAPICommandsForPeopleAndScripts(t *testing.T) {
	s := startAuditStory(t)
	mustCLI := func(user, stdin string, args ...string) string {
		t.Helper()
		out, errOut, err := s.cli(user, stdin, args...)
		if err != nil {
			t.Fatalf("credgate %v: %v\n%s%s", args, err, out, errOut)
		}
		return out
	}
	exitCode := func(want int, user string, args ...string) {
		t.Helper()
		out, errOut, err := s.cli(user, "", args...)
		if !errors.Is(err, exitError{want}) || errOut == "" {
			t.Fatalf("credgate %v: %v, want exit %d\n%s%s", args, err, want, out, errOut)
		}
	}
	if out := mustCLI("alice", "", "services", "list"); !strings.Contains(out, "stripe") || !strings.Contains(out, "NAME") {
		t.Fatalf("services list:\n%s", out)
	}
	var list []map[string]any
	if err := json.Unmarshal([]byte(mustCLI("alice", "", "services", "list", "-output", "json")), &list); err != nil || len(list) != 1 || list[0]["id"] != "stripe" {
		t.Fatalf("services list -output json: %v %v", err, list)
	}
	exitCode(exitNotFound, "alice", "services", "get", "nope")
	exitCode(exitRefused, "alice", "services", "create", "stripe", "Stripe again")
	mustCLI("alice", "", "services", "create", "sendgrid", "SendGrid", "email")

	// Values: masked unless -reveal; a viewer is refused.
	masked := mustCLI("bob", "", "credentials", "get", "stripe")
	if strings.Contains(masked, s.v2) || !strings.Contains(masked, "********") {
		t.Fatalf("credentials get without -reveal:\n%s", masked)
	}
	if out := mustCLI("bob", "", "credentials", "get", "stripe", "-reveal"); !strings.Contains(out, s.v2) {
		t.Fatalf("credentials get -reveal:\n%s", out)
	}
	exitCode(exitDenied, "vera", "credentials", "get", "stripe")
	// put reads the values from standard input, never an argument.
	v3 := "sk_live_cli_" + randomHex(t)
	mustCLI("alice", `{"api_key":"`+v3+`"}`, "credentials", "put", "sendgrid")
	if out := mustCLI("bob", "", "credentials", "get", "sendgrid", "-reveal", "-output", "json"); !strings.Contains(out, v3) {
		t.Fatalf("after put:\n%s", out)
	}
	if _, _, err := s.cli("alice", "", "credentials", "put", "sendgrid"); err == nil {
		t.Fatal("put without values on stdin")
	}
	if out := mustCLI("alice", "", "credentials", "list", "-service", "stripe"); !strings.Contains(out, s.credID) || strings.Contains(out, s.v2) {
		t.Fatalf("credentials list:\n%s", out)
	}
	if out := mustCLI("alice", "", "credentials", "versions", s.credID); !strings.Contains(out, "rotated") {
		t.Fatalf("credentials versions:\n%s", out)
	}
	if out := mustCLI("alice", "", "credentials", "rotate", s.credID, "-generate"); strings.Contains(out, s.v2) || !strings.Contains(out, "VERSION") {
		t.Fatalf("credentials rotate:\n%s", out)
	}

	// Webhooks and grants.
	out := mustCLI("alice", "", "webhooks", "create", "https://hooks.example.com/credgate", "credential.rotated")
	if !strings.Contains(out, "whsec_") {
		t.Fatalf("webhooks create:\n%s", out)
	}
	id := strings.Fields(strings.Split(out, "\n")[1])[0]
	if out := mustCLI("alice", "", "webhooks", "list"); !strings.Contains(out, id) || strings.Contains(out, "whsec_") {
		t.Fatalf("webhooks list:\n%s", out)
	}
	mustCLI("alice", "", "webhooks", "delete", id)
	exitCode(exitNotFound, "alice", "webhooks", "get", id)
	out = mustCLI("alice", "", "grants", "create", "-role", "credential_reader", "-subject", "ci-bot", "stripe")
	gid := strings.Fields(strings.Split(out, "\n")[1])[0]
	if out := mustCLI("alice", "", "grants", "list"); !strings.Contains(out, gid) {
		t.Fatalf("grants list:\n%s", out)
	}
	mustCLI("alice", "", "grants", "delete", gid)

	// No server: unavailable.
	env := map[string]string{"CREDGATE_ADDR": "http://127.0.0.1:1", "CREDGATE_TOKEN": "x"}
	var errOut bytes.Buffer
	err := apiCmd(context.Background(), "services", []string{"list"}, func(k string) string { return env[k] }, strings.NewReader(""), &errOut, &errOut)
	if !errors.Is(err, exitError{exitUnavailable}) {
		t.Fatalf("no server: %v", err)
	}
}

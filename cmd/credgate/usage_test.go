package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestUsageCommandShowsWhoReadWhichVersion: after the audit story (bob
// read version 1, then version 2 after the rotation), credgate usage as
// alice shows bob with two reads, last of version 2, as a table and as
// JSON; the token may come from a file; bob, a reader, is refused with the
// API's code; without an address or a token it says what to set.
func TestUsageCommandShowsWhoReadWhichVersion(t *testing.T) {
	s := startAuditStory(t)
	s.main.store.FlushLedgers()
	usage := func(env map[string]string, args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := usageCmd(context.Background(), args, func(k string) string { return env[k] }, &out, &errOut)
		return out.String() + errOut.String(), err
	}
	env := map[string]string{"CREDGATE_ADDR": s.base, "CREDGATE_TOKEN": s.tokens["alice"]}
	out, err := usage(env, s.credID)
	if err != nil {
		t.Fatalf("credgate usage: %v\n%s", err, out)
	}
	var bobLine string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, s.emails["bob"]) {
			bobLine = l
		}
	}
	if !strings.Contains(out, "version 2: 1 readers") || !strings.Contains(bobLine, "  2  ") || strings.Count(bobLine, " 2 ") < 2 {
		t.Fatalf("table:\n%s", out)
	}
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(s.tokens["alice"]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = usage(map[string]string{"CREDGATE_ADDR": s.base, "CREDGATE_TOKEN_FILE": file}, "-output", "json", "-since", "1h", s.credID)
	if err != nil {
		t.Fatalf("credgate usage -output json: %v\n%s", err, out)
	}
	var got struct {
		Readers []struct {
			Email       string `json:"email"`
			Reads       int    `json:"reads"`
			LastVersion int    `json:"lastVersion"`
		} `json:"readers"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || len(got.Readers) != 1 || got.Readers[0].Email != s.emails["bob"] || got.Readers[0].Reads != 2 || got.Readers[0].LastVersion != 2 {
		t.Fatalf("json: %v\n%s", err, out)
	}
	if _, err := usage(map[string]string{"CREDGATE_ADDR": s.base, "CREDGATE_TOKEN": s.tokens["bob"]}, s.credID); err == nil || !strings.Contains(err.Error(), "INSUFFICIENT_PERMISSIONS") {
		t.Fatalf("bob: %v", err)
	}
	if _, err := usage(map[string]string{"CREDGATE_TOKEN": "x"}, s.credID); err == nil || !strings.Contains(err.Error(), "CREDGATE_ADDR") {
		t.Fatalf("no address: %v", err)
	}
	if _, err := usage(map[string]string{"CREDGATE_ADDR": s.base}, s.credID); err == nil || !strings.Contains(err.Error(), "CREDGATE_TOKEN") {
		t.Fatalf("no token: %v", err)
	}
}

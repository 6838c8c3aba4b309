package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/credgate/credgate/audit"
	"github.com/credgate/credgate/bootstrap"
	"github.com/credgate/credgate/vaultstore/vaultidp"
	"github.com/credgate/credgate/vaultstore/vaulttest"
)

// auditStory runs credgate against a Vault of its own with a file audit
// device and plays a story through the API; the log Vault wrote is the
// test's input.
type auditStory struct {
	t        *testing.T
	vault    *vaulttest.Server
	base     string
	log      string
	idp      *vaultidp.IdP
	tokens   map[string]string // user -> bearer token
	emails   map[string]string // user -> e-mail
	v1, v2   string            // the values alice stores, then rotates to
	credID   string
	otherCrd string // carol's credential in globex
	main     *Main
}

func (s *auditStory) token(user, tenant string, roles ...string) string {
	if tok, ok := s.tokens[user]; ok {
		return tok
	}
	email := user + "@" + tenant + ".example"
	tok, err := s.idp.Token(context.Background(), vaultidp.User{Name: user, Tenant: tenant, Email: email, Roles: roles})
	if err != nil {
		s.t.Fatal(err)
	}
	s.tokens[user], s.emails[user] = tok, email
	return tok
}

func (s *auditStory) do(user, method, path, rid string, body any, want int) map[string]any {
	s.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.base+path, r)
	req.Header.Set("Authorization", "Bearer "+s.tokens[user])
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Request-Id", rid)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		s.t.Fatalf("%s %s by %s: %d %s", method, path, user, res.StatusCode, raw)
	}
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return out
}

func startAuditStory(t *testing.T) *auditStory {
	v := vaulttest.StartOwned(t)
	root := v.Client(t)
	ctx := context.Background()
	dir := t.TempDir()
	s := &auditStory{t: t, vault: v, log: filepath.Join(dir, "vault-audit.log"), tokens: map[string]string{}, emails: map[string]string{}}
	res, err := bootstrap.Bootstrap(ctx, root, bootstrap.Options{AuditFile: s.log, IssueToken: true})
	if err != nil {
		t.Fatal(err)
	}
	if s.idp, err = vaultidp.Setup(ctx, root, vaultidp.Config{VaultAddr: v.Addr}); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.Vault.Address, cfg.Vault.Token = v.Addr, res.Token
	cfg.Auth.Issuers = []IssuerConfig{{URL: s.idp.IssuerURL, Audiences: []string{s.idp.Audience}}}
	cfg.Monitor.Disabled = true
	m := &Main{Config: cfg, Logger: zap.NewNop()}
	if err := m.Run(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	s.base, s.main = "http://"+m.Addr(), m

	s.token("alice", "acme", "integration_admin")
	s.token("bob", "acme", "credential_reader")
	s.token("vera", "acme", "integration_viewer")
	s.token("carol", "globex", "integration_admin")
	s.v1, s.v2 = "sk_live_first_"+randomHex(t), "sk_live_second_"+randomHex(t)

	s.do("alice", "POST", "/api/v1/services", "r-alice-service", map[string]any{"id": "stripe", "name": "Stripe"}, 201)
	created := s.do("alice", "POST", "/api/v1/credentials", "r-alice-create", map[string]any{
		"integrationId": "stripe", "credentialName": "live", "authType": "api_key", "apiKey": s.v1}, 201)
	s.credID = created["data"].(map[string]any)["id"].(string)
	s.do("bob", "GET", "/api/v1/credentials/stripe?credentialId="+s.credID, "r-bob-read-1", nil, 200)
	s.do("alice", "POST", "/api/v1/credentials/"+s.credID+"/rotate", "r-alice-rotate", map[string]any{"apiKey": s.v2}, 200)
	s.do("bob", "GET", "/api/v1/credentials/stripe", "r-bob-read-2", nil, 200)
	s.do("vera", "GET", "/api/v1/credentials/stripe?credentialId="+s.credID, "r-vera-read", nil, 403)
	s.do("carol", "POST", "/api/v1/services", "r-carol-service", map[string]any{"id": "stripe", "name": "Stripe EU"}, 201)
	other := s.do("carol", "POST", "/api/v1/credentials", "r-carol-create", map[string]any{
		"integrationId": "stripe", "credentialName": "eu", "authType": "api_key", "apiKey": "sk_eu_" + randomHex(t)}, 201)
	s.otherCrd = other["data"].(map[string]any)["id"].(string)
	s.do("carol", "GET", "/api/v1/credentials/stripe?credentialId="+s.otherCrd, "r-carol-read", nil, 200)
	return s
}

func randomHex(t *testing.T) string {
	return fmt.Sprintf("%x", time.Now().UnixNano())
}

// run is credgate audit with args over the story's log.
func (s *auditStory) run(stdin string, args ...string) (string, string) {
	s.t.Helper()
	var out, errOut bytes.Buffer
	if err := auditCmd(context.Background(), args, strings.NewReader(stdin), &out, &errOut); err != nil {
		s.t.Fatalf("credgate audit %v: %v\n%s", args, err, errOut.String())
	}
	return out.String(), errOut.String()
}

func ops(t *testing.T, jsonLines string) []audit.Op {
	var out []audit.Op
	for _, l := range strings.Split(strings.TrimSpace(jsonLines), "\n") {
		if l == "" {
			continue
		}
		var o audit.Op
		if err := json.Unmarshal([]byte(l), &o); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		out = append(out, o)
	}
	return out
}

// line is what a test compares of an operation.
func line(o audit.Op) string {
	return fmt.Sprintf("%s %s %s %s %s v%d %s %s", o.Tenant, o.Email, o.Operation, o.Integration, o.Credential, o.Version, o.Outcome, o.RequestID)
}

func TestAuditTellsTheStoryAsItHappened(t *testing.T) {
	s := startAuditStory(t)
	out, _ := s.run("", "-json", s.log)
	var got []string
	mints := map[string]bool{}
	for _, o := range ops(t, out) {
		if o.Operation == audit.OpMint {
			mints[o.Email] = true
			continue
		}
		if o.Subject == "" || o.Client == "" || o.Time.IsZero() {
			t.Errorf("incomplete: %+v", o)
		}
		got = append(got, line(o))
	}
	c, g := s.credID, s.otherCrd
	want := []string{
		"acme alice@acme.example create stripe  v0 ok r-alice-service",
		"acme alice@acme.example create stripe " + c + " v1 ok r-alice-create",
		"acme bob@acme.example read values stripe " + c + " v1 ok r-bob-read-1",
		"acme alice@acme.example rotate stripe " + c + " v2 ok r-alice-rotate",
		"acme bob@acme.example read values stripe " + c + " v2 ok r-bob-read-2",
		"acme vera@acme.example read values stripe " + c + " v0 denied r-vera-read",
		"globex carol@globex.example create stripe  v0 ok r-carol-service",
		"globex carol@globex.example create stripe " + g + " v1 ok r-carol-create",
		"globex carol@globex.example read values stripe " + g + " v1 ok r-carol-read",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("credgate audit said:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, u := range []string{"alice", "bob", "vera", "carol"} {
		if !mints[s.emails[u]] {
			t.Errorf("no caller token minted for %s", u)
		}
	}

	// Filters.
	filtered := func(args ...string) []string {
		out, _ := s.run("", append(append([]string{"-json"}, args...), s.log)...)
		var l []string
		for _, o := range ops(t, out) {
			l = append(l, line(o))
		}
		return l
	}
	if l := filtered("-denied"); !slices.Equal(l, want[5:6]) {
		t.Errorf("-denied: %v", l)
	}
	if l := filtered("-tenant", "globex", "-credential", g); !slices.Equal(l, want[7:9]) {
		t.Errorf("-tenant -credential: %v", l)
	}
	if l := filtered("-actor", "bob@acme.example"); len(l) != 3 || !strings.Contains(l[0], "mint caller token") {
		t.Errorf("-actor: %v", l)
	}
	if l := filtered("-request-id", "r-alice-rotate"); !slices.Equal(l, want[3:4]) {
		t.Errorf("-request-id: %v", l)
	}
	if l := filtered("-until", "2000-01-01T00:00:00Z"); len(l) != 0 {
		t.Errorf("-until in the past: %v", l)
	}
	if l := filtered("-since", "1h", "-integration", "stripe", "-tenant", "acme"); len(l) != 6 {
		t.Errorf("-since -integration: %v", l)
	}

	// The table has the same rows, aligned.
	table, _ := s.run("", "-tenant", "acme", "-denied", s.log)
	rows := strings.Split(strings.TrimSpace(table), "\n")
	if len(rows) != 2 || !strings.HasPrefix(rows[0], "TIME") || !strings.Contains(rows[1], "vera@acme.example") || strings.Index(rows[0], "OUTCOME") != strings.Index(rows[1], "denied") {
		t.Errorf("table:\n%s", table)
	}

	// The summary: reads, distinct actors, last read, denials.
	sum, _ := s.run("", "-summary", "-json", "-tenant", "acme", s.log)
	var row audit.SummaryRow
	if err := json.Unmarshal([]byte(strings.TrimSpace(sum)), &row); err != nil {
		t.Fatalf("summary: %v\n%s", err, sum)
	}
	if row.Credential != c || row.Reads != 2 || row.Actors != 1 || row.LastActor != "bob@acme.example" || row.Denials != 1 || row.Changes != 2 {
		t.Errorf("summary: %+v", row)
	}
}

func TestAuditValueFindsTheRequestsThatCarriedIt(t *testing.T) {
	s := startAuditStory(t)
	t.Setenv("VAULT_ADDR", s.vault.Addr)
	t.Setenv("VAULT_TOKEN", s.vault.RootToken)
	find := func(v string) []string {
		out, _ := s.run(v+"\n", "-value", "-json", s.log)
		var l []string
		for _, o := range ops(t, out) {
			l = append(l, o.Email+" "+o.Operation+" "+o.RequestID)
		}
		return l
	}
	// The first value was written by the create, read by bob, and read by
	// the rotation that replaced it (a rotation reads the record it
	// changes); the second was written by the rotation and read by bob.
	if l := find(s.v1); !slices.Equal(l, []string{"alice@acme.example create r-alice-create", "bob@acme.example read values r-bob-read-1", "alice@acme.example rotate r-alice-rotate"}) {
		t.Errorf("-value first: %v", l)
	}
	if l := find(s.v2); !slices.Equal(l, []string{"alice@acme.example rotate r-alice-rotate", "bob@acme.example read values r-bob-read-2"}) {
		t.Errorf("-value second: %v", l)
	}
	if l := find("never-stored"); len(l) != 0 {
		t.Errorf("-value of a value never stored: %v", l)
	}
	// The value is never an argument.
	var errOut bytes.Buffer
	if err := auditCmd(context.Background(), []string{"-value", "-"}, strings.NewReader(s.v1), io.Discard, &errOut); err == nil {
		t.Error("-value with the log on standard input too was accepted")
	}
}

func TestAuditReadsRotatedFilesAndSkipsMalformedLines(t *testing.T) {
	s := startAuditStory(t)
	raw, err := os.ReadFile(s.log)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(raw), "\n")
	half := len(lines) / 2
	dir := t.TempDir()
	// The older half rotated and compressed, with a torn line; the newer
	// half with a line that is no audit entry.
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte(strings.Join(lines[:half], "") + "{\"time\": \"torn\n"))
	_ = zw.Close()
	old := filepath.Join(dir, "vault-audit.log.1.gz")
	cur := filepath.Join(dir, "vault-audit.log")
	if err := os.WriteFile(old, gz.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cur, []byte("not json at all\n"+strings.Join(lines[half:], "")), 0o600); err != nil {
		t.Fatal(err)
	}
	whole, _ := s.run("", "-json", s.log)
	split, errOut := s.run("", "-json", old, cur)
	if whole != split {
		t.Errorf("a rotated log read in two files differs from the whole:\n%s\n---\n%s", whole, split)
	}
	if !strings.Contains(errOut, old+":"+fmt.Sprint(half+1)+": skipped") || !strings.Contains(errOut, cur+":1: skipped") {
		t.Errorf("malformed lines not reported with their line numbers:\n%s", errOut)
	}
	// Standard input.
	in, _ := s.run(string(raw), "-json")
	if in != whole {
		t.Error("reading standard input differs from reading the file")
	}
}

// TestAuditNamesTheGrantAReadCameThrough: a workload with no role, granted
// credential_reader on stripe, reads it; credgate audit attributes that
// read to the grant, and a read through a tenant-wide role to none.
func TestAuditNamesTheGrantAReadCameThrough(t *testing.T) {
	s := startAuditStory(t)
	s.token("gina", "acme") // no roles
	var sub struct {
		Subject string `json:"subject"`
	}
	b, _ := json.Marshal(s.do("gina", "GET", "/debug/auth", "r-gina-whoami", nil, 200))
	_ = json.Unmarshal(b, &sub)
	g := s.do("alice", "POST", "/api/v1/grants", "r-alice-grant", map[string]any{"subject": sub.Subject, "role": "credential_reader", "integrations": []string{"stripe"}}, 201)
	grant := g["data"].(map[string]any)["id"].(string)
	s.do("gina", "GET", "/api/v1/credentials/stripe", "r-gina-read", nil, 200)
	s.do("bob", "GET", "/api/v1/credentials/stripe", "r-bob-read-3", nil, 200)
	out, _ := s.run("", "-json", "-tenant", "acme", s.log)
	found := map[string]string{}
	for _, o := range ops(t, out) {
		if o.Operation == audit.OpReadValues {
			found[o.RequestID] = o.Grant
		}
	}
	if g, ok := found["r-gina-read"]; !ok || g != grant {
		t.Fatalf("gina's read: grant %q (found %v); want %s", g, ok, grant)
	}
	if g, ok := found["r-bob-read-3"]; !ok || g != "" {
		t.Fatalf("bob's read through his role: grant %q (found %v); want none", g, ok)
	}
	table, _ := s.run("", "-tenant", "acme", "-request-id", "r-gina-read", s.log)
	if !strings.Contains(table, "GRANT") || !strings.Contains(table, grant) {
		t.Fatalf("the table does not name the grant:\n%s", table)
	}
}

// TestAuditGroupsByCredgatesOwnRequestID: callers choose X-Request-Id, so
// it groups nothing. bob reads three credentials with one id, alice reads
// one and changes another with another id: the audit shows exactly those
// operations, each credential's own, and finds each by its credential.
func TestAuditGroupsByCredgatesOwnRequestID(t *testing.T) {
	s := startAuditStory(t)
	ids := []string{s.credID}
	for _, name := range []string{"second", "third"} {
		c := s.do("alice", "POST", "/api/v1/credentials", "r-alice-"+name, map[string]any{
			"integrationId": "stripe", "credentialName": name, "authType": "api_key", "apiKey": "sk_" + name + "_" + randomHex(t)}, 201)
		ids = append(ids, c["data"].(map[string]any)["id"].(string))
	}
	for _, id := range ids {
		s.do("bob", "GET", "/api/v1/credentials/stripe?credentialId="+id, "rt-innocuous-14885", nil, 200)
	}
	s.do("alice", "GET", "/api/v1/credentials/stripe?credentialId="+ids[0], "rt-same", nil, 200)
	s.do("alice", "PATCH", "/api/v1/credentials/"+ids[1], "rt-same", map[string]any{"description": "moved"}, 200)
	s.do("bob", "GET", "/api/v1/credentials/stripe?credentialId="+ids[2], "rt-twice", nil, 200)
	s.do("bob", "GET", "/api/v1/credentials/stripe?credentialId="+ids[2], "rt-twice", nil, 200)

	of := func(args ...string) []string {
		out, _ := s.run("", append(append([]string{"-json"}, args...), s.log)...)
		var l []string
		for _, o := range ops(t, out) {
			if o.Operation != audit.OpMint {
				l = append(l, line(o))
			}
		}
		return l
	}
	want := []string{
		"acme bob@acme.example read values stripe " + ids[0] + " v2 ok rt-innocuous-14885",
		"acme bob@acme.example read values stripe " + ids[1] + " v1 ok rt-innocuous-14885",
		"acme bob@acme.example read values stripe " + ids[2] + " v1 ok rt-innocuous-14885",
	}
	if got := of("-request-id", "rt-innocuous-14885"); !slices.Equal(got, want) {
		t.Errorf("three reads with one X-Request-Id:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	want = []string{
		"acme alice@acme.example read values stripe " + ids[0] + " v2 ok rt-same",
		"acme alice@acme.example update stripe " + ids[1] + " v2 ok rt-same",
	}
	if got := of("-request-id", "rt-same"); !slices.Equal(got, want) {
		t.Errorf("a read and a PATCH with one X-Request-Id:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Two requests are two operations, whatever ids their caller gave.
	if got := of("-request-id", "rt-twice"); len(got) != 2 || got[0] != got[1] || !strings.Contains(got[0], "bob@acme.example read values stripe "+ids[2]) {
		t.Errorf("two reads with one X-Request-Id: %v", got)
	}
	if got := of("-credential", ids[2]); len(got) != 4 || !strings.Contains(got[1], "bob@acme.example read values") {
		t.Errorf("-credential %s: %v", ids[2], got)
	}
	sum, _ := s.run("", "-summary", "-json", "-tenant", "acme", s.log)
	reads := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(sum), "\n") {
		var row audit.SummaryRow
		if err := json.Unmarshal([]byte(l), &row); err != nil {
			t.Fatal(err)
		}
		reads[row.Credential] = row.Reads
	}
	if reads[ids[0]] != 4 || reads[ids[1]] != 1 || reads[ids[2]] != 3 {
		t.Errorf("--summary reads: %v", reads)
	}
}

// TestAuditSurvivesAHostileLog: before the log, a rotated file cut short;
// in it, before alice's rotation, an unauthenticated forged write with
// bob's X-Request-Id, a 72 MB line anyone can make Vault write, and a
// caller-token entry with terminal escapes in its e-mail. The scan reports
// them, reads on, shows every operation of the clean log (the rotation
// after the bad lines too), none of the forged ones, and no control byte.
func TestAuditSurvivesAHostileLog(t *testing.T) {
	s := startAuditStory(t)
	raw, err := os.ReadFile(s.log)
	if err != nil {
		t.Fatal(err)
	}
	clean, _ := s.run("", "-json", s.log)
	lines := strings.SplitAfter(string(raw), "\n")
	at := slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, `"r-alice-rotate"`) })
	when := time.Now().UTC().Format(time.RFC3339Nano)
	if m := regexp.MustCompile(`"time":"([^"]+)"`).FindStringSubmatch(lines[at]); m != nil {
		when = m[1]
	}
	forged := `{"auth":{"policy_results":{"allowed":false}},"error":"permission denied","request":{"headers":{"x-request-id":["r-bob-read-2"]},"id":"f-1","operation":"update","path":"credgate/data/tenants/acme/credentials/stripe/` + s.credID + `","remote_address":"203.0.113.9"},"time":"` + when + `","type":"response"}` + "\n"
	escaped := `{"auth":{"client_token":"hmac-sha256:00","metadata":{"sub":"mallory","tenant":"acme","email":"x\u001b]0;PWNED\u0007\u001b[2J\u001b[1;31mFAKE\tCOLUMN\nNEWROW@evil.example"},"token_policies":["credgate-acme-integration_viewer"],"token_type":"batch"},"request":{"id":"f-2","operation":"read","path":"credgate/data/tenants/acme/services/stripe","remote_address":"203.0.113.9"},"time":"` + when + `","type":"response"}` + "\n"
	var huge strings.Builder
	huge.WriteString(`{"type":"request","time":"` + when + `","request":{"data":{"`)
	for huge.Len() < 72<<20 {
		huge.WriteString("<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<")
	}
	huge.WriteString(`":1}}}` + "\n")
	dir := t.TempDir()
	cur := filepath.Join(dir, "vault-audit.log")
	if err := os.WriteFile(cur, []byte(strings.Join(lines[:at], "")+forged+huge.String()+escaped+strings.Join(lines[at:], "")), 0o600); err != nil {
		t.Fatal(err)
	}
	huge.Reset()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte(strings.Repeat(lines[0], 50)))
	_ = zw.Close()
	old := filepath.Join(dir, "vault-audit.log.1.gz")
	if err := os.WriteFile(old, gz.Bytes()[:gz.Len()-12], 0o600); err != nil {
		t.Fatal(err)
	}

	out, errOut := s.run("", "-json", old, cur)
	var got, want []string
	for _, o := range ops(t, out) {
		got = append(got, line(o))
	}
	for _, o := range ops(t, clean) {
		want = append(want, line(o))
	}
	mallory := "acme x\x1b]0;PWNED\a\x1b[2J\x1b[1;31mFAKE\tCOLUMN\nNEWROW@evil.example read metadata stripe  v0 ok "
	if !slices.Contains(got, mallory) {
		t.Errorf("the caller-token entry is missing: %q", got)
	}
	got = slices.DeleteFunc(got, func(l string) bool { return l == mallory })
	if !slices.Equal(got, want) {
		t.Errorf("the hostile log reads as\n%s\nthe clean one as\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, w := range []string{old + ":", "broken", cur + ":", "longer than 4 MiB", "skipped 1 lines", "1 files ending broken"} {
		if !strings.Contains(errOut, w) {
			t.Errorf("stderr lacks %q:\n%s", w, errOut)
		}
	}
	all, _ := s.run("", "-json", "-all", old, cur)
	found := false
	for _, o := range ops(t, all) {
		if o.Operation == audit.OpOther && o.RequestID == "r-bob-read-2" {
			found = o.Email == "" && o.Subject == "" && o.Outcome == audit.OutcomeDenied
		}
	}
	if !found {
		t.Error("--all does not show the forged write as not credgate's")
	}
	table, _ := s.run("", "-all", old, cur)
	for _, r := range table {
		if r != '\n' && (r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0)) {
			t.Fatalf("the table carries control character %U:\n%s", r, table)
		}
	}
	if !strings.Contains(table, `\x1b]0;PWNED`) {
		t.Errorf("the escapes are not shown as text:\n%s", table)
	}
	// Nothing readable at all is the one failure.
	junk := filepath.Join(dir, "junk.gz")
	if err := os.WriteFile(junk, append([]byte{0x1f, 0x8b}, "not gzip at all"...), 0o600); err != nil {
		t.Fatal(err)
	}
	var o2, e2 bytes.Buffer
	if err := auditCmd(context.Background(), []string{junk, filepath.Join(dir, "missing.log")}, nil, &o2, &e2); err == nil {
		t.Errorf("a log of nothing readable succeeded:\n%s", e2.String())
	}
}

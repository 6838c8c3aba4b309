package audit_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/credgate/credgate/audit"
)

// The sample is what a real Vault logged while credgate served four users
// (cmd/credgate's audit story): alice (integration_admin) made a service and
// a credential and rotated it, bob (credential_reader) read it before and
// after, vera (integration_viewer) was refused; carol, in globex, made and
// read her own.
func scanSample(t *testing.T, f audit.Filter, hash string) []string {
	t.Helper()
	fh, err := os.Open("testdata/vault-audit.sample.log")
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var got []string
	sc := audit.NewScanner(audit.Options{Filter: f, Hash: hash, Emit: func(o audit.Op) error {
		got = append(got, strings.Join([]string{o.Email, o.Operation, o.Integration, o.Credential, itoa(o.Version), o.Outcome, o.RequestID}, "|"))
		return nil
	}})
	if err := sc.Read("sample", fh); err != nil {
		t.Fatal(err)
	}
	if err := sc.Close(); err != nil {
		t.Fatal(err)
	}
	if sc.Bad != 0 || sc.Entries != 246 {
		t.Fatalf("read %d entries, %d malformed", sc.Entries, sc.Bad)
	}
	return got
}

func itoa(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}

const sampleCred, globexCred = "cred-130eab46-241c-47da-b510-8e10c0ec8905", "cred-2a4d7824-f808-481a-913a-21f57388077f"

func TestScanNamesEachRequestOnce(t *testing.T) {
	got := scanSample(t, audit.Filter{}, "")
	c := sampleCred
	want := []string{
		"alice@acme.example|mint caller token||||ok|r-alice-service",
		"alice@acme.example|create|stripe|||ok|r-alice-service",
		"alice@acme.example|create|stripe|" + c + "|1|ok|r-alice-create",
		"bob@acme.example|mint caller token||||ok|r-bob-read-1",
		"bob@acme.example|read values|stripe|" + c + "|1|ok|r-bob-read-1",
		"alice@acme.example|rotate|stripe|" + c + "|2|ok|r-alice-rotate",
		"bob@acme.example|read values|stripe|" + c + "|2|ok|r-bob-read-2",
		"vera@acme.example|mint caller token||||ok|r-vera-read",
		"vera@acme.example|read values|stripe|" + c + "||denied|r-vera-read",
		"carol@globex.example|mint caller token||||ok|r-carol-service",
		"carol@globex.example|create|stripe|||ok|r-carol-service",
		"carol@globex.example|create|stripe|" + globexCred + "|1|ok|r-carol-create",
		"carol@globex.example|read values|stripe|" + globexCred + "|1|ok|r-carol-read",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// --all adds Vault's other clients and credgate's bookkeeping, and
	// changes nothing of the rest.
	all := scanSample(t, audit.Filter{All: true}, "")
	var kept []string
	for _, l := range all {
		if !strings.Contains(l, "|"+audit.OpOther+"|") && !strings.Contains(l, "|bookkeeping|") {
			kept = append(kept, l)
		}
	}
	if !slices.Equal(kept, want) || len(all) <= len(want) {
		t.Fatalf("--all: %d lines, the credgate ones differ: %v", len(all), kept)
	}
}

func TestScanFiltersAndHash(t *testing.T) {
	if got := scanSample(t, audit.Filter{Actor: "vera@acme.example", Denied: true}, ""); len(got) != 1 || !strings.Contains(got[0], "denied") {
		t.Fatalf("denied for vera: %v", got)
	}
	if got := scanSample(t, audit.Filter{Until: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)}, ""); len(got) != 0 {
		t.Fatalf("until 2020: %v", got)
	}
	if got := scanSample(t, audit.Filter{Tenant: "globex"}, ""); len(got) != 4 || !strings.HasPrefix(got[0], "carol@") {
		t.Fatalf("another tenant: %v", got)
	}
	// A hash no entry carries selects nothing (cmd/credgate's tests find
	// real values through Vault's sys/audit-hash).
	if got := scanSample(t, audit.Filter{}, "hmac-sha256:0000"); len(got) != 0 {
		t.Fatalf("a hash nobody carried: %v", got)
	}
}

// TestScanHostileLines: lines anyone who reaches Vault can make are never a
// credgate user's operation and never stop the scan. Into the sample go,
// before bob's first read: an unauthenticated write of alice's credential
// carrying bob's request ids, a read with a token credgate did not mint
// whose metadata names bob, a line past MaxLine and one that is no JSON.
// The default view is the sample's, exactly; --all shows the two calls
// as not credgate's, naming nobody.
func TestScanHostileLines(t *testing.T) {
	raw, err := os.ReadFile("testdata/vault-audit.sample.log")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(raw), "\n")
	at := slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, `"r-bob-read-1"`) })
	cid := regexp.MustCompile(`"x-credgate-request":\["([^"]+)"`).FindStringSubmatch(lines[at])[1]
	when := regexp.MustCompile(`"time":"([^"]+)"`).FindStringSubmatch(lines[at])[1]
	path := "credgate/data/tenants/acme/credentials/stripe/" + sampleCred
	hostile := []string{
		`{"auth":{"policy_results":{"allowed":false}},"error":"1 error occurred:\n\t* permission denied\n\n","request":{"headers":{"x-request-id":["r-bob-read-1"],"x-credgate-request":["` + cid + `"]},"id":"forged-1","operation":"update","path":"` + path + `","remote_address":"203.0.113.9"},"time":"` + when + `","type":"response"}` + "\n",
		`{"auth":{"client_token":"hmac-sha256:00","metadata":{"sub":"bob","tenant":"acme","email":"bob@acme.example"},"policies":["root"],"token_policies":["root"],"token_type":"service"},"request":{"headers":{"x-request-id":["r-bob-read-1"],"x-credgate-request":["` + cid + `"]},"id":"forged-2","operation":"read","path":"` + path + `","remote_address":"203.0.113.9"},"response":{"data":{"metadata":{"version":1}}},"time":"` + when + `","type":"response"}` + "\n",
		`{"request":{"data":{"` + strings.Repeat("<", audit.MaxLine+1) + `":1}}}` + "\n",
		"\x1b]0;PWNED\a not json\n",
	}
	input := strings.Join(lines[:at], "") + strings.Join(hostile, "") + strings.Join(lines[at:], "")
	scan := func(f audit.Filter) ([]audit.Op, *audit.Scanner) {
		var got []audit.Op
		sc := audit.NewScanner(audit.Options{Filter: f, Emit: func(o audit.Op) error { got = append(got, o); return nil }})
		if err := sc.Read("hostile", strings.NewReader(input)); err != nil {
			t.Fatal(err)
		}
		if err := sc.Close(); err != nil {
			t.Fatal(err)
		}
		return got, sc
	}
	plain := scanSample(t, audit.Filter{}, "")
	got, sc := scan(audit.Filter{})
	var lines2 []string
	for _, o := range got {
		lines2 = append(lines2, strings.Join([]string{o.Email, o.Operation, o.Integration, o.Credential, itoa(o.Version), o.Outcome, o.RequestID}, "|"))
	}
	if !slices.Equal(lines2, plain) {
		t.Fatalf("with hostile lines:\n%s\nwithout:\n%s", strings.Join(lines2, "\n"), strings.Join(plain, "\n"))
	}
	if sc.Bad != 2 || sc.Entries != 248 {
		t.Fatalf("%d entries, %d skipped; want 248 and 2", sc.Entries, sc.Bad)
	}
	all, _ := scan(audit.Filter{All: true, Credential: ""})
	var foreign []audit.Op
	for _, o := range all {
		if o.Operation == audit.OpOther && o.Path == path {
			foreign = append(foreign, o)
		}
	}
	if len(foreign) != 2 || foreign[0].Email != "" || foreign[0].Subject != "" || foreign[1].Email != "" || foreign[0].Credential != "" || foreign[0].Outcome != audit.OutcomeDenied {
		t.Fatalf("--all: the two calls not credgate's: %+v", foreign)
	}
	// Nor are they found by what they name.
	if got, _ := scan(audit.Filter{All: true, Credential: sampleCred, Denied: true}); len(got) != 1 || got[0].Email != "vera@acme.example" {
		t.Fatalf("denials of the credential: %+v", got)
	}
}

// TestScanReadsOnPastABrokenGzip: a rotated file cut short is reported,
// what it held before the cut is read, and the next file is read whole.
func TestScanReadsOnPastABrokenGzip(t *testing.T) {
	raw, err := os.ReadFile("testdata/vault-audit.sample.log")
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(raw)
	_ = zw.Close()
	cut := gz.Bytes()[:gz.Len()/2]
	var reports []string
	var got []string
	sc := audit.NewScanner(audit.Options{
		Emit: func(o audit.Op) error { got = append(got, o.RequestID); return nil },
		Malformed: func(source string, line int, err error) {
			reports = append(reports, fmt.Sprintf("%s:%d: %v", source, line, err))
		},
	})
	if err := sc.Read("old.gz", bytes.NewReader(cut)); err != nil {
		t.Fatal(err)
	}
	before := sc.Entries
	if err := sc.Read("current", bytes.NewReader(raw)); err != nil {
		t.Fatal(err)
	}
	if err := sc.Close(); err != nil {
		t.Fatal(err)
	}
	if sc.Broken != 1 || len(reports) == 0 || !strings.HasPrefix(reports[len(reports)-1], "old.gz:") || !strings.Contains(reports[len(reports)-1], "broken") {
		t.Fatalf("broken %d, reports %v", sc.Broken, reports)
	}
	if before == 0 || sc.Entries-before != 246 {
		t.Fatalf("read %d entries of the cut file, %d of the next", before, sc.Entries-before)
	}
	if !slices.Contains(got, "r-carol-read") {
		t.Fatalf("the next file's last request is missing: %v", got)
	}
}

// TestTableEscapesWhatItShows: a claim with terminal escapes shows as
// text, not as escapes; JSON keeps it exactly.
func TestTableEscapesWhatItShows(t *testing.T) {
	evil := "x\x1b]0;PWNED\a\x1b[2J\x1b[1;31mFAKE\tCOLUMN\nNEWROW@evil.example"
	o := audit.Op{Time: time.Now(), Tenant: "acme", Email: evil, Subject: "s\u202eb", Operation: audit.OpOther, Path: "credgate/data/\x1b]52;c;cHduZWQ=\a", Outcome: audit.OutcomeDenied, RequestID: "r\x07"}
	var out bytes.Buffer
	tb := audit.NewTable(&out)
	if err := tb.Write(o); err != nil {
		t.Fatal(err)
	}
	if err := tb.Flush(); err != nil {
		t.Fatal(err)
	}
	rows := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(rows) != 2 {
		t.Fatalf("%d rows:\n%s", len(rows), out.String())
	}
	for _, r := range out.String() {
		if r != '\n' && !strconv.IsPrint(r) {
			t.Fatalf("a byte a terminal acts on: %U in\n%s", r, out.String())
		}
	}
	if !strings.Contains(out.String(), `\x1b]0;PWNED`) || !strings.Contains(out.String(), `\u202e`) {
		t.Fatalf("the escapes are not shown as what they are:\n%s", out.String())
	}
	var js bytes.Buffer
	if err := audit.JSONLines(&js)(o); err != nil {
		t.Fatal(err)
	}
	var back audit.Op
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.Email != evil || back.Path != o.Path {
		t.Fatalf("JSON: %v %+v", err, back)
	}
}

// A check-and-set write that another writer's came before is retried by
// credgate: the request it was part of is ok, as its last call says. A
// write without check-and-set that failed so is the request's failure.
func TestScanALostCheckAndSetRaceIsNoFailure(t *testing.T) {
	raw, err := os.ReadFile("testdata/vault-audit.sample.log")
	if err != nil {
		t.Fatal(err)
	}
	rotate := func(lost string) string {
		var lines []string
		for _, l := range strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n") {
			if strings.Contains(l, `"r-alice-rotate"`) && strings.Contains(l, `"type":"response"`) && strings.Contains(l, `"operation":"update","path":"credgate/data/tenants/acme/credentials/stripe/`) {
				failed := strings.Replace(l, `"type":"response"`, `"error":"1 error occurred:\n\t* invalid request\n\n","type":"response"`, 1)
				if lost == "without check-and-set" {
					failed = regexp.MustCompile(`"options":\{"cas":"[^"]*"\}`).ReplaceAllString(failed, `"options":{}`)
				}
				lines = append(lines, failed)
			}
			lines = append(lines, l)
		}
		var got string
		sc := audit.NewScanner(audit.Options{Emit: func(o audit.Op) error {
			if o.RequestID == "r-alice-rotate" {
				got = o.Operation + " " + o.Outcome
			}
			return nil
		}})
		if err := sc.Read("sample", strings.NewReader(strings.Join(lines, "\n")+"\n")); err != nil {
			t.Fatal(err)
		}
		if err := sc.Close(); err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := rotate("with check-and-set"); got != "rotate ok" {
		t.Errorf("a rotation that lost one check-and-set race: %q, want rotate ok", got)
	}
	if got := rotate("without check-and-set"); got != "rotate error" {
		t.Errorf("a rotation whose write failed: %q, want rotate error", got)
	}
}

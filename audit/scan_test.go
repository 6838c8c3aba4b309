package audit_test

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/credgate/credgate/audit"
)

// The sample is what a real Vault logged while credgate served make dev
// and three users: alice (integration_admin) made a service and a
// credential and rotated it, bob (credential_reader) read it before and
// after, vera (integration_viewer) was refused.
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
	if sc.Bad != 0 || sc.Entries != 278 {
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

const sampleCred = "cred-63f4abac-3dc8-41a9-99bb-0e063c36bd23"

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
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// --all adds Vault's other clients and credgate's bookkeeping, and
	// changes nothing of the rest.
	all := scanSample(t, audit.Filter{All: true}, "")
	var kept []string
	for _, l := range all {
		if !strings.Contains(l, "|other|") && !strings.Contains(l, "|bookkeeping|") {
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
	if got := scanSample(t, audit.Filter{Tenant: "globex"}, ""); len(got) != 0 {
		t.Fatalf("another tenant: %v", got)
	}
	// A hash no entry carries selects nothing (cmd/credgate's tests find
	// real values through Vault's sys/audit-hash).
	if got := scanSample(t, audit.Filter{}, "hmac-sha256:0000"); len(got) != 0 {
		t.Fatalf("a hash nobody carried: %v", got)
	}
}

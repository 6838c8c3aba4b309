package httpapi_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/credgate/credgate"
)

// TestTheLedgerCountsEveryReaderExactlyAcrossReplicas (issue 22, item 1):
// reads of one credential by two applications through two replicas, one
// of them by a grant, before and after a rotation, flushed by both
// replicas at once: GET …/usage names each reader with its exact count,
// the version it read last, the grant it came through; integration_admin
// only; ?since narrows it.
func TestTheLedgerCountsEveryReaderExactlyAcrossReplicas(t *testing.T) {
	a, b := newAPI(t, apiOptions{}), newAPI(t, apiOptions{})
	k := newKeyring(t, a, "stripe", "crm")
	app1 := token(t, "billing", k.tenant, "credential_reader")
	app2 := token(t, "checkout", k.tenant)
	grant := k.grant(t, a, map[string]any{"subject": subjectOf(t, app2), "role": "credential_reader", "integrations": []string{"stripe"}})
	read := func(x *testAPI, tok string, n int) {
		t.Helper()
		for range n {
			if r := x.do("GET", "/api/v1/credentials/stripe", tok, nil); r.Status != 200 {
				t.Fatalf("read: %d %s", r.Status, r.Raw)
			}
		}
	}
	read(a, app1, 7)
	read(b, app1, 5)
	b.do("GET", "/api/v1/services/stripe/credentials", app2, nil) // the services family counts too
	read(b, app2, 2)
	flushBoth := func() {
		var wg sync.WaitGroup
		wg.Go(a.store.FlushLedgers)
		wg.Go(b.store.FlushLedgers)
		wg.Wait()
	}
	flushBoth()
	if r := a.do("POST", "/api/v1/credentials/"+k.creds["stripe"]+"/rotate", k.admin, map[string]any{"apiKey": secret("key-v2-" + randHex(6))}); r.Status != 200 {
		t.Fatalf("rotate: %d %s", r.Status, r.Raw)
	}
	read(a, app2, 2)
	read(b, app1, 1)
	read(a, app1, 1)
	flushBoth()

	usage := wantEnvelope(t, a.do("GET", "/api/v1/credentials/"+k.creds["stripe"]+"/usage", k.admin, nil), 200)
	readers := usage["readers"].([]any)
	if len(readers) != 2 || usage["integrationId"] != "stripe" {
		t.Fatalf("usage: %v", usage)
	}
	by := map[string]map[string]any{}
	for _, r := range readers {
		m := r.(map[string]any)
		by[m["subject"].(string)] = m
	}
	r1, r2 := by[subjectOf(t, app1)], by[subjectOf(t, app2)]
	if r1 == nil || r2 == nil {
		t.Fatalf("readers %v", readers)
	}
	if r1["reads"] != float64(14) || r1["lastVersion"] != float64(2) || r1["grant"] != nil {
		t.Fatalf("billing: %v; want 14 reads, last of version 2, no grant", r1)
	}
	if r2["reads"] != float64(5) || r2["lastVersion"] != float64(2) || r2["grant"] != grant || r2["email"] != "checkout@"+k.tenant+".example" {
		t.Fatalf("checkout: %v; want 5 reads, version 2, through %s", r2, grant)
	}
	var total float64
	for _, h := range usage["hours"].([]any) {
		total += h.(map[string]any)["reads"].(float64)
	}
	if total != 19 {
		t.Fatalf("hourly counts add up to %v; want 19", total)
	}
	if v := usage["versions"].([]any); len(v) != 1 || v[0].(map[string]any)["version"] != float64(2) || v[0].(map[string]any)["readers"] != float64(2) {
		t.Fatalf("versions %v", v)
	}
	// A reader, and a grant holder, may not see who reads.
	for _, tok := range []string{app1, app2} {
		wantEnvelopeError(t, a.do("GET", "/api/v1/credentials/"+k.creds["stripe"]+"/usage", tok, nil), 403, "INSUFFICIENT_PERMISSIONS")
	}
	// ?since= keeps those who read since then.
	later := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	if got := wantEnvelope(t, a.do("GET", "/api/v1/credentials/"+k.creds["stripe"]+"/usage?since="+later, k.admin, nil), 200); len(got["readers"].([]any)) != 0 {
		t.Fatalf("since an hour ahead: %v", got["readers"])
	}
	wantEnvelopeError(t, a.do("GET", "/api/v1/credentials/"+k.creds["stripe"]+"/usage?since=yesterday", k.admin, nil), 400, "INVALID_PARAMETER")
	// crm was never read: an empty ledger, not an error.
	if got := wantEnvelope(t, a.do("GET", "/api/v1/credentials/"+k.creds["crm"]+"/usage", k.admin, nil), 200); len(got["readers"].([]any)) != 0 {
		t.Fatalf("crm: %v", got)
	}
	// The inventory's unusedFor: neither was created a minute ago.
	if inv := a.do("GET", "/api/v1/credentials?unusedFor=1m", k.admin, nil); inv.Status != 200 || len(inv.Body["data"].([]any)) != 0 {
		t.Fatalf("unusedFor=1m: %d %s", inv.Status, inv.Raw)
	}
	wantEnvelopeError(t, a.do("GET", "/api/v1/credentials?unusedFor=soon", k.admin, nil), 400, "INVALID_PARAMETER")
}

// TestReadsTheLedgersCannotHoldAreAnsweredAndCountedAsLost: past the
// store's bound of reads gathered for the ledgers, a read is still
// answered, goes uncounted, and /metrics says how many did
// (credgate_usage_reads_lost_total), so that an operator sees usage
// figures leaning low.
func TestReadsTheLedgersCannotHoldAreAnsweredAndCountedAsLost(t *testing.T) {
	a := newAPI(t, apiOptions{pendingReads: 1})
	k := newKeyring(t, a, "stripe", "crm")
	app := token(t, "billing", k.tenant, "credential_reader")
	if v := scrape(t, a).value("credgate_usage_reads_lost_total"); v != 0 {
		t.Fatalf("lost before any read: %v", v)
	}
	for _, id := range []string{"stripe", "stripe", "crm"} {
		if r := a.do("GET", "/api/v1/credentials/"+id, app, nil); r.Status != 200 {
			t.Fatalf("read of %s: %d %s", id, r.Status, r.Raw)
		}
	}
	if v := scrape(t, a).value("credgate_usage_reads_lost_total"); v != 1 {
		t.Fatalf("credgate_usage_reads_lost_total %v; want 1 (crm's read, past a bound of one pair)", v)
	}
	a.store.FlushLedgers()
	readers := func(id string) []any {
		return wantEnvelope(t, a.do("GET", "/api/v1/credentials/"+k.creds[id]+"/usage", k.admin, nil), 200)["readers"].([]any)
	}
	if s, c := readers("stripe"), readers("crm"); len(s) != 1 || s[0].(map[string]any)["reads"] != float64(2) || len(c) != 0 {
		t.Fatalf("readers of stripe %v, of crm %v; want billing's 2 reads, and none", s, c)
	}
}

// TestAMigrationWaitsForItsReaders (issue 22, item 3), on two replicas
// with their monitors: readers A and B read v1; a rotation to v2 keeps v1
// with revokeWhenMigrated; B moves; usage shows A pending and B moved, and
// v1 stays servable while A has not moved; once A reads v2, v1 is revoked
// within a monitor pass (credential.revoked, reason migrated). A second
// migration whose deadline is near names A in credential.migration_stalled
// and ends at its deadline regardless.
func TestAMigrationWaitsForItsReaders(t *testing.T) {
	var c clock
	a, b := replicas(t, &c)
	k := newKeyring(t, a, "stripe", "crm")
	rec := startReceiver(t, 0)
	rec.subscribe(a, k.admin, credgate.EventRevoked, credgate.EventMigrationStalled, credgate.EventRevokedRead)
	appA := token(t, "billing", k.tenant, "credential_reader")
	appB := token(t, "checkout", k.tenant, "credential_reader")
	cred := k.creds["stripe"]
	readVersion := func(x *testAPI, tok string, version int) int {
		q := "/api/v1/credentials/stripe?credentialId=" + cred
		if version > 0 {
			q += fmt.Sprintf("&version=%d", version)
		}
		return x.do("GET", q, tok, nil).Status
	}
	flush := func() {
		var wg sync.WaitGroup
		wg.Go(a.store.FlushLedgers)
		wg.Go(b.store.FlushLedgers)
		wg.Wait()
	}
	readVersion(a, appA, 0)
	readVersion(b, appB, 0)
	flush()
	deadline := time.Now().Add(30 * 24 * time.Hour).UTC().Truncate(time.Second)
	if r := a.do("POST", "/api/v1/credentials/"+cred+"/rotate", k.admin, map[string]any{"apiKey": secret("key-v2-" + randHex(6)), "previousRevokeAt": deadline.Format(time.RFC3339), "revokeWhenMigrated": true}); r.Status != 200 {
		t.Fatalf("rotate: %d %s", r.Status, r.Raw)
	}
	if s := readVersion(b, appB, 0); s != 200 {
		t.Fatalf("B reads v2: %d", s)
	}
	if s := readVersion(a, appA, 1); s != 200 { // A still runs on v1
		t.Fatalf("A reads v1: %d", s)
	}
	flush()
	usage := wantEnvelope(t, a.do("GET", "/api/v1/credentials/"+cred+"/usage", k.admin, nil), 200)
	mg, _ := usage["migration"].(map[string]any)
	subjects := func(list any) []string {
		var out []string
		for _, r := range list.([]any) {
			out = append(out, r.(map[string]any)["subject"].(string))
		}
		return out
	}
	if mg == nil || mg["previousVersion"] != float64(1) || mg["revokeWhenMigrated"] != true ||
		!slices.Equal(subjects(mg["pending"]), []string{subjectOf(t, appA)}) || !slices.Equal(subjects(mg["moved"]), []string{subjectOf(t, appB)}) {
		t.Fatalf("migration: %v", mg)
	}
	time.Sleep(time.Second) // several passes of both monitors
	if s := readVersion(a, appA, 1); s != 200 || len(rec.events(credgate.EventRevoked)) != 0 {
		t.Fatalf("v1 while A has not moved: %d, revoked events %d", s, len(rec.events(credgate.EventRevoked)))
	}
	flush() // (that read of v1 is A's latest)
	if s := readVersion(b, appA, 0); s != 200 {
		t.Fatalf("A reads v2: %d", s)
	}
	flush()
	eventually(t, 10*time.Second, "v1 revoked once A moved", func() bool { return len(rec.events(credgate.EventRevoked)) == 1 })
	if e := rec.events(credgate.EventRevoked)[0].event.Data; e.Reason != "migrated" || e.Version != 1 || e.CredentialID != cred {
		t.Fatalf("revoked: %+v", e)
	}
	if s := readVersion(a, appA, 1); s != 404 {
		t.Fatalf("v1 after the migration: %d; want 404", s)
	}
	// Something still asks for the revoked version: announced, once.
	readVersion(a, appA, 1)
	eventually(t, 10*time.Second, "credential.revoked_read", func() bool { return len(rec.events(credgate.EventRevokedRead)) == 1 })
	if e := rec.events(credgate.EventRevokedRead)[0].event.Data; e.CredentialID != cred || e.Readers[0].Subject != subjectOf(t, appA) || !strings.Contains(e.Reason, "revoked") {
		t.Fatalf("revoked_read: %+v", e)
	}

	// A second rotation, of crm, whose deadline is near: A has not moved.
	crm := k.creds["crm"]
	if s := a.do("GET", "/api/v1/credentials/crm", appA, nil).Status; s != 200 {
		t.Fatalf("A reads crm: %d", s)
	}
	flush()
	soon := time.Now().Add(4 * time.Second).UTC().Truncate(time.Second).Add(time.Second)
	if r := a.do("POST", "/api/v1/credentials/"+crm+"/rotate", k.admin, map[string]any{"apiKey": secret("crm-v2-" + randHex(6)), "previousRevokeAt": soon.Format(time.RFC3339), "revokeWhenMigrated": true}); r.Status != 200 {
		t.Fatalf("rotate crm: %d %s", r.Status, r.Raw)
	}
	eventually(t, 10*time.Second, "migration_stalled for crm", func() bool { return len(rec.events(credgate.EventMigrationStalled)) == 1 })
	stalled := rec.events(credgate.EventMigrationStalled)[0].event.Data
	if stalled.CredentialID != crm || len(stalled.Readers) != 1 || stalled.Readers[0].Subject != subjectOf(t, appA) || stalled.Readers[0].LastVersion != 1 {
		t.Fatalf("migration_stalled: %+v", stalled)
	}
	eventually(t, 15*time.Second, "crm's v1 ended at its deadline", func() bool {
		for _, d := range rec.events(credgate.EventRevoked) {
			if d.event.Data.CredentialID == crm && d.event.Data.Reason == "previousRevokeAt" {
				return true
			}
		}
		return false
	})
	time.Sleep(time.Second)
	if n, r := len(rec.events(credgate.EventMigrationStalled)), len(rec.events(credgate.EventRevokedRead)); n != 1 || r != 1 {
		t.Fatalf("%d migration_stalled events, %d revoked_read; want one each", n, r)
	}
	rec.check()
}

// seedLedger writes a ledger for credential cred of service in tenant
// straight into Vault: a history this test cannot wait for.
func seedLedger(t *testing.T, tenant, service, cred string, l credgate.Ledger) {
	t.Helper()
	b, err := json.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	var data map[string]any
	_ = json.Unmarshal(b, &data)
	if _, err := s.root.Logical().Write("credgate/data/tenants/"+tenant+"/ledgers/"+service+"/"+cred, map[string]any{"data": data}); err != nil {
		t.Fatal(err)
	}
}

// TestUnusualUseIsAlertedOnceAndSteadyUseIsNot (issue 22, item 4), with
// the default thresholds: a new reader of a credential read for a week;
// 20 reads in a minute from a reader that read about once an hour; one
// principal reading 30 integrations. Each is one event naming the
// principal, the request and the numbers, however long it goes on; steady
// use is none.
func TestUnusualUseIsAlertedOnceAndSteadyUseIsNot(t *testing.T) {
	a := newAPI(t, apiOptions{monitor: &monitorSetup{}})
	k := newKeyring(t, a, "stripe")
	rec := startReceiver(t, 0)
	rec.subscribe(a, k.admin, credgate.EventNewReader, credgate.EventReadSpike, credgate.EventBroadRead)
	billing := token(t, "billing", k.tenant, "credential_reader")
	checkout := token(t, "checkout", k.tenant, "credential_reader")
	// billing has read stripe about once an hour for three days.
	now := time.Now().UTC()
	hist := credgate.LedgerReader{Issuer: s.idp.IssuerURL, Subject: subjectOf(t, billing), FirstRead: now.Add(-3 * 24 * time.Hour), LastRead: now.Add(-time.Hour), LastVersion: 1, Reads: 72}
	for h := 24; h >= 1; h-- {
		hist.Hours = append(hist.Hours, credgate.HourReads{Hour: now.Truncate(time.Hour).Add(-time.Duration(h) * time.Hour), Reads: 1})
	}
	old := credgate.LedgerReader{Issuer: s.idp.IssuerURL, Subject: "batch-job", FirstRead: now.Add(-8 * 24 * time.Hour), LastRead: now.Add(-2 * time.Hour), LastVersion: 1, Reads: 9}
	seedLedger(t, k.tenant, "stripe", k.creds["stripe"], credgate.Ledger{Readers: []credgate.LedgerReader{hist, old}})

	read := func(tok, integration string, n int) {
		t.Helper()
		for range n {
			if r := a.do("GET", "/api/v1/credentials/"+integration, tok, nil); r.Status != 200 {
				t.Fatalf("read %s: %d %s", integration, r.Status, r.Raw)
			}
		}
	}
	read(billing, "stripe", 1) // steady
	a.store.FlushLedgers()
	time.Sleep(500 * time.Millisecond)
	if n := len(rec.got); n != 0 {
		t.Fatalf("steady use alerted: %+v", rec.got)
	}
	read(billing, "stripe", 20) // a spike
	read(checkout, "stripe", 1) // a new reader
	a.store.FlushLedgers()
	eventually(t, 10*time.Second, "read_spike and new_reader", func() bool {
		return len(rec.events(credgate.EventReadSpike)) == 1 && len(rec.events(credgate.EventNewReader)) == 1
	})
	spike := rec.events(credgate.EventReadSpike)[0].event.Data
	if spike.CredentialID != k.creds["stripe"] || spike.Readers[0].Subject != subjectOf(t, billing) || spike.Count < 20 || spike.Threshold != 20 || spike.RequestID == "" || !strings.Contains(spike.Reason, "reads in the hour") {
		t.Fatalf("read_spike: %+v", spike)
	}
	if nr := rec.events(credgate.EventNewReader)[0].event.Data; nr.Readers[0].Subject != subjectOf(t, checkout) || nr.Readers[0].Email != "checkout@"+k.tenant+".example" || nr.IntegrationID != "stripe" {
		t.Fatalf("new_reader: %+v", nr)
	}
	// It goes on: no more alerts of either.
	read(billing, "stripe", 20)
	read(checkout, "stripe", 2)
	a.store.FlushLedgers()

	// One principal reading 30 integrations within minutes.
	for i := range 30 {
		id := fmt.Sprintf("svc%02d", i)
		a.mustCreate(k.admin, map[string]any{"id": id, "name": "Service " + id})
		a.mustCreateCredential(k.admin, map[string]any{"integrationId": id, "credentialName": "key", "authType": "api_key", "apiKey": secret("k-" + randHex(8))})
	}
	for i := range 30 {
		read(checkout, fmt.Sprintf("svc%02d", i), 1)
		if i == 9 {
			a.store.FlushLedgers() // across several writes of the ledgers
		}
	}
	a.store.FlushLedgers()
	eventually(t, 10*time.Second, "tenant.broad_read", func() bool { return len(rec.events(credgate.EventBroadRead)) == 1 })
	broad := rec.events(credgate.EventBroadRead)[0].event.Data
	if broad.Readers[0].Subject != subjectOf(t, checkout) || broad.Count != 31 || broad.Threshold != 20 || broad.CredentialID != "" {
		t.Fatalf("broad_read: %+v", broad)
	}
	read(checkout, "svc00", 1)
	a.store.FlushLedgers()
	time.Sleep(time.Second)
	if s, n, b := len(rec.events(credgate.EventReadSpike)), len(rec.events(credgate.EventNewReader)), len(rec.events(credgate.EventBroadRead)); s != 1 || n != 1 || b != 1 {
		t.Fatalf("alerts: %d read_spike, %d new_reader, %d broad_read; want one each", s, n, b)
	}
	metrics := string(a.do("GET", "/metrics", "", nil).Raw)
	for _, typ := range []string{credgate.EventNewReader, credgate.EventReadSpike, credgate.EventBroadRead} {
		if !strings.Contains(metrics, `credgate_usage_alerts_total{type="`+typ+`"} 1`) {
			t.Fatalf("the metric does not count %s once", typ)
		}
	}
	rec.check()
}

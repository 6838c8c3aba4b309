package credgate_test

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/credgate/credgate"
)

func batch(subject string, version int, at ...time.Time) credgate.ReadBatch {
	b := credgate.ReadBatch{Issuer: "https://idp", Subject: subject, Name: subject + " app"}
	for _, t := range at {
		b.Add(version, "", t)
	}
	return b
}

// TestLedgerMergeIsAdding: two replicas' batches merged in either order
// give the same ledger, whose counts are the sums, whose last version is
// that of the latest read, and whose windows forget old hours.
func TestLedgerMergeIsAdding(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 30, 0, 0, time.UTC)
	replicaA := []credgate.ReadBatch{batch("billing", 1, now.Add(-2*time.Hour), now.Add(-time.Hour)), batch("checkout", 2, now.Add(-time.Minute))}
	replicaB := []credgate.ReadBatch{batch("billing", 2, now.Add(-90*time.Minute), now.Add(-10*time.Minute), now.Add(-9*time.Minute))}
	var ab, ba credgate.Ledger
	ab.Merge(replicaA, now)
	ab.Merge(replicaB, now)
	ba.Merge(replicaB, now)
	ba.Merge(replicaA, now)
	if !reflect.DeepEqual(ab, ba) {
		t.Fatalf("order matters:\n%+v\n%+v", ab, ba)
	}
	billing := ab.ReaderOf("https://idp", "billing")
	if billing == nil || billing.Reads != 5 || billing.LastVersion != 2 || !billing.FirstRead.Equal(now.Add(-2*time.Hour)) || !billing.LastRead.Equal(now.Add(-9*time.Minute)) {
		t.Fatalf("billing: %+v", billing)
	}
	if ab.Readers[0].Subject != "checkout" { // the most recent reader first
		t.Fatalf("order %v", ab.Readers)
	}
	var total int64
	for _, h := range ab.Hours {
		total += h.Reads
	}
	if total != 6 || len(ab.Hours) != 3 {
		t.Fatalf("hours %+v", ab.Hours)
	}
	// A day and a week later the windows have moved on; the totals stay.
	ab.Merge(nil, now.Add(25*time.Hour))
	if len(ab.ReaderOf("https://idp", "billing").Hours) != 0 || len(ab.Hours) != 3 {
		t.Fatalf("a day later: reader hours %v, ledger hours %v", ab.ReaderOf("https://idp", "billing").Hours, ab.Hours)
	}
	ab.Merge(nil, now.Add(8*24*time.Hour))
	if len(ab.Hours) != 0 || ab.ReaderOf("https://idp", "billing").Reads != 5 {
		t.Fatalf("a week later: %+v", ab)
	}
	if got := ab.Since(now.Add(-5 * time.Minute)); len(got.Readers) != 1 || got.Readers[0].Subject != "checkout" {
		t.Fatalf("since 5 minutes ago: %+v", got.Readers)
	}
}

// TestLedgerIsBounded: past MaxLedgerReaders the least recent readers go,
// and the ledger says how many.
func TestLedgerIsBounded(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	var l credgate.Ledger
	var batches []credgate.ReadBatch
	for i := range credgate.MaxLedgerReaders + 10 {
		batches = append(batches, batch(fmt.Sprint("app-", i), 1, now.Add(time.Duration(i)*time.Second)))
	}
	l.Merge(batches, now.Add(time.Hour))
	if len(l.Readers) != credgate.MaxLedgerReaders || l.Dropped != 10 || l.ReaderOf("https://idp", "app-0") != nil || l.ReaderOf("https://idp", fmt.Sprint("app-", credgate.MaxLedgerReaders+9)) == nil {
		t.Fatalf("%d readers, %d dropped", len(l.Readers), l.Dropped)
	}
}

// TestUnusedSince: a credential read last before t, or never read and
// created before t, is unused since t.
func TestUnusedSince(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	old, recent := now.Add(-100*24*time.Hour), now.Add(-time.Hour)
	cut := now.Add(-90 * 24 * time.Hour)
	for _, c := range []struct {
		created  time.Time
		lastRead *time.Time
		unused   bool
	}{{old, nil, true}, {recent, nil, false}, {old, &old, true}, {old, &recent, false}} {
		cred := credgate.Credential{CreatedAt: c.created, LastAccessedAt: c.lastRead}
		f := credgate.CredentialFilter{UnusedSince: cut}
		if got := f.Matches(&cred, now); got != c.unused || cred.UnusedSince(cut) != c.unused {
			t.Errorf("created %v, read %v: unused %v; want %v", c.created, c.lastRead, got, c.unused)
		}
	}
}

// TestUnusualFindsNewReadersSpikesOnce: a new reader counts only after the
// learning period; a spike needs a day of history, SpikeMin reads and
// SpikeFactor times the average, and is reported once an hour.
func TestUnusualFindsNewReadersSpikesOnce(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 30, 0, 0, time.UTC)
	rules := credgate.DefaultUsageRules
	steady := credgate.LedgerReader{Issuer: "https://idp", Subject: "billing", FirstRead: now.Add(-72 * time.Hour), LastRead: now.Add(-time.Hour)}
	for h := 1; h <= 24; h++ {
		steady.Hours = append([]credgate.HourReads{{Hour: now.Truncate(time.Hour).Add(-time.Duration(h) * time.Hour), Reads: 2}}, steady.Hours...)
	}
	young := credgate.Ledger{Readers: []credgate.LedgerReader{{Issuer: "https://idp", Subject: "x", FirstRead: now.Add(-time.Hour)}}}
	if got := young.Unusual([]credgate.ReadBatch{batch("newcomer", 1, now)}, now, rules); len(got) != 0 {
		t.Fatalf("within the learning period: %+v", got)
	}
	l := credgate.Ledger{Readers: []credgate.LedgerReader{steady, {Issuer: "https://idp", Subject: "old", FirstRead: now.Add(-8 * 24 * time.Hour)}}}
	got := l.Unusual([]credgate.ReadBatch{batch("newcomer", 1, now)}, now, rules)
	if len(got) != 1 || got[0].Type != credgate.EventNewReader || got[0].Reader.Subject != "newcomer" {
		t.Fatalf("a new reader: %+v", got)
	}
	reads := func(n int) []credgate.ReadBatch {
		var at []time.Time
		for range n {
			at = append(at, now)
		}
		return []credgate.ReadBatch{batch("billing", 2, at...)}
	}
	if got := l.Unusual(reads(19), now, rules); len(got) != 0 { // 2 an hour: the threshold is max(20, 10×2) = 20
		t.Fatalf("19 reads: %+v", got)
	}
	got = l.Unusual(reads(20), now, rules)
	if len(got) != 1 || got[0].Type != credgate.EventReadSpike || got[0].Count != 20 || got[0].Threshold != 20 {
		t.Fatalf("20 reads: %+v", got)
	}
	if again := l.Unusual(reads(50), now.Add(10*time.Minute), rules); len(again) != 0 {
		t.Fatalf("reported twice in an hour: %+v", again)
	}
}

// TestReachFindsBroadReadsOncePerWindow: more than BroadIntegrations
// integrations within the window, from any number of merges, is one
// finding; reads older than the window fall out.
func TestReachFindsBroadReadsOncePerWindow(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	rules := credgate.UsageRules{BroadIntegrations: 3, BroadWindow: 10 * time.Minute}
	var r credgate.Reach
	if n, broad := r.Merge(map[string]time.Time{"a": now.Add(-20 * time.Minute), "b": now, "c": now}, now, rules); n != 2 || broad {
		t.Fatalf("%d in the window, broad %v", n, broad)
	}
	if n, broad := r.Merge(map[string]time.Time{"d": now, "e": now}, now, rules); n != 4 || !broad {
		t.Fatalf("%d in the window, broad %v", n, broad)
	}
	if _, broad := r.Merge(map[string]time.Time{"f": now}, now.Add(time.Minute), rules); broad {
		t.Fatal("reported twice within the window")
	}
}

// TestReachShardKeepsPrincipalsApartAndForgets: principals that share a
// shard are counted each on its own; a principal with nothing left in the
// window leaves the record (unless reported within it), and past
// MaxReachPrincipals the least recent go first.
func TestReachShardKeepsPrincipalsApartAndForgets(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	rules := credgate.UsageRules{BroadIntegrations: 3, BroadWindow: 10 * time.Minute}
	var s credgate.ReachShard
	reads := func(at time.Time, ids ...string) map[string]time.Time {
		m := map[string]time.Time{}
		for _, id := range ids {
			m[id] = at
		}
		return m
	}
	early := now.Add(-5 * time.Minute)
	if n, broad := s.Merge("a", reads(early, "x", "y", "z"), now, rules); n != 3 || broad {
		t.Fatalf("a: %d, broad %v", n, broad)
	}
	if n, broad := s.Merge("b", reads(now, "w", "x", "y"), now, rules); n != 3 || broad {
		t.Fatalf("b: %d, broad %v (a's reads counted for b?)", n, broad)
	}
	if n, broad := s.Merge("a", reads(early, "w"), now, rules); n != 4 || !broad {
		t.Fatalf("a again: %d, broad %v", n, broad)
	}
	later := now.Add(6 * time.Minute) // a's reads are 11 minutes old, its report 6
	s.Merge("b", nil, later, rules)
	s.Merge("c", reads(later, "x"), later, rules)
	s.Forget(later, rules)
	if b, ok := s.Principals["b"]; !ok || len(b.Integrations) != 3 {
		t.Fatalf("b read within the window: %+v", b)
	}
	if a, ok := s.Principals["a"]; !ok || len(a.Integrations) != 0 {
		t.Fatalf("a was reported within the window: it stays, with no reads: %+v", a)
	}
	s.Forget(now.Add(11*time.Minute), rules)
	if _, ok := s.Principals["b"]; ok {
		t.Fatal("b read nothing within the window and stays")
	}
	s.Forget(now.Add(21*time.Minute), rules)
	if len(s.Principals) != 0 {
		t.Fatalf("after the window everything goes: %+v", s.Principals)
	}

	for i := range credgate.MaxReachPrincipals + 10 {
		at := now.Add(time.Duration(i) * time.Millisecond)
		s.Merge(fmt.Sprint("p", i), reads(at, "x"), at, rules)
	}
	s.Forget(now.Add(time.Minute), rules)
	if len(s.Principals) != credgate.MaxReachPrincipals {
		t.Fatalf("%d principals kept", len(s.Principals))
	}
	for i := range 10 {
		if _, ok := s.Principals[fmt.Sprint("p", i)]; ok {
			t.Fatalf("p%d, among the least recent, stays", i)
		}
	}
}

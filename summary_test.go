package credgate_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/credgate/credgate"
)

// descriptive are the credential's fields the monitoring rules and the
// counts never read: a summary leaves them out. A field added to
// credgate.Credential must be put here or into credgate.Facts.
var descriptive = map[string]bool{
	"ID": true, "IntegrationID": true, "CredentialName": true, "Description": true, "Scopes": true,
	"TokenEndpoint": true, "AuthorizationEndpoint": true, "Metadata": true, "UpdatedAt": true,
	"CreatedBy": true, "LastAccessedAt": true, "TokenEndpointAuthMethod": true, "Secrets": true, "ReadAt": true, "Behind": true,
}

func TestFactsCarryEveryMonitoredField(t *testing.T) {
	facts := reflect.TypeFor[credgate.Facts]()
	for f := range reflect.TypeFor[credgate.Credential]().Fields() {
		_, inFacts := facts.FieldByName(f.Name)
		if inFacts == descriptive[f.Name] {
			t.Errorf("Credential.%s: in Facts %v, listed descriptive %v; it must be exactly one", f.Name, inFacts, descriptive[f.Name])
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for range 200 {
		c := randomCredential(rng, now)
		b, err := json.Marshal(credgate.FactsOf(c))
		if err != nil {
			t.Fatal(err)
		}
		var f credgate.Facts
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatal(err)
		}
		got := f.Credential(c.ID)
		cv, gv := reflect.ValueOf(c).Elem(), reflect.ValueOf(got).Elem()
		for i := range cv.NumField() {
			name := cv.Type().Field(i).Name
			if descriptive[name] {
				continue
			}
			if a, b := fmt.Sprint(jsonOf(cv.Field(i).Interface())), fmt.Sprint(jsonOf(gv.Field(i).Interface())); a != b {
				t.Fatalf("%s lost in the summary: %s, came back %s", name, a, b)
			}
		}
		if got.IntegrationID != c.IntegrationID || got.ID != c.ID {
			t.Fatalf("the facts name %s/%s, want %s/%s", got.IntegrationID, got.ID, c.IntegrationID, c.ID)
		}
	}
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestNextEventIsNeverLate steps through 100 days of random credentials.
// lives, three hours at a time: from the first instant at which the monitor
// has work for one or it counts differently, NextEvent must have named
// that instant or an earlier one, or a pass would miss it.
func TestNextEventIsNeverLate(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	schedules := []credgate.Schedule{{}, {Thresholds: []int{14, 3}, Overdue: 2 * 24 * time.Hour}}
	sawWork, sawTurn := 0, 0
	for i := range 800 {
		c := randomCredential(rng, now)
		s := schedules[i%2]
		at, ok := c.NextEvent(now, s)
		if c.MonitorWork(now, s) {
			sawWork++
			if !ok || !at.Equal(now) {
				t.Fatalf("credential %d has work now but NextEvent says %v %v", i, at, ok)
			}
			continue
		}
		was := countsOf(c, now, s)
		for step := time.Hour; step <= 100*24*time.Hour; step += 3 * time.Hour {
			when := now.Add(step)
			if c.MonitorWork(when, s) || countsOf(c, when, s) != was {
				sawTurn++
				if !ok || at.After(when) {
					t.Fatalf("credential %d (%s) turns at %s but NextEvent said %v (ok %v)", i, jsonOf(credgate.FactsOf(c)), when, at, ok)
				}
				break
			}
		}
	}
	if sawWork < 40 || sawTurn < 200 {
		t.Fatalf("the generated credentials exercise too little: %d with work now, %d turning later", sawWork, sawTurn)
	}
}

func countsOf(c *credgate.Credential, now time.Time, s credgate.Schedule) string {
	n := credgate.NewInventoryCounts()
	n.Overdue = s.Overdue
	n.Count(c, now)
	return fmt.Sprint(n.Status, n.Expiry, n.Rotation, n.Connection)
}

// randomCredential makes a credential with the monitored fields set at
// random around now.
func randomCredential(rng *rand.Rand, now time.Time) *credgate.Credential {
	at := func(spanDays int) *time.Time {
		t := now.Add(time.Duration(rng.IntN(spanDays*24*60)-10*24*60) * time.Minute)
		return &t
	}
	maybe := func(spanDays int) *time.Time {
		if rng.IntN(2) == 0 {
			return nil
		}
		return at(spanDays)
	}
	c := &credgate.Credential{
		ID: "c" + strconv.Itoa(rng.IntN(1e6)), IntegrationID: "svc", AuthType: credgate.AuthAPIKey,
		Status:    []string{credgate.CredActive, credgate.CredActive, credgate.CredInactive, credgate.CredRevoked}[rng.IntN(4)],
		CreatedAt: now.Add(-time.Duration(rng.IntN(400)) * 24 * time.Hour), Version: 1 + rng.IntN(5),
		ExpiresAt: maybe(70), RevokeAt: maybe(90), RotationDueAt: maybe(60),
	}
	if c.ExpiresAt != nil && rng.IntN(3) == 0 {
		c.Notices = credgate.ExpiryNotices{For: c.ExpiresAt.Unix(), Days: []int{30}}
	}
	if rng.IntN(4) == 0 {
		c.PreviousVersion, c.PreviousRevokeAt = c.Version-1+1, at(20)
		c.RevokeWhenMigrated = rng.IntN(2) == 0
		if rng.IntN(2) == 0 {
			c.PreviousRevoked, c.StalledNotice = c.PreviousVersion, c.PreviousVersion
		}
	}
	if rng.IntN(3) == 0 {
		c.LastRotatedAt = at(1)
		c.RotationPolicy = &credgate.RotationPolicy{Every: "90d"}
		c.RotationSent = credgate.RotationNotices{For: c.LastRotatedAt.Unix(), Due: rng.IntN(2) == 0}
	}
	if rng.IntN(4) == 0 {
		c.Rotator = "rot"
		if rng.IntN(2) == 0 {
			c.Rotation = &credgate.RotationStatus{State: credgate.RotationFailed, UpdatedAt: *at(5)}
		}
	}
	if rng.IntN(5) == 0 {
		c.AuthType, c.AutoRefresh = credgate.AuthOAuth2Bearer, true
		c.Connection = &credgate.Connection{State: "connected", Since: now}
		c.RefreshLeadTime = "2h"
		if rng.IntN(2) == 0 {
			c.Refresh = &credgate.RefreshState{FailingSince: now, Failures: 2, NextAttemptAt: at(1)}
		}
	}
	return c
}

func TestSummaryHeadForgetsOnlyWhatItSaw(t *testing.T) {
	var h credgate.SummaryHead
	h.Mark("svc/a", "1")
	h.Mark("svc/b", "1")
	seen := map[string]string{"svc/a": "1", "svc/b": "1"}
	h.Mark("svc/b", "2") // written again while the monitor read it
	h.Forget(seen)
	if _, ok := h.Dirty["svc/a"]; ok {
		t.Fatal("a mark the monitor saw and handled is kept")
	}
	if h.Dirty["svc/b"] != "2" {
		t.Fatal("a mark renewed while the monitor read the credential is forgotten: that write would be lost to the summary")
	}
	for i := range credgate.MaxSummaryDirty {
		h.Mark("svc/x"+strconv.Itoa(i), "1")
	}
	if !h.Rebuild || len(h.Dirty) != 0 {
		t.Fatalf("past %d marks the head asks for a rebuild: rebuild %v, %d marks", credgate.MaxSummaryDirty, h.Rebuild, len(h.Dirty))
	}
}

func TestARebuildKeepsWhatWasWrittenWhileItRan(t *testing.T) {
	var h credgate.SummaryHead
	h.AskRebuild()
	h.Mark("svc/a", "1")
	rebuilds, seen := h.Rebuilds, maps.Clone(h.Dirty) // the monitor reads the head and begins
	h.Mark("svc/b", "1")                              // written during the rebuild
	h.Built(rebuilds, seen, time.Now(), 2, "s", nil, nil)
	if h.Rebuild || h.N != 2 || len(h.Dirty) != 1 || h.Dirty["svc/b"] != "1" {
		t.Fatalf("after a rebuild: rebuild %v, n %d, marks %v (want only svc/b's)", h.Rebuild, h.N, h.Dirty)
	}
	rebuilds = h.Rebuilds
	h.AskRebuild() // a service deleted during the next rebuild
	h.Built(rebuilds, nil, time.Now(), 2, "s", nil, nil)
	if !h.Rebuild {
		t.Fatal("a rebuild asked for while one ran was dropped: what it asked for would wait for the periodic one")
	}
}

func TestDueShards(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	past, later, soon := now.Add(-time.Minute), now.Add(time.Hour), now.Add(4*time.Minute)
	h := credgate.SummaryHead{N: 8}
	h.SetShard(1, credgate.ShardState{Due: &past})
	h.SetShard(2, credgate.ShardState{Due: &later})
	h.SetShard(3, credgate.ShardState{Refresh: &soon})
	h.SetShard(4, credgate.ShardState{Refresh: &later})
	key := "svc/changed"
	h.Mark(key, "1")
	got := h.DueShards(now, 5*time.Minute)
	want := map[int]bool{1: true, 3: true, credgate.SummaryShardOf(key, h.N): true}
	if len(got) != len(want) {
		t.Fatalf("due shards %v, want %v", got, want)
	}
	for _, i := range got {
		if !want[i] {
			t.Fatalf("due shards %v, want %v", got, want)
		}
	}
}

func TestAMarkTellsWhenItWasMade(t *testing.T) {
	at := time.Date(2026, 12, 2, 3, 4, 5, 6, time.UTC)
	a, b := credgate.NewMarkStamp(at), credgate.NewMarkStamp(at)
	if a == b {
		t.Fatal("two marks made at once have one stamp: the monitor could forget the second write's")
	}
	if got := credgate.MarkTime(a); !got.Equal(at) {
		t.Fatalf("MarkTime = %v, want %v", got, at)
	}
	if !credgate.MarkTime("1").Before(at) || !credgate.MarkTime("no stamp").IsZero() {
		t.Fatal("a stamp without a time must read as long ago")
	}
}

func TestShardsGrowWithTheTenant(t *testing.T) {
	for n, want := range map[int]int{0: 1, 1: 1, credgate.ShardSize: 1, credgate.ShardSize + 1: 2, 10 * credgate.ShardSize: 10, 1_000_000: credgate.SummaryShards} {
		if got := credgate.ShardsFor(n); got != want {
			t.Errorf("ShardsFor(%d) = %d, want %d", n, got, want)
		}
	}
	seen := map[int]bool{}
	for i := range 1000 {
		s := credgate.SummaryShardOf("svc/c"+strconv.Itoa(i), 5)
		if s < 0 || s >= 5 {
			t.Fatalf("shard %d of 5", s)
		}
		seen[s] = true
	}
	if len(seen) != 5 {
		t.Fatalf("1,000 keys fell in %d of 5 shards", len(seen))
	}
}

func TestShardStateCountsAndDue(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	in10, in40 := now.Add(10*24*time.Hour), now.Add(40*24*time.Hour)
	sh := credgate.SummaryShard{
		"svc/a": credgate.FactsOf(&credgate.Credential{IntegrationID: "svc", Status: credgate.CredActive, ExpiresAt: &in10, Notices: credgate.ExpiryNotices{For: in10.Unix(), Days: []int{30}}}),
		"svc/b": credgate.FactsOf(&credgate.Credential{IntegrationID: "svc", Status: credgate.CredActive, ExpiresAt: &in40}),
	}
	st := sh.StateAt(now, credgate.Schedule{})
	if st.Size != 2 || st.Counts.Status[credgate.CredActive] != 2 || st.Counts.Expiry["lt_30d"] != 1 {
		t.Fatalf("counts %+v", st.Counts)
	}
	if want := in10.Add(-7 * 24 * time.Hour); st.Due == nil || !st.Due.Equal(want) {
		t.Fatalf("the shard is next due at %v, want %v (a's 7-day notice)", st.Due, want)
	}
}

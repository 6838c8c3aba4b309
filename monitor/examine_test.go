package monitor

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/credgate/credgate"
)

// recorder is a store and publisher that records what examine asks of
// them; refresh answers what the test sets.
type recorder struct {
	mu        sync.Mutex
	updates   []int // ifMatch of each UpdateCredential
	refreshes []int // ifMatch of each RefreshCredential
	watches   []credgate.Watch
	events    []credgate.Event
	refresh   func(c *credgate.Credential) (*credgate.Credential, error)
	ledger    credgate.Ledger
	current   *credgate.Credential   // what UpdateCredential reads, when set
	updated   []*credgate.Credential // what each UpdateCredential wrote
}

func (r *recorder) CredentialLedger(context.Context, string, string) (*credgate.Ledger, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.ledger
	return &l, nil
}

func (r *recorder) Tenants(context.Context) ([]string, error) { return nil, nil }
func (r *recorder) HoldLease(context.Context, string, string, time.Duration, *string) (bool, string, error) {
	return true, "", nil
}
func (r *recorder) ReleaseLease(context.Context, string, string) {}
func (r *recorder) ListCredentials(context.Context, credgate.CredentialFilter) (*credgate.CredentialPage, error) {
	return &credgate.CredentialPage{}, nil
}
func (r *recorder) ExpireGrants(context.Context, string, time.Time) ([]credgate.Grant, error) {
	return nil, nil
}
func (r *recorder) SaveWatch(_ context.Context, _ string, c *credgate.Credential) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.watches = append(r.watches, credgate.WatchOf(c))
	return nil
}
func (r *recorder) SaveRefreshState(ctx context.Context, tenant string, c *credgate.Credential) error {
	return r.SaveWatch(ctx, tenant, c)
}
func (r *recorder) UpdateCredential(_ context.Context, _ string, ifMatch int, fn func(*credgate.Credential) error) (*credgate.Credential, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.updates = append(r.updates, ifMatch)
	c := &credgate.Credential{ID: "cred-1", Status: credgate.CredActive, Version: ifMatch}
	if r.current != nil {
		copied := *r.current
		c = &copied
	}
	if err := fn(c); err != nil {
		return nil, err
	}
	c.Version++
	r.updated = append(r.updated, c)
	return c, nil
}
func (r *recorder) RefreshCredential(_ context.Context, _ string, ifMatch int, _ credgate.RefreshGrant) (*credgate.Credential, error) {
	r.mu.Lock()
	r.refreshes = append(r.refreshes, ifMatch)
	f := r.refresh
	r.mu.Unlock()
	return f(&credgate.Credential{ID: "cred-1", Version: ifMatch})
}
func (r *recorder) Publish(_ context.Context, e credgate.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
	return nil
}

// Intend records nothing first: what is confirmed is what the recorder
// keeps as published.
func (r *recorder) Intend(context.Context, ...credgate.Event) (credgate.Intent, error) {
	return recordingIntent{r}, nil
}

type recordingIntent struct{ r *recorder }

func (recordingIntent) Context(ctx context.Context) context.Context { return ctx }
func (i recordingIntent) Confirm(ctx context.Context, e credgate.Event) {
	_ = i.r.Publish(ctx, e)
}
func (recordingIntent) Withdraw(context.Context) {}

func (r *recorder) types() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		out = append(out, e.Type)
	}
	return out
}

var now = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func examiner(t *testing.T, r *recorder) *Monitor {
	t.Helper()
	m, err := New(Options{Store: r, Events: r, Logger: zap.NewNop(), Interval: 10 * time.Second, RefreshBackoff: time.Minute, Now: func() time.Time { return now },
		Grant: func(context.Context, *credgate.Credential) (credgate.Secrets, *time.Time, error) {
			return nil, nil, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.work.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return m
}

// examineNow examines c and waits for the refresh it queued, if any.
func (m *Monitor) examineNow(ctx context.Context, tenant string, c *credgate.Credential) {
	m.examine(ctx, tenant, c, nil)
	m.work.Wait(ctx)
}

func at(d time.Duration) *time.Time { t := now.Add(d); return &t }

func ctxOf() context.Context {
	return credgate.WithPrincipal(context.Background(), credgate.SystemPrincipal("acme"))
}

// TestExamineDoesWhatIsDueAndNothingElse: each credential is given the one
// thing it is due, on condition that it is still the version the scan
// read, and a credential with nothing due costs nothing.
func TestExamineDoesWhatIsDueAndNothingElse(t *testing.T) {
	t.Run("nothing due", func(t *testing.T) {
		r := &recorder{}
		examiner(t, r).examineNow(ctxOf(), "acme", &credgate.Credential{ID: "cred-1", Status: credgate.CredActive, Version: 3, ExpiresAt: at(90 * 24 * time.Hour)})
		if len(r.events)+len(r.updates)+len(r.refreshes)+len(r.watches) != 0 {
			t.Fatalf("events %v, updates %v, refreshes %v, watches %v", r.types(), r.updates, r.refreshes, r.watches)
		}
	})
	t.Run("revokeAt reached", func(t *testing.T) {
		r := &recorder{}
		examiner(t, r).examineNow(ctxOf(), "acme", &credgate.Credential{ID: "cred-1", Status: credgate.CredActive, Version: 3, RevokeAt: at(-time.Minute)})
		if len(r.updates) != 1 || r.updates[0] != 3 {
			t.Fatalf("updates with ifMatch %v; want one, on version 3", r.updates)
		}
		if len(r.events) != 1 || r.events[0].Type != credgate.EventRevoked || r.events[0].Data.Reason != "revokeAt" {
			t.Fatalf("events %+v", r.events)
		}
	})
	t.Run("the previous version's end", func(t *testing.T) {
		r := &recorder{}
		c := &credgate.Credential{ID: "cred-1", Status: credgate.CredActive, Version: 4, PreviousVersion: 3, PreviousRevokeAt: at(-time.Second)}
		m := examiner(t, r)
		m.examineNow(ctxOf(), "acme", c)
		if len(r.events) != 1 || r.events[0].Data.Version != 3 || r.events[0].Data.Reason != "previousRevokeAt" {
			t.Fatalf("events %+v", r.events)
		}
		if len(r.watches) != 1 || r.watches[0].PreviousRevoked != 3 {
			t.Fatalf("watches %+v; want the end recorded", r.watches)
		}
		m.examineNow(ctxOf(), "acme", c) // c carries the recorded end now
		if len(r.events) != 1 {
			t.Fatalf("announced twice: %v", r.types())
		}
	})
	t.Run("an expiry notice, once", func(t *testing.T) {
		r := &recorder{}
		c := &credgate.Credential{ID: "cred-1", Status: credgate.CredActive, Version: 2, ExpiresAt: at(6 * 24 * time.Hour)}
		m := examiner(t, r)
		m.examineNow(ctxOf(), "acme", c)
		m.examineNow(ctxOf(), "acme", c)
		if len(r.events) != 1 || r.events[0].Type != credgate.EventExpiring || r.events[0].Data.ThresholdDays != 7 {
			t.Fatalf("events %+v; want one 7-day notice", r.events)
		}
		if len(r.watches) != 1 || len(r.updates)+len(r.refreshes) != 0 {
			t.Fatalf("watches %v, updates %v, refreshes %v", r.watches, r.updates, r.refreshes)
		}
	})
}

// TestExamineRefreshesOnConditionAndBacksOff: a due autoRefresh credential
// is refreshed on condition of the version read; a refresh that fails is
// recorded with a growing pause and announced; one that lost the race is
// left alone.
func TestExamineRefreshesOnConditionAndBacksOff(t *testing.T) {
	due := func() *credgate.Credential {
		return &credgate.Credential{ID: "cred-1", AuthType: credgate.AuthOAuth2Bearer, Status: credgate.CredActive, Version: 5, AutoRefresh: true,
			ExpiresAt: at(2 * time.Minute), TokenEndpoint: "https://idp.example/token", Secrets: credgate.Secrets{"refreshToken": "rt"}}
	}
	r := &recorder{refresh: func(c *credgate.Credential) (*credgate.Credential, error) {
		return &credgate.Credential{ID: c.ID, Version: c.Version + 1, Status: credgate.CredActive, ExpiresAt: at(90 * 24 * time.Hour)}, nil
	}}
	examiner(t, r).examineNow(ctxOf(), "acme", due())
	if len(r.refreshes) != 1 || r.refreshes[0] != 5 || len(r.events) != 1 || r.events[0].Type != credgate.EventRefreshed {
		t.Fatalf("refreshes %v, events %v; want one on version 5 and credential.refreshed", r.refreshes, r.types())
	}

	r = &recorder{refresh: func(*credgate.Credential) (*credgate.Credential, error) {
		return nil, &credgate.Error{Code: credgate.EUpstreamError, UpstreamError: "invalid_grant"}
	}}
	m := examiner(t, r)
	c := due()
	m.examineNow(ctxOf(), "acme", c) // (it is due an expiry notice too: 2 minutes left)
	failed := func() []credgate.Event {
		var out []credgate.Event
		for _, e := range r.events {
			if e.Type == credgate.EventRefreshFailed {
				out = append(out, e)
			}
		}
		return out
	}
	if w := r.watches[0]; w.Refresh == nil || w.Refresh.Failures != 1 || w.Refresh.LastError != "UPSTREAM_ERROR: invalid_grant" || len(failed()) != 1 {
		t.Fatalf("watches %+v, events %v", r.watches, r.types())
	}
	if next := r.watches[0].Refresh.NextAttemptAt.Sub(now); next != time.Minute {
		t.Fatalf("next attempt %s after the failure; want the backoff, 1m", next)
	}
	c.Refresh = r.watches[0].Refresh // as the next pass reads it
	m.examineNow(ctxOf(), "acme", c) // before the next attempt: not tried
	if len(r.refreshes) != 1 {
		t.Fatalf("%d refreshes before the next attempt was due", len(r.refreshes))
	}
	now = now.Add(2 * time.Minute) // past the next attempt: fails again
	defer func() { now = now.Add(-2 * time.Minute) }()
	m.examineNow(ctxOf(), "acme", c)
	last := r.watches[len(r.watches)-1].Refresh
	if len(r.refreshes) != 2 || last.Failures != 2 || last.NextAttemptAt.Sub(now) != 2*time.Minute || len(failed()) != 2 || failed()[1].Data.Failures != 2 {
		t.Fatalf("second failure: %+v, events %v; want 2 failures and the pause doubled", last, r.types())
	}

	r = &recorder{refresh: func(*credgate.Credential) (*credgate.Credential, error) {
		return nil, credgate.Errorf(credgate.EVersionConflict, "changed meanwhile")
	}}
	lost := due()
	examiner(t, r).examineNow(ctxOf(), "acme", lost)
	if lost.Refresh != nil || slices.Contains(r.types(), credgate.EventRefreshFailed) || slices.Contains(r.types(), credgate.EventRefreshed) {
		t.Fatalf("a refresh another replica made: %+v, events %v", lost.Refresh, r.types())
	}
}

func (r *recorder) SweepIdempotency(context.Context, string) (int, error) { return 0, nil }

// TestExamineEndsAMigrationWhenEveryReaderMoved: a rotation that keeps its
// previous version until a deadline, revokeWhenMigrated, ends it as soon as
// the ledger shows every recent reader on a newer version, on condition of
// the version read; a reader silent for longer than the lookback does not
// hold it. A day before the deadline the readers still on it are named,
// once.
func TestExamineEndsAMigrationWhenEveryReaderMoved(t *testing.T) {
	deadline := at(10 * 24 * time.Hour)
	migrating := func() *credgate.Credential {
		return &credgate.Credential{ID: "cred-1", IntegrationID: "stripe", Status: credgate.CredActive, Version: 2, PreviousVersion: 1, PreviousRevokeAt: deadline, RevokeWhenMigrated: true}
	}
	reader := func(subject string, version int, ago time.Duration) credgate.LedgerReader {
		return credgate.LedgerReader{Issuer: "https://idp", Subject: subject, LastVersion: version, LastRead: now.Add(-ago), Reads: 3}
	}
	r := &recorder{}
	r.current = migrating()
	r.ledger = credgate.Ledger{Readers: []credgate.LedgerReader{reader("billing", 1, time.Hour), reader("checkout", 2, time.Minute), reader("gone", 1, 40*24*time.Hour)}}
	m := examiner(t, r)
	m.examineNow(ctxOf(), "acme", migrating())
	if len(r.updates)+len(r.events) != 0 {
		t.Fatalf("billing is still on version 1, yet: updates %v, events %v", r.updates, r.types())
	}
	r.ledger.Readers[0] = reader("billing", 2, time.Second)
	m.examineNow(ctxOf(), "acme", migrating())
	if len(r.updates) != 1 || r.updates[0] != 2 || !r.updated[0].PreviousRevokeAt.Equal(now) {
		t.Fatalf("updates %v (%+v); want the previous version ended now, on condition of version 2", r.updates, r.updated)
	}
	if len(r.events) != 1 || r.events[0].Type != credgate.EventRevoked || r.events[0].Data.Reason != "migrated" || r.events[0].Data.Version != 1 {
		t.Fatalf("events %+v", r.events)
	}

	// Without revokeWhenMigrated it waits for its deadline; a day before
	// it, the readers still on version 1 are named once.
	r = &recorder{}
	r.ledger = credgate.Ledger{Readers: []credgate.LedgerReader{reader("billing", 1, time.Hour), reader("checkout", 2, time.Minute)}}
	m = examiner(t, r)
	c := migrating()
	c.RevokeWhenMigrated = false
	m.examineNow(ctxOf(), "acme", c)
	if len(r.events)+len(r.updates) != 0 {
		t.Fatalf("ten days before the deadline: %v", r.types())
	}
	c.PreviousRevokeAt = at(20 * time.Hour)
	m.examineNow(ctxOf(), "acme", c)
	m.examineNow(ctxOf(), "acme", c) // c carries the notice now
	if len(r.events) != 1 || r.events[0].Type != credgate.EventMigrationStalled || len(r.events[0].Data.Readers) != 1 || r.events[0].Data.Readers[0].Subject != "billing" {
		t.Fatalf("events %+v; want one migration_stalled naming billing", r.events)
	}
	if len(r.updates) != 0 {
		t.Fatalf("updates %v before the deadline", r.updates)
	}
}

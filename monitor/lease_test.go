package monitor_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/monitor"
)

// leaseStore is a store whose lease the test hands out; it has no tenants.
type leaseStore struct {
	mu     sync.Mutex
	holder string
	passes int
}

func (s *leaseStore) give(h string) { s.mu.Lock(); s.holder = h; s.mu.Unlock() }

// scans counts the passes begun: each lists the tenants first.
func (s *leaseStore) scans() int { s.mu.Lock(); defer s.mu.Unlock(); return s.passes }

func (s *leaseStore) HoldLease(_ context.Context, _, holder string, _ time.Duration, _ *string) (bool, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.holder == holder, "", nil
}
func (s *leaseStore) ReleaseLease(context.Context, string, string) {}
func (s *leaseStore) Tenants(context.Context) ([]string, error) {
	s.mu.Lock()
	s.passes++
	s.mu.Unlock()
	return nil, nil
}
func (s *leaseStore) ListCredentials(context.Context, credgate.CredentialFilter) (*credgate.CredentialPage, error) {
	return &credgate.CredentialPage{}, nil
}
func (s *leaseStore) ExpireGrants(context.Context, string, time.Time) ([]credgate.Grant, error) {
	return nil, nil
}
func (s *leaseStore) SaveWatch(context.Context, string, *credgate.Credential) error { return nil }
func (s *leaseStore) SaveRefreshState(context.Context, string, *credgate.Credential) error {
	return nil
}
func (s *leaseStore) UpdateCredential(context.Context, string, int, func(*credgate.Credential) error) (*credgate.Credential, error) {
	return nil, nil
}
func (s *leaseStore) RefreshCredential(context.Context, string, int, credgate.RefreshGrant) (*credgate.Credential, error) {
	return nil, nil
}

type nopEvents struct{}

func (nopEvents) Publish(context.Context, credgate.Event) error { return nil }
func (nopEvents) Intend(context.Context, ...credgate.Event) (credgate.Intent, error) {
	return nopIntent{}, nil
}

type nopIntent struct{}

func (nopIntent) Context(ctx context.Context) context.Context { return ctx }
func (nopIntent) Confirm(context.Context, credgate.Event)     {}
func (nopIntent) Withdraw(context.Context)                    {}

// Only the holder of the lease passes; a replica that loses it withdraws
// what it reported, as does one that stops while holding it.
func TestOnlyTheLeaseHolderScansAndALostLeaseWithdraws(t *testing.T) {
	st := &leaseStore{}
	lost := 0
	passes := 0
	m, err := monitor.New(monitor.Options{Store: st, Events: nopEvents{}, Logger: zap.NewNop(), Holder: "a", Interval: time.Nanosecond,
		Grant: func(context.Context, *credgate.Credential) (credgate.Secrets, *time.Time, error) {
			return nil, nil, nil
		},
		OnPass: func(monitor.Pass) { passes++ }, OnLost: func() { lost++ }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st.give("b")
	m.Step(ctx)
	if scans := st.scans(); scans != 0 || passes != 0 || m.Leader() {
		t.Fatalf("a replica without the lease began %d passes (%d finished)", scans, passes)
	}
	st.give("a")
	m.Step(ctx)
	m.Step(ctx)
	if passes != 2 || st.scans() != 2 || !m.Leader() || lost != 0 {
		t.Fatalf("holder: %d passes (%d begun), leader %v, lost %d", passes, st.scans(), m.Leader(), lost)
	}
	st.give("b")
	m.Step(ctx)
	if lost != 1 || m.Leader() || passes != 2 || st.scans() != 2 {
		t.Fatalf("after losing the lease: lost %d, leader %v, passes %d (%d begun)", lost, m.Leader(), passes, st.scans())
	}
	// Stopping while holding it withdraws too.
	st.give("a")
	run, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { m.Run(run); close(done) }()
	for !m.Leader() {
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	if lost != 2 || m.Leader() {
		t.Fatalf("after stopping: lost %d, leader %v", lost, m.Leader())
	}
}

func (s *leaseStore) SweepIdempotency(context.Context, string) (int, error) { return 0, nil }
func (s *leaseStore) CredentialLedger(context.Context, string, string) (*credgate.Ledger, error) {
	return &credgate.Ledger{}, nil
}

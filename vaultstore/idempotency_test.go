package vaultstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/credgate/credgate"
)

// TestIdempotencyKeysAreClaimedOnceAndSweptAfterTwoDays: a key is run by
// one holder, answered from what was kept, refused for another request;
// the monitor's sweep removes days past keeping and keeps today's.
func TestIdempotencyKeysAreClaimedOnceAndSweptAfterTwoDays(t *testing.T) {
	e := mustEnv(t)
	ctx := as(principal("acme", "alice", "integration_admin"))
	if a, err := e.store.ClaimIdempotency(ctx, "k1", "fp", "h1", time.Minute); err != nil || a != nil {
		t.Fatalf("first claim: %q %v", a, err)
	}
	// (It waits for the first holder; the deadline comes first.)
	busy, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := e.store.ClaimIdempotency(busy, "k1", "fp", "h2", time.Minute); credgate.ErrorCode(err) != credgate.EIdempotencyKeyInUse {
		t.Fatalf("a second holder while the first runs: %v", err)
	}
	if _, err := e.store.ClaimIdempotency(ctx, "k1", "other", "h2", time.Minute); credgate.ErrorCode(err) != credgate.EIdempotencyKeyReused {
		t.Fatalf("another request with the key: %v", err)
	}
	if err := e.store.KeepIdempotency(ctx, "k1", "h1", []byte(`{"status":201}`)); err != nil {
		t.Fatal(err)
	}
	if a, err := e.store.ClaimIdempotency(ctx, "k1", "fp", "h3", time.Minute); err != nil || string(a) != `{"status":201}` {
		t.Fatalf("after the answer: %q %v", a, err)
	}
	// Another caller's k1 is another key.
	if a, err := e.store.ClaimIdempotency(as(principal("acme", "bob", "integration_admin")), "k1", "fp", "h4", time.Minute); err != nil || a != nil {
		t.Fatalf("bob's k1: %q %v", a, err)
	}
	// A day long past.
	old := e.mount + "/data/tenants/acme/idempotency/2020-01-01/"
	for _, name := range []string{"a", "b"} {
		if _, err := e.root.Logical().Write(old+name, map[string]any{"data": map[string]any{"state": "done"}}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := e.store.SweepIdempotency(context.Background(), "acme")
	if err != nil || n != 2 {
		t.Fatalf("swept %d: %v", n, err)
	}
	if a, err := e.store.ClaimIdempotency(ctx, "k1", "fp", "h5", time.Minute); err != nil || string(a) != `{"status":201}` {
		t.Fatalf("today's key after the sweep: %q %v", a, err)
	}
}

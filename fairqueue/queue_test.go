package fairqueue_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credgate/credgate/fairqueue"
)

func running(t *testing.T, q *fairqueue.Queue) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { q.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// TestAHangingTenantUsesOnlyItsShare: a tenant whose every job hangs holds
// PerTenant workers and no more; another tenant's jobs, added after, run
// at once.
func TestAHangingTenantUsesOnlyItsShare(t *testing.T) {
	q := fairqueue.New(fairqueue.Options{Workers: 4})
	running(t, q)
	release := make(chan struct{})
	defer close(release)
	var hung atomic.Int32
	for i := range 30 {
		q.Add("slow", fmt.Sprint(i), func(ctx context.Context) {
			hung.Add(1)
			select {
			case <-release:
			case <-ctx.Done():
			}
		})
	}
	ran := make(chan time.Time, 10)
	start := time.Now()
	for i := range 10 {
		q.Add("quick", fmt.Sprint(i), func(context.Context) { ran <- time.Now() })
	}
	for range 10 {
		select {
		case <-ran:
		case <-time.After(5 * time.Second):
			t.Fatal("the other tenant's jobs did not run while one tenant hung")
		}
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("the other tenant's 10 jobs took %s", took)
	}
	// Its second job may have been handed a worker without having begun
	// yet, and the last quick job may have sent without its worker being
	// free yet: let both settle a moment.
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if r, _ := q.Stats(); hung.Load() >= 2 && r <= 2 {
			break
		}
	}
	if n := hung.Load(); n != 2 {
		t.Fatalf("the hanging tenant holds %d workers; want its share, 2", n)
	}
	if r, w := q.Stats(); r != 2 || w != 28 {
		t.Fatalf("running %d, waiting %d; want 2 and 28", r, w)
	}
}

// TestTenantsTakeTurns: with one worker, a tenant that queued many jobs
// does not go before one that queued later.
func TestTenantsTakeTurns(t *testing.T) {
	q := fairqueue.New(fairqueue.Options{Workers: 1})
	var mu sync.Mutex
	var order []string
	job := func(name string) func(context.Context) {
		return func(context.Context) { mu.Lock(); order = append(order, name); mu.Unlock() }
	}
	for i := range 5 {
		q.Add("a", fmt.Sprint(i), job(fmt.Sprint("a", i)))
	}
	q.Add("b", "0", job("b0"))
	q.Add("c", "0", job("c0"))
	running(t, q) // jobs added before Run wait for it
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	q.Wait(ctx)
	want := []string{"a0", "b0", "c0", "a1", "a2", "a3", "a4"}
	if !slices.Equal(order, want) {
		t.Fatalf("order %v; want %v", order, want)
	}
}

// TestAKeyIsOneJob: a key added while its job waits is one job; added
// while it runs, the latest job added runs once afterwards (what changed
// while it ran is seen), not twice.
func TestAKeyIsOneJob(t *testing.T) {
	q := fairqueue.New(fairqueue.Options{Workers: 2})
	var mu sync.Mutex
	var runs []int
	entered, release := make(chan struct{}, 10), make(chan struct{})
	job := func(n int) func(context.Context) {
		return func(context.Context) {
			mu.Lock()
			runs = append(runs, n)
			mu.Unlock()
			entered <- struct{}{}
			<-release
		}
	}
	q.Add("a", "evt_1", job(1))
	q.Add("a", "evt_1", job(2))
	running(t, q)
	<-entered
	q.Add("a", "evt_1", job(3)) // while it runs
	q.Add("a", "evt_1", job(4))
	close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	q.Wait(ctx)
	if !slices.Equal(runs, []int{1, 4}) {
		t.Fatalf("ran %v; want [1 4]", runs)
	}
}

// TestATenantsQueueIsBounded: past MaxQueued a tenant's jobs are refused,
// another tenant's are not.
func TestATenantsQueueIsBounded(t *testing.T) {
	q := fairqueue.New(fairqueue.Options{Workers: 1, MaxQueued: 3})
	for i := range 3 {
		if !q.Add("a", fmt.Sprint(i), func(context.Context) {}) {
			t.Fatalf("job %d refused", i)
		}
	}
	if q.Add("a", "3", func(context.Context) {}) {
		t.Fatal("a fourth job queued past MaxQueued 3")
	}
	if !q.Add("b", "0", func(context.Context) {}) {
		t.Fatal("another tenant's job refused")
	}
}

package deadline

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

type key struct{}

func TestAContextFromWithinIsWithTimeout(t *testing.T) {
	parent := context.WithValue(context.Background(), key{}, "v")

	t.Run("deadline and values without arming", func(t *testing.T) {
		before := time.Now()
		ctx, cancel := Within(parent, time.Hour)
		defer cancel()
		at, ok := ctx.Deadline()
		if !ok || at.Before(before.Add(time.Hour)) || at.After(time.Now().Add(time.Hour)) {
			t.Fatalf("deadline %v %v", at, ok)
		}
		if ctx.Value(key{}) != "v" {
			t.Fatal("the parent's value is lost")
		}
		if ctx.(*lazy).real.Load() != nil {
			t.Fatal("armed by Deadline or Value")
		}
	})

	t.Run("armed after the deadline: already expired", func(t *testing.T) {
		ctx, cancel := Within(parent, 20*time.Millisecond)
		defer cancel()
		time.Sleep(40 * time.Millisecond)
		select {
		case <-ctx.Done():
		default:
			t.Fatal("Done is open after the deadline")
		}
		if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			t.Fatalf("Err %v", ctx.Err())
		}
	})

	t.Run("armed before the deadline: expires at it", func(t *testing.T) {
		ctx, cancel := Within(parent, 30*time.Millisecond)
		defer cancel()
		child, stop := context.WithCancel(ctx) // arms, as the standard library waits on Done
		defer stop()
		if ctx.Err() != nil {
			t.Fatal("expired early")
		}
		select {
		case <-child.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("a child of it never expired")
		}
		if !errors.Is(child.Err(), context.DeadlineExceeded) || child.Value(key{}) != "v" {
			t.Fatalf("child: %v %v", child.Err(), child.Value(key{}))
		}
	})

	t.Run("cancel before any use, and after", func(t *testing.T) {
		ctx, cancel := Within(parent, time.Hour)
		cancel()
		if !errors.Is(ctx.Err(), context.Canceled) {
			t.Fatalf("canceled before use: Err %v", ctx.Err())
		}
		ctx, cancel = Within(parent, time.Hour)
		<-func() <-chan struct{} { d := ctx.Done(); cancel(); return d }()
		if !errors.Is(ctx.Err(), context.Canceled) {
			t.Fatalf("canceled after use: Err %v", ctx.Err())
		}
	})

	t.Run("the parent's cancellation reaches it", func(t *testing.T) {
		p, stop := context.WithCancel(parent)
		ctx, cancel := Within(p, time.Hour)
		defer cancel()
		stop()
		if !errors.Is(ctx.Err(), context.Canceled) {
			t.Fatalf("Err %v", ctx.Err())
		}
	})

	t.Run("a sooner parent deadline wins", func(t *testing.T) {
		p, stop := context.WithTimeout(parent, time.Minute)
		defer stop()
		ctx, cancel := Within(p, time.Hour)
		defer cancel()
		want, _ := p.Deadline()
		if at, _ := ctx.Deadline(); !at.Equal(want) {
			t.Fatalf("deadline %v, the parent's %v", at, want)
		}
	})

	t.Run("armed by many at once: one context", func(t *testing.T) {
		ctx, cancel := Within(parent, time.Hour)
		var wg sync.WaitGroup
		chans := make([]<-chan struct{}, 16)
		for i := range chans {
			wg.Go(func() { chans[i] = ctx.Done() })
		}
		wg.Wait()
		for _, c := range chans {
			if c != chans[0] {
				t.Fatal("Done answered different channels")
			}
		}
		cancel()
		<-chans[0]
	})
}

// TestNoTimerUnlessWaitedOn: a bounded piece of work that only reads the
// deadline costs two small allocations (the context and its cancel), where
// context.WithTimeout costs a timer and its links.
func TestNoTimerUnlessWaitedOn(t *testing.T) {
	parent, stop := context.WithCancel(context.Background())
	defer stop()
	lazyAllocs := testing.AllocsPerRun(100, func() {
		ctx, cancel := Within(parent, time.Minute)
		_, _ = ctx.Deadline()
		cancel()
	})
	eagerAllocs := testing.AllocsPerRun(100, func() {
		ctx, cancel := context.WithTimeout(parent, time.Minute)
		_, _ = ctx.Deadline()
		cancel()
	})
	if lazyAllocs > 2 || lazyAllocs >= eagerAllocs {
		t.Fatalf("Within: %v allocations, context.WithTimeout: %v", lazyAllocs, eagerAllocs)
	}
}

package vaultstore

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// A flush's writes and a page's reads are each made once, never more than
// width at a time (what they ask of Vault at once), and their errors all
// reach the caller.
func TestEachAtOnceCallsEachOnceWithinWidth(t *testing.T) {
	for _, c := range []struct{ n, width int }{{0, 8}, {1, 8}, {5, 8}, {100, 8}, {100, 1}, {37, 16}} {
		t.Run(fmt.Sprint(c.n, "/", c.width), func(t *testing.T) {
			calls := make([]atomic.Int32, c.n)
			var now, most atomic.Int32
			err := eachAtOnce(c.n, c.width, func(i int) error {
				in := now.Add(1)
				for m := most.Load(); in > m && !most.CompareAndSwap(m, in); m = most.Load() {
				}
				time.Sleep(100 * time.Microsecond)
				now.Add(-1)
				calls[i].Add(1)
				if i%10 == 3 {
					return fmt.Errorf("call %d failed", i)
				}
				return nil
			})
			for i := range calls {
				if got := calls[i].Load(); got != 1 {
					t.Fatalf("f(%d) called %d times", i, got)
				}
			}
			if int(most.Load()) > c.width {
				t.Fatalf("%d calls at once, width %d", most.Load(), c.width)
			}
			if c.n >= 2*c.width && int(most.Load()) < 2 && c.width > 1 {
				t.Fatalf("never more than one call at once (width %d)", c.width)
			}
			for i := 3; i < c.n; i += 10 {
				if want := fmt.Sprintf("call %d failed", i); err == nil || !strings.Contains(err.Error()+"\n", want+"\n") {
					t.Fatalf("error %v lacks %q", err, want)
				}
			}
			if c.n <= 3 && err != nil {
				t.Fatalf("error %v, none failed", err)
			}
		})
	}
}

// A background flush writes writesAtOnce records at a time while the
// replica serves, and hurries to writesAtStop once it stops.
func TestEachGentlyHurriesWhenTheReplicaStops(t *testing.T) {
	hurry := make(chan struct{})
	var now, before, after atomic.Int32
	var stopped atomic.Bool
	var calls atomic.Int32
	err := eachGently(400, hurry, func(i int) error {
		in := now.Add(1)
		most := &before
		if stopped.Load() {
			most = &after
		}
		for m := most.Load(); in > m && !most.CompareAndSwap(m, in); m = most.Load() {
		}
		time.Sleep(time.Millisecond)
		now.Add(-1)
		if calls.Add(1) == 100 {
			stopped.Store(true)
			close(hurry)
		}
		return nil
	})
	if err != nil || calls.Load() != 400 {
		t.Fatalf("%d calls, %v", calls.Load(), err)
	}
	if b := before.Load(); b > writesAtOnce || b < 1 {
		t.Errorf("%d at once while serving, want at most %d", b, writesAtOnce)
	}
	if a := after.Load(); a > writesAtStop || a <= writesAtOnce {
		t.Errorf("%d at once after the stop, want more than %d, at most %d", a, writesAtOnce, writesAtStop)
	}
}

// A flush hurries when the replica stops or when it has run too long,
// whichever comes first.
func TestHurryAfterStopOrTime(t *testing.T) {
	closed := func(c <-chan struct{}, within time.Duration) bool {
		select {
		case <-c:
			return true
		case <-time.After(within):
			return false
		}
	}
	b := newBackground()
	hurry, cancel := b.hurryAfter(time.Hour)
	defer cancel()
	if closed(hurry, 20*time.Millisecond) {
		t.Fatal("hurried before the stop or the time")
	}
	b.stop()
	if !closed(hurry, time.Second) {
		t.Fatal("did not hurry when the replica stopped")
	}

	b = newBackground()
	hurry, cancel = b.hurryAfter(10 * time.Millisecond)
	defer cancel()
	if !closed(hurry, time.Second) {
		t.Fatal("did not hurry after its time")
	}
}

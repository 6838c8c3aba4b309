package ratelimit_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/credgate/credgate/httpapi/ratelimit"
	"github.com/credgate/credgate/httpapi/ratelimit/redistest"
)

// flaky is a store that fails while down, and counts the questions it got.
type flaky struct {
	down  atomic.Bool
	asked atomic.Int64
}

func (f *flaky) Allow(context.Context, string, int) (ratelimit.Decision, error) {
	f.asked.Add(1)
	if f.down.Load() {
		return ratelimit.Decision{}, errors.New("connection refused")
	}
	return ratelimit.Decision{Allowed: true, Limit: 5, Remaining: 4}, nil
}

// TestBreakerStopsAskingAFailingStoreAndRecovers: three failures in a row
// open the breaker; then no question reaches the store (an answer at once,
// ErrOpen) until the pause has passed, when one does; a store back up
// closes it. Each change of state is told once.
func TestBreakerStopsAskingAFailingStoreAndRecovers(t *testing.T) {
	st := &flaky{}
	var mu sync.Mutex
	var changes []string
	b := ratelimit.NewBreaker(st, ratelimit.BreakerOptions{Pause: 300 * time.Millisecond, OnChange: func(from, to string) {
		mu.Lock()
		changes = append(changes, from+">"+to)
		mu.Unlock()
	}})
	ctx := context.Background()
	if _, err := b.Allow(ctx, "k", 5); err != nil {
		t.Fatal(err)
	}
	st.down.Store(true)
	for i := range 100 {
		_, err := b.Allow(ctx, "k", 5)
		if err == nil || (i >= 3 && !errors.Is(err, ratelimit.ErrOpen)) {
			t.Fatalf("question %d: %v", i+1, err)
		}
	}
	if n := st.asked.Load(); n != 4 {
		t.Fatalf("the store was asked %d times; want 1 + 3 failures", n)
	}
	time.Sleep(350 * time.Millisecond)
	if _, err := b.Allow(ctx, "k", 5); err == nil || errors.Is(err, ratelimit.ErrOpen) {
		t.Fatalf("after the pause, still down: %v; want the store's own error", err)
	}
	st.down.Store(false)
	time.Sleep(350 * time.Millisecond)
	if _, err := b.Allow(ctx, "k", 5); err != nil {
		t.Fatalf("the store is back: %v", err)
	}
	if b.State() != "closed" {
		t.Fatalf("state %s", b.State())
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"closed>open", "open>half-open", "half-open>open", "open>half-open", "half-open>closed"}
	if !slices.Equal(changes, want) {
		t.Fatalf("changes %v; want %v", changes, want)
	}
}

// BenchmarkRedisTrouble measures what a rate-limit question costs a request
// with Redis healthy, killed (its port closed) and hung (it accepts and
// never answers), through the breaker and, for comparison, without it (as
// credgate asked before): the p50 and p99 of a question. The client is
// configured as credgate serve configures it. The note quotes it.
func BenchmarkRedisTrouble(b *testing.B) {
	addr := redistest.Start(b)
	hung := hangingListener(b)
	for _, c := range []struct {
		name, addr string
		breaker    bool
	}{{"healthy", addr, true}, {"killed", "127.0.0.1:1", true}, {"hung", hung, true}, {"killed-without-breaker", "127.0.0.1:1", false}, {"hung-without-breaker", hung, false}} {
		b.Run(c.name, func(b *testing.B) {
			cl := redis.NewClient(&redis.Options{Addr: c.addr, DialTimeout: time.Second, ReadTimeout: 250 * time.Millisecond, WriteTimeout: 250 * time.Millisecond})
			defer cl.Close()
			var br ratelimit.Store = ratelimit.NewRedis(cl)
			if c.breaker {
				br = ratelimit.NewBreaker(br, ratelimit.BreakerOptions{})
			}
			for range 5 { // what opens the breaker, before the clock
				_, _ = br.Allow(context.Background(), "k", 1000000)
			}
			took := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				_, _ = br.Allow(context.Background(), "k", 1000000)
				took = append(took, time.Since(start))
			}
			b.StopTimer()
			sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
			b.ReportMetric(float64(took[len(took)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(took[len(took)*99/100].Microseconds()), "p99-µs")
		})
	}
}

// hangingListener accepts connections and never answers; it stops when tb
// ends.
func hangingListener(tb testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	tb.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	})
	return ln.Addr().String()
}

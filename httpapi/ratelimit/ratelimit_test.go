package ratelimit_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/credgate/credgate/httpapi/ratelimit"
	"github.com/credgate/credgate/httpapi/ratelimit/redistest"
)

type store interface {
	Allow(ctx context.Context, key string, limit int) (ratelimit.Decision, error)
}

// conformance is what both stores must do.
func conformance(t *testing.T, st store, key string) {
	ctx := context.Background()
	const limit = 6 // one request back every 10 s
	for i := range limit {
		d, err := st.Allow(ctx, key, limit)
		if err != nil {
			t.Fatal(err)
		}
		if !d.Allowed || d.Limit != limit || d.Remaining != limit-1-i {
			t.Fatalf("request %d: %+v; want allowed with %d remaining", i+1, d, limit-1-i)
		}
	}
	d, err := st.Allow(ctx, key, limit)
	if err != nil {
		t.Fatal(err)
	}
	if d.Allowed || d.Remaining != 0 || d.RetryAfter < 8*time.Second || d.RetryAfter > 10*time.Second || d.ResetAfter < 50*time.Second {
		t.Fatalf("over the limit: %+v; want refused, retry in ~10s, reset in ~60s", d)
	}
	if d2, _ := st.Allow(ctx, key+"-other", limit); !d2.Allowed {
		t.Fatal("another key was limited too")
	}
}

func TestMemory(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	st := ratelimit.NewMemory(10, clock)
	conformance(t, st, "tenant-a")
	now = now.Add(10 * time.Second)
	if d, _ := st.Allow(context.Background(), "tenant-a", 6); !d.Allowed {
		t.Fatalf("after Retry-After: %+v; want allowed", d)
	}
}

func TestRedis(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: redistest.Start(t)})
	t.Cleanup(func() { c.Close() })
	conformance(t, ratelimit.NewRedis(c), fmt.Sprintf("tenant-%d", time.Now().UnixNano()))
}

func TestRedisDownIsAnError(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { c.Close() })
	if _, err := ratelimit.NewRedis(c).Allow(context.Background(), "k", 5); err == nil {
		t.Fatal("no error from an unreachable Redis")
	}
}

// A Redis that accepts and never answers costs a request at most the
// store's own bound, whatever the client's timeouts are.
func TestRedisThatHangsIsAnErrorSoon(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() { // hold every connection open, answer nothing
		defer close(done)
		var held []net.Conn
		for {
			conn, err := ln.Accept()
			if err != nil {
				break
			}
			held = append(held, conn)
		}
		for _, conn := range held {
			conn.Close()
		}
	}()
	c := redis.NewClient(&redis.Options{Addr: ln.Addr().String(), ReadTimeout: -1, WriteTimeout: -1, ContextTimeoutEnabled: true, MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second) // so that a failure fails rather than hangs
	defer cancel()
	start := time.Now()
	_, err = ratelimit.NewRedis(c).Allow(ctx, "k", 5)
	if err == nil {
		t.Fatal("no error from a Redis that never answers")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("a Redis that never answers held the request %v", took)
	}
}

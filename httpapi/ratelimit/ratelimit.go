// Package ratelimit holds the stores behind credgate's per-tenant rate
// limit: Memory for one replica, Redis for a limit shared by all replicas.
// Both are the same algorithm (GCRA, a token bucket of `limit` requests
// refilled evenly over a minute), so a tenant sees the same headers from
// either.
package ratelimit

import (
	"context"
	"math"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"
)

// Decision is the outcome for one request.
type Decision struct {
	Allowed    bool
	Limit      int
	Remaining  int
	RetryAfter time.Duration // when not allowed: until one request is
	ResetAfter time.Duration // until the bucket is full again
}

// Memory limits in this process. It is safe for concurrent use and keeps
// at most size tenants (the least recently seen are forgotten, which only
// forgives them).
type Memory struct {
	mu    sync.Mutex
	cache *lru.Cache[string, *bucket]
	now   func() time.Time
}

type bucket struct {
	lim   *rate.Limiter
	limit int
}

// NewMemory returns a Memory store for up to size tenants.
func NewMemory(size int, now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	c, _ := lru.New[string, *bucket](max(size, 1))
	return &Memory{cache: c, now: now}
}

// Allow takes one request of key's budget of limit per minute.
func (m *Memory) Allow(_ context.Context, key string, limit int) (Decision, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	b, ok := m.cache.Get(key)
	if !ok || b.limit != limit {
		b = &bucket{lim: rate.NewLimiter(rate.Limit(float64(limit)/60), limit), limit: limit}
		m.cache.Add(key, b)
	}
	d := Decision{Limit: limit}
	r := b.lim.ReserveN(now, 1)
	if delay := r.DelayFrom(now); delay > 0 {
		r.CancelAt(now)
		d.RetryAfter = delay
	} else {
		d.Allowed = true
	}
	tokens := b.lim.TokensAt(now)
	d.Remaining = max(int(math.Floor(tokens)), 0)
	perToken := time.Minute / time.Duration(limit)
	d.ResetAfter = time.Duration((float64(limit) - tokens) * float64(perToken))
	return d, nil
}

// Redis limits across every replica that shares the Redis server.
type Redis struct {
	limiter *redis_rate.Limiter
}

// NewRedis returns a Redis store on client.
func NewRedis(client redis.UniversalClient) *Redis {
	return &Redis{limiter: redis_rate.NewLimiter(client)}
}

// askTimeout bounds one question to Redis: a slow Redis must not make
// every request slow.
const askTimeout = 250 * time.Millisecond

// Allow takes one request of key's budget of limit per minute. An error
// means Redis could not be asked in time; the caller decides what that
// means.
func (r *Redis) Allow(ctx context.Context, key string, limit int) (Decision, error) {
	ctx, cancel := context.WithTimeout(ctx, askTimeout)
	defer cancel()
	res, err := r.limiter.Allow(ctx, key, redis_rate.PerMinute(limit))
	if err != nil {
		return Decision{}, err
	}
	d := Decision{Allowed: res.Allowed > 0, Limit: limit, Remaining: res.Remaining, ResetAfter: res.ResetAfter}
	if !d.Allowed {
		d.RetryAfter = res.RetryAfter
	}
	return d, nil
}

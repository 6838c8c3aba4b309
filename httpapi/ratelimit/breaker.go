package ratelimit

import (
	"context"
	"errors"
	"time"

	"github.com/sony/gobreaker/v2"
)

// Store is a rate-limit store: Memory, Redis, or a Breaker around one.
type Store interface {
	Allow(ctx context.Context, key string, limit int) (Decision, error)
}

// ErrOpen is a Breaker's answer while its store is taken to be down: no
// question is asked, so a down or hung Redis costs a request nothing.
var ErrOpen = errors.New("the rate-limit store is failing; not asked for a while")

// Breaker asks a store through a circuit breaker (sony/gobreaker): after
// consecutive failures it stops asking for a pause, then lets one question
// through to see whether the store is back. What the caller does without an
// answer (let the request through, or refuse it) is the caller's choice.
type Breaker struct {
	store Store
	cb    *gobreaker.CircuitBreaker[Decision]
}

// BreakerOptions configures a Breaker.
type BreakerOptions struct {
	// Failures in a row that open it; default 3.
	Failures uint32
	// Pause is how long it stays open before one question is let through;
	// default 5 s.
	Pause time.Duration
	// OnChange, when set, is told of every change of state ("closed",
	// "open", "half-open"): once per change, never per request.
	OnChange func(from, to string)
}

// NewBreaker returns store behind a circuit breaker.
func NewBreaker(store Store, o BreakerOptions) *Breaker {
	if o.Failures == 0 {
		o.Failures = 3
	}
	if o.Pause <= 0 {
		o.Pause = 5 * time.Second
	}
	st := gobreaker.Settings{
		Name:        "rate-limit store",
		MaxRequests: 1,
		Timeout:     o.Pause,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= o.Failures },
	}
	if o.OnChange != nil {
		st.OnStateChange = func(_ string, from, to gobreaker.State) { o.OnChange(from.String(), to.String()) }
	}
	return &Breaker{store: store, cb: gobreaker.NewCircuitBreaker[Decision](st)}
}

// Allow asks the store unless the breaker is open (ErrOpen, at once).
func (b *Breaker) Allow(ctx context.Context, key string, limit int) (Decision, error) {
	d, err := b.cb.Execute(func() (Decision, error) { return b.store.Allow(ctx, key, limit) })
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		return Decision{}, ErrOpen
	}
	return d, err
}

// State is the breaker's state: closed (asking), open (not asking) or
// half-open (one question on its way).
func (b *Breaker) State() string { return b.cb.State().String() }

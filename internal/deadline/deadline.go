// Package deadline is context.WithTimeout whose timer is armed only when
// someone waits on it.
//
// Every request and every Vault call is bounded by a deadline, but on the
// hot path nothing waits on its Done channel: the Vault client reads
// Deadline and sets it on the connection. context.WithTimeout arms a
// runtime timer and links the child into its parent on every call, two per
// credential read, about 3 % of credgate's CPU a read. A context from
// Within reports the same deadline, and becomes that context.WithDeadline
// the first time Done or Err is asked: with the same absolute deadline, so
// a context armed late expires when the eager one would have.
package deadline

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Within is context.WithTimeout(parent, d), armed on first use of Done or
// Err; a parent whose deadline is sooner keeps it. cancel must be called,
// as context.WithTimeout's, when the work is done.
func Within(parent context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	at := time.Now().Add(d)
	if cur, ok := parent.Deadline(); ok && !cur.After(at) {
		return context.WithCancel(parent) // as context.WithDeadline does
	}
	l := &lazy{Context: parent, at: at}
	return l, l.cancel
}

// lazy is the parent with the deadline at, until armed: then the real
// context.WithDeadline answers Done, Err and Value.
type lazy struct {
	context.Context // the parent
	at              time.Time

	real     atomic.Pointer[armed] // set once, under mu
	mu       sync.Mutex
	canceled bool // cancel came before any use
}

type armed struct {
	context.Context
	stop context.CancelFunc
}

func (l *lazy) Deadline() (time.Time, bool) { return l.at, true }

func (l *lazy) Done() <-chan struct{} { return l.arm().Done() }

func (l *lazy) Err() error { return l.arm().Err() }

// Value is the parent's until armed, the real context's after (the same
// values, and the real one's own for the standard library: context.Cause
// asked before Done or Err reports the parent's cause).
func (l *lazy) Value(key any) any {
	if a := l.real.Load(); a != nil {
		return a.Value(key)
	}
	return l.Context.Value(key)
}

// arm makes the real context on first use.
func (l *lazy) arm() *armed {
	if a := l.real.Load(); a != nil {
		return a
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if a := l.real.Load(); a != nil {
		return a
	}
	ctx, stop := context.WithDeadline(l.Context, l.at)
	if l.canceled {
		stop()
	}
	a := &armed{ctx, stop}
	l.real.Store(a)
	return a
}

func (l *lazy) cancel() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if a := l.real.Load(); a != nil {
		a.stop()
		return
	}
	l.canceled = true
}

func (l *lazy) String() string { return "deadline.Within" }

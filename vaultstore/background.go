package vaultstore

import (
	"context"
	"sync"
	"time"
)

// background is the life of a writer goroutine that writes, off the
// request path, what requests gathered (lastAccessedAt, the ledgers): it
// starts on first use and, at Close, writes once more and stops. Its
// fields are guarded by the owner's mutex.
type background struct {
	running bool // the goroutine was started
	closed  bool
	// stopped ends when the goroutine is told to write what is left and
	// stop (stop).
	stopped context.Context
	stop    context.CancelFunc
	done    chan struct{} // closed by the goroutine when it returns
}

func newBackground() background {
	stopped, stop := context.WithCancel(context.Background())
	return background{stopped: stopped, stop: stop, done: make(chan struct{})}
}

// start starts write unless it runs already; mu is held.
func (b *background) start(write func()) {
	if !b.running {
		b.running = true
		go write()
	}
}

// hurryAfter returns a channel for eachGently that is closed when the
// goroutine is told to stop or after d, whichever comes first; cancel
// frees its timer.
func (b *background) hurryAfter(d time.Duration) (hurry <-chan struct{}, cancel context.CancelFunc) {
	ctx, cancel := context.WithTimeout(b.stopped, d)
	return ctx.Done(), cancel
}

// shutdown tells the goroutine to write what is left and stop, and waits
// for it until ctx ends; mu is the owner's (not held).
func (b *background) shutdown(ctx context.Context, mu *sync.Mutex) error {
	mu.Lock()
	if b.closed {
		mu.Unlock()
		return nil
	}
	b.closed = true
	running := b.running
	mu.Unlock()
	if !running {
		return nil // nothing was ever gathered
	}
	b.stop()
	select {
	case <-b.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

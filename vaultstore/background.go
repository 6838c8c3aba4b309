package vaultstore

import (
	"context"
	"sync"
)

// background is the life of a writer goroutine that writes, off the
// request path, what requests gathered (lastAccessedAt, the ledgers): it
// starts on first use and, at Close, writes once more and stops. Its
// fields are guarded by the owner's mutex.
type background struct {
	running bool // the goroutine was started
	closed  bool
	stop    chan struct{}
	done    chan struct{} // closed by the goroutine when it returns
}

func newBackground() background {
	return background{stop: make(chan struct{}), done: make(chan struct{})}
}

// start starts write unless it runs already; mu is held.
func (b *background) start(write func()) {
	if !b.running {
		b.running = true
		go write()
	}
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
	close(b.stop)
	select {
	case <-b.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

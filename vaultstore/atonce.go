package vaultstore

import (
	"errors"
	"sync"
	"sync/atomic"
)

// How many Vault calls one piece of work makes at once: the reads of an
// inventory page or note, and the writes of a background flush (the
// ledgers and the principals' reach, lastAccessedAt and its notes), each
// record its own. One after the other, 10,000 callers' reach took 23 s of
// a ledger flush, longer than a shutdown's grace.
const (
	readsAtOnce  = 16
	writesAtOnce = 8
)

// eachAtOnce calls f(0) … f(n-1), at most width at a time, and joins their
// errors.
func eachAtOnce(n, width int, f func(i int) error) error {
	errs := make([]error, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(width, n) {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				errs[i] = f(i)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

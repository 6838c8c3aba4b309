package vaultstore

import (
	"errors"
	"sync"
	"sync/atomic"
)

// How many Vault calls one piece of work makes at once: the reads of an
// inventory page or note (a request waits for them); the writes of a
// background flush (the ledgers and the principals' reach, lastAccessedAt
// and its notes), each record its own, while the replica serves; and those
// of the last flush when it stops, within the shutdown's grace.
//
// A flush shares Vault with every tenant's requests. When each of 10,000
// principals had its own reach record, a minute of their reads was 22,001
// Vault calls (BenchmarkReadsDuringFlush, a 2-core dev Vault): one at a
// time, 35 s, and one caller's reads meanwhile p50 1.5 ms, p99 7.4 (1.4
// and 5 with nothing else running); two, 20-24 s and 1.8-2.0 / 7.6-10.8
// ms; eight, 15-20 s and 4.8-5.7 / 17-27 ms. The reach now shares 64
// records a tenant: the same minute is 2,130 calls, 3.5-3.7 s at two. The
// last flush goes eight at a time, since a stopping replica has 20 s.
//
// A flush under way when the replica stops goes on at the last flush's
// width (eachGently), and so does a ledger flush still running after half
// its interval (background.hurryAfter): it is behind, and the next
// interval's reads wait for it. On a one-node Raft Vault, whose writes
// reach the disk, 2,000 ledgers took 6.2 s at two and 4.0 s at eight
// (BenchmarkLedgerFlushOnRaft).
const (
	readsAtOnce  = 16
	writesAtOnce = 2
	writesAtStop = 8
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

// eachGently is eachAtOnce for a background flush: writesAtOnce calls at a
// time until hurry is closed (the replica stops), then writesAtStop.
func eachGently(n int, hurry <-chan struct{}, f func(i int) error) error {
	gate := make(chan struct{}, writesAtOnce)
	return eachAtOnce(n, writesAtStop, func(i int) error {
		select {
		case gate <- struct{}{}:
			defer func() { <-gate }()
		case <-hurry:
		}
		return f(i)
	})
}

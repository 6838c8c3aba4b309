package vaultstore_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credgate/credgate/vaultstore"
	"github.com/credgate/credgate/vaultstore/vaulttest"
)

// BenchmarkLedgerFlushOnRaft is one flush of the reads of 2,000
// credentials into their ledgers on a one-node Raft Vault, whose writes
// reach the disk as a production Vault's do: two ledgers at a time, as a
// flush that keeps up goes, and hurried (writesAtStop), as one still
// running after half its interval goes. It reports how long the flush
// took and its Vault calls a second.
func BenchmarkLedgerFlushOnRaft(b *testing.B) {
	cluster := vaulttest.StartCluster(b, 1)
	for _, c := range []struct {
		name     string
		interval time.Duration
	}{{"two-at-once", time.Hour}, {"hurried", 2 * time.Millisecond}} {
		b.Run(c.name, func(b *testing.B) {
			var calls atomic.Int64
			e := envOn(b, cluster.Client(0), cluster.Client(0), func(o *vaultstore.Options) {
				o.LedgerInterval = c.interval
				o.Observe = func(string, time.Duration, error) { calls.Add(1) }
			})
			b.Cleanup(func() { _ = e.store.Close(context.Background()) })
			ctx := as(principal("acme", "app", "credential_reader"))
			const ledgers = 2000
			var took time.Duration
			calls0 := int64(0)
			for b.Loop() {
				for i := range ledgers {
					e.store.RecordRead(ctx, "svc", fmt.Sprint("cred", i), 1, "")
				}
				calls0 -= calls.Load()
				start := time.Now()
				e.store.FlushLedgers()
				took += time.Since(start)
				calls0 += calls.Load()
			}
			b.ReportMetric(took.Seconds()/float64(b.N), "s/flush")
			b.ReportMetric(float64(calls0)/took.Seconds(), "vault-calls/s")
		})
	}
}

package vaultstore

import (
	"context"
	"encoding/json"
	"errors"
	"hash/fnv"
	"maps"
	"strconv"
	"sync"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/policy"
)

// The monitor's summary of each tenant (credgate.SummaryHead and its
// shards, summary.go in the root package), kept with credgate's own token
// at system/summary/<tenant>/head and .../<i>. Every write of a
// credential (its data, its rotation status, its broken connection) marks
// it in its tenant's head before it writes: two Vault calls (a read and a
// check-and-set write), through update like every record. The monitor
// forgets a mark only once it is older than credgate.MarkGrace and it has
// described the credential since, so a write that lands is always looked
// at; one cut after its data is repaired by the monitor's look
// (DescribeLive). The shards are the monitor's alone.

func summaryPath(tenant, name string) string {
	return policy.SystemPath("summary/" + tenant + "/" + name)
}

// summaryHead is tenant's summary head; a tenant without one reads as the
// zero head (no shards: the monitor rebuilds it).
func (s *Store) summaryHead(tenant string) record[credgate.SummaryHead] {
	r := jsonRecord[credgate.SummaryHead](ownKV{s}, "summary_head", summaryPath(tenant, "head"))
	r.create = true
	return r
}

// summaryShard is shard i of tenant's summary; a missing one is empty.
func (s *Store) summaryShard(tenant string, i int) record[credgate.SummaryShard] {
	r := jsonRecord[credgate.SummaryShard](ownKV{s}, "summary_shard", summaryPath(tenant, strconv.Itoa(i)))
	r.create = true
	return r
}

// from is r whose first read answers cur, read at version, without a
// Vault call: a writer that has just read a record changes it through
// update without reading it again, and reads it only when another writer
// was first.
func from[T any](r record[T], cur T, version int) record[T] {
	read, first := r.read, true
	r.read = func(ctx context.Context) (T, int, error) {
		if first { // update changes a clone of what read answers: cur stays as it is
			first = false
			return cur, version, nil
		}
		return read(ctx)
	}
	return r
}

// markSummary marks the credential key names as about to be written in
// tenant's summary head. The writers of a tenant on this replica that
// mark at once share one write of the head (a group commit: the first
// writes what the others added while it waited its turn), so that a
// tenant's concurrent writers do not exhaust each other's check-and-set
// retries. Errors: the head's write's (then the credential must not be
// written: the monitor would not know of it).
func (s *Store) markSummary(ctx context.Context, tenant, key string) error {
	return s.marks.mark(ctx, tenant, key, credgate.NewMarkStamp(s.opts.Now()), func(ctx context.Context, marks map[string]string) error {
		_, _, err := update(ctx, s.summaryHead(tenant), 0, func(h *credgate.SummaryHead) error {
			for k, stamp := range marks {
				h.Mark(k, stamp)
			}
			return nil
		})
		return translate(err, credgate.ENotFound)
	})
}

// markBook gathers the marks of a replica's writers into group commits:
// by tenant for the summary's head, by service for its inventory's delta
// (inventory_records.go).
type markBook struct {
	mu      sync.Mutex
	pending map[string]*markBatch // by record: the batch still open
	turns   [64]sync.Mutex        // by record's hash: one write at a time
}

// markBatch is the marks one head write makes, and its outcome.
type markBatch struct {
	marks map[string]string
	done  chan struct{}
	err   error
}

// mark adds key's mark to tenant's open batch, and waits for the batch to
// be written with write; the writer that opened it writes it on its turn.
func (b *markBook) mark(ctx context.Context, tenant, key, stamp string, write func(context.Context, map[string]string) error) error {
	return b.markAll(ctx, tenant, map[string]string{key: stamp}, write)
}

// markAll is mark of every key of marks, in the batch of record name.
func (b *markBook) markAll(ctx context.Context, name string, marks map[string]string, write func(context.Context, map[string]string) error) error {
	b.mu.Lock()
	if b.pending == nil {
		b.pending = map[string]*markBatch{}
	}
	batch, joined := b.pending[name]
	if !joined {
		batch = &markBatch{marks: map[string]string{}, done: make(chan struct{})}
		b.pending[name] = batch
	}
	maps.Copy(batch.marks, marks)
	b.mu.Unlock()
	if joined {
		select {
		case <-batch.done:
			return batch.err
		case <-ctx.Done():
			return unavailable(ctx.Err())
		}
	}
	turn := &b.turns[fnv32(name)%uint32(len(b.turns))]
	turn.Lock()
	b.mu.Lock()
	delete(b.pending, name) // closed: later marks open the next batch
	b.mu.Unlock()
	// The batch is others' too: the writer that writes it does not cancel
	// it when it gives up, but keeps to its deadline.
	wctx, cancel := context.WithoutCancel(ctx), context.CancelFunc(func() {})
	if d, ok := ctx.Deadline(); ok {
		wctx, cancel = context.WithDeadline(wctx, d)
	}
	batch.err = write(wctx, batch.marks)
	cancel()
	turn.Unlock()
	close(batch.done)
	return batch.err
}

func fnv32(s string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(s))
	return h.Sum32()
}

// rebuildSummary asks the monitor to read every credential of tenant again
// (a service deleted with its credentials); a failure as markSummary's.
func (s *Store) rebuildSummary(ctx context.Context, tenant string) {
	_, _, _ = update(context.WithoutCancel(ctx), s.summaryHead(tenant), 0, func(h *credgate.SummaryHead) error {
		if h.Rebuild {
			return errUnchanged
		}
		h.Dirty, h.Rebuild = nil, true
		return nil
	})
}

// SummaryHead reads tenant's summary head and its version (0: none yet).
// Errors: BACKEND_UNAVAILABLE, INTERNAL_ERROR.
func (s *Store) SummaryHead(ctx context.Context, tenant string) (credgate.SummaryHead, int, error) {
	h, v, err := s.summaryHead(tenant).read(ctx)
	if errors.Is(err, errNotFound) {
		return credgate.SummaryHead{}, 0, nil
	}
	return h, v, translate(err, credgate.ENotFound)
}

// UpdateSummaryHead changes tenant's summary head, cur as read at version,
// with check-and-set: when a writer marked a credential meanwhile, change
// is made again on the head as it is now.
func (s *Store) UpdateSummaryHead(ctx context.Context, tenant string, cur credgate.SummaryHead, version int, change func(*credgate.SummaryHead) error) (credgate.SummaryHead, int, error) {
	h, v, err := update(ctx, from(s.summaryHead(tenant), cur, version), 0, change)
	return h, v, translate(err, credgate.ENotFound)
}

// SummaryShard reads shard i of tenant's summary and its version (0: none).
func (s *Store) SummaryShard(ctx context.Context, tenant string, i int) (credgate.SummaryShard, int, error) {
	sh, v, err := s.summaryShard(tenant, i).read(ctx)
	if errors.Is(err, errNotFound) {
		return credgate.SummaryShard{}, 0, nil
	}
	return sh, v, translate(err, credgate.ENotFound)
}

// UpdateSummaryShard changes shard i of tenant's summary, cur as read at
// version, with check-and-set.
func (s *Store) UpdateSummaryShard(ctx context.Context, tenant string, i int, cur credgate.SummaryShard, version int, change func(*credgate.SummaryShard) error) (credgate.SummaryShard, int, error) {
	sh, v, err := update(ctx, from(s.summaryShard(tenant, i), cur, version), 0, change)
	return sh, v, translate(err, credgate.ENotFound)
}

// ScheduleTag names what a tenant's credentials' derived facts depend on
// besides their records (its default rotation policy): a summary built
// under another tag is rebuilt.
func (s *Store) ScheduleTag(tenant string) string {
	b, _ := json.Marshal(s.rotationDefault(tenant))
	return string(b)
}

// DescribeLive describes, without values, credential cred of service in
// the caller's tenant as the inventory does (one metadata read and the
// service's: a credential of a deleted service, or of an earlier service
// of its id, is not found), after finishing the projection of a write cut
// after its data and noting it in its service's inventory (a
// write cut before its note); settled is false while a write of it is
// half done (its projection describes an older version than its newest,
// or its note failed).
// Errors: CREDENTIAL_NOT_FOUND (no live credential of the live service),
// BACKEND_UNAVAILABLE, INTERNAL_ERROR.
func (s *Store) DescribeLive(ctx context.Context, service, cred string) (c *credgate.Credential, settled bool, err error) {
	k, err := s.session(ctx)
	if err != nil {
		return nil, false, err
	}
	var rec *serviceRecord
	var serr error
	var wg sync.WaitGroup
	wg.Go(func() { rec, serr = k.readService(ctx, service) })
	info, err := k.describeCred(ctx, service, cred)
	wg.Wait()
	if err == nil {
		err = serr
	}
	if err == nil && info != nil && info.Behind {
		// A write cut after its data: finish its projection, as its next
		// writer would, and describe what it wrote.
		d, sec, err := k.readCredData(ctx, service, cred, 0)
		if err == nil && d.Info.Deleted {
			return nil, true, translate(errNotFound, credgate.ECredentialNotFound) // its DELETE's mark
		}
		if err == nil {
			err = k.repairProjection(ctx, service, cred, d, sec)
		}
		if err == nil {
			info, err = k.describeCred(ctx, service, cred)
		}
		if err != nil {
			return nil, false, translate(err, credgate.ECredentialNotFound)
		}
	}
	if err != nil {
		return nil, true, translate(err, credgate.ECredentialNotFound)
	}
	// A write cut before its note in the inventory is noted here.
	if err := k.note(ctx, service, cred, ""); err != nil {
		return nil, false, translate(err, credgate.ECredentialNotFound)
	}
	if info == nil || !info.belongsTo(rec) {
		return nil, true, translate(errNotFound, credgate.ECredentialNotFound)
	}
	out := info.Credential
	out.ReadAt = s.opts.Now()
	k.derive(&out)
	return &out, !out.Behind, nil
}

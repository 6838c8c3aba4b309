package monitor

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/credgate/credgate"
)

// SummaryStore is what the monitor needs of a store that keeps a summary of
// each tenant's credentials (vaultstore.Store; credgate.SummaryHead): with
// it a pass reads each tenant's summary head, and only the shards and the
// credentials that are due or were written since the last pass; without
// it, every credential.
type SummaryStore interface {
	SummaryHead(ctx context.Context, tenant string) (credgate.SummaryHead, int, error)
	UpdateSummaryHead(ctx context.Context, tenant string, cur credgate.SummaryHead, version int, change func(*credgate.SummaryHead) error) (credgate.SummaryHead, int, error)
	SummaryShard(ctx context.Context, tenant string, i int) (credgate.SummaryShard, int, error)
	UpdateSummaryShard(ctx context.Context, tenant string, i int, cur credgate.SummaryShard, version int, change func(*credgate.SummaryShard) error) (credgate.SummaryShard, int, error)
	// DescribeLive describes a live credential of a live service (the
	// caller's tenant's); settled is false while a write of it is half
	// done. Errors: CREDENTIAL_NOT_FOUND, the store's.
	DescribeLive(ctx context.Context, service, cred string) (c *credgate.Credential, settled bool, err error)
	// ScheduleTag names what the store derives a tenant's credentials'
	// facts under (its rotation defaults).
	ScheduleTag(tenant string) string
}

// schedule is tenant's monitoring configuration.
func (m *Monitor) schedule(tenant string) credgate.Schedule {
	return credgate.Schedule{Thresholds: m.o.Thresholds(tenant), Overdue: m.overdue(tenant)}
}

// scanSummary is scanTenant through tenant's summary: it rebuilds the
// summary from every credential when it is missing, asked for, made under
// another schedule or older than Options.Reconcile; else it catches up with
// what is due and what was written. It reports the tenant's credentials.
func (m *Monitor) scanSummary(ctx context.Context, ss SummaryStore, tenant string, p *Pass) (int, error) {
	head, hv, err := ss.SummaryHead(ctx, tenant)
	if err != nil {
		return 0, err
	}
	now := m.o.Now()
	m.mu.Lock()
	housekeep := head.GrantsDueAt(now) || now.Sub(m.housekept[tenant]) >= m.o.Housekeeping
	m.mu.Unlock()
	if housekeep {
		m.housekeep(ctx, tenant) // its grants' part changes the head: the writes below read it again
	}
	sched := m.schedule(tenant)
	tag := fmt.Sprintf("%v|%s|%s", sched.Thresholds, sched.Overdue, ss.ScheduleTag(tenant))
	if head.N == 0 || head.Rebuild || head.Schedule != tag || now.Sub(head.BuiltAt) >= m.o.Reconcile {
		head, err = m.rebuild(ctx, ss, tenant, head, hv, sched, tag)
	} else {
		head, err = m.catchUp(ctx, ss, tenant, head, hv, sched)
	}
	counts, n := head.Counts()
	if err != nil {
		return n, err
	}
	counts.Overdue = sched.Overdue
	m.mu.Lock()
	p.Inventory[tenant] = counts
	m.mu.Unlock()
	return n, nil
}

// rebuild examines every credential of tenant, as a pass without a summary
// does, and writes the summary of what it saw: in the head for a small
// tenant, else in shards.
func (m *Monitor) rebuild(ctx context.Context, ss SummaryStore, tenant string, head credgate.SummaryHead, hv int, sched credgate.Schedule, tag string) (credgate.SummaryHead, error) {
	start := m.o.Now()
	facts := credgate.SummaryShard{}
	behind := map[string]bool{}
	_, _, err := m.scanAll(ctx, tenant, func(c *credgate.Credential) {
		key := credgate.SummaryKey(c.IntegrationID, c.ID)
		facts[key] = credgate.FactsOf(c)
		behind[key] = c.Behind
	})
	if err != nil {
		return head, err
	}
	// A mark made long enough before the listing is handled by it, unless
	// the listing shows its credential behind (a write cut after its data)
	// or not at all: those are described one by one, which finishes a cut
	// write.
	seen := map[string]string{}
	for key, stamp := range head.Dirty {
		if start.Sub(credgate.MarkTime(stamp)) < credgate.MarkGrace {
			continue
		}
		if _, listed := facts[key]; !listed || behind[key] {
			f, ok := m.describe(ctx, ss, tenant, key)
			switch {
			case !ok:
				continue
			case f == nil:
				delete(facts, key)
			default:
				facts[key] = *f
			}
		}
		seen[key] = stamp
	}
	now := m.o.Now()
	if len(facts) <= credgate.InlineFacts {
		out, _, err := ss.UpdateSummaryHead(ctx, tenant, head, hv, func(h *credgate.SummaryHead) error {
			h.Built(head.Rebuilds, seen, start, 1, tag, facts, []credgate.ShardState{facts.StateAt(now, sched)})
			return nil
		})
		return out, err
	}
	n := credgate.ShardsFor(len(facts))
	shards := make([]credgate.SummaryShard, n)
	for i := range shards {
		shards[i] = credgate.SummaryShard{}
	}
	for k, f := range facts {
		shards[credgate.SummaryShardOf(k, n)][k] = f
	}
	states := make([]credgate.ShardState, n)
	for i, sh := range shards {
		cur, v, err := ss.SummaryShard(ctx, tenant, i)
		if err != nil {
			return head, err
		}
		if _, _, err := ss.UpdateSummaryShard(ctx, tenant, i, cur, v, func(x *credgate.SummaryShard) error {
			*x = sh
			return nil
		}); err != nil {
			return head, err
		}
		states[i] = sh.StateAt(now, sched)
	}
	out, _, err := ss.UpdateSummaryHead(ctx, tenant, head, hv, func(h *credgate.SummaryHead) error {
		h.Built(head.Rebuilds, seen, start, n, tag, nil, states) // not inlined
		return nil
	})
	return out, err
}

// catchUp examines what is due in tenant's summary and what was written
// since the summary's last look: a shard is read only when one of its
// credentials is due or marked, a credential described only when marked
// (or before a refresh, whose backoff the summary may hold stale). A
// small tenant's one shard is in its head: what is due in it costs the
// head's write.
func (m *Monitor) catchUp(ctx context.Context, ss SummaryStore, tenant string, head credgate.SummaryHead, hv int, sched credgate.Schedule) (credgate.SummaryHead, error) {
	now := m.o.Now()
	due := head.DueShards(now, m.lookahead())
	if len(due) == 0 {
		return head, nil
	}
	seen := map[string]string{}
	states := map[int]credgate.ShardState{}
	var inline map[string]*credgate.Facts // the head's own shard's changes
	grow := false
	for _, i := range due {
		if head.Inlined {
			inline = m.catchUpShard(ctx, ss, tenant, head, i, head.Inline, now, sched, seen)
			grow = len(head.Inline)+len(inline) > 2*credgate.InlineFacts
			continue
		}
		sh, v, err := ss.SummaryShard(ctx, tenant, i)
		if err != nil {
			return head, err
		}
		changed := m.catchUpShard(ctx, ss, tenant, head, i, sh, now, sched, seen)
		if len(changed) > 0 {
			if sh, _, err = ss.UpdateSummaryShard(ctx, tenant, i, sh, v, apply(changed)); err != nil {
				return head, err
			}
		}
		st := sh.StateAt(now, sched)
		states[i] = st
		grow = grow || st.Size > credgate.MaxShardSize && head.N < credgate.SummaryShards
		if !m.renew(ctx, nil) {
			return head, errLeaseLost
		}
	}
	if err := ctx.Err(); err != nil {
		return head, err
	}
	out, _, err := ss.UpdateSummaryHead(ctx, tenant, head, hv, func(h *credgate.SummaryHead) error {
		h.Forget(seen)
		if h.N != head.N || !h.BuiltAt.Equal(head.BuiltAt) {
			return nil // rebuilt meanwhile (another replica): its shards stand
		}
		if h.Inlined {
			_ = apply(inline)(&h.Inline)
			states = map[int]credgate.ShardState{0: h.Inline.StateAt(now, sched)}
		}
		for i, st := range states {
			h.SetShard(i, st)
		}
		if grow {
			h.AskRebuild()
		}
		return nil
	})
	return out, err
}

// apply is the change that records changed in a shard (nil: gone).
func apply(changed map[string]*credgate.Facts) func(*credgate.SummaryShard) error {
	return func(x *credgate.SummaryShard) error {
		if *x == nil {
			*x = credgate.SummaryShard{}
		}
		for key, f := range changed {
			if f == nil {
				delete(*x, key)
			} else {
				(*x)[key] = *f
			}
		}
		return nil
	}
}

// catchUpShard catches up with shard i, sh, of tenant's summary (head as
// read at the pass's start): it describes the shard's marked credentials,
// adding the marks it handled to seen, examines the entries with work at
// now, and returns what changed (nil: gone).
func (m *Monitor) catchUpShard(ctx context.Context, ss SummaryStore, tenant string, head credgate.SummaryHead, i int, sh credgate.SummaryShard, now time.Time, sched credgate.Schedule, seen map[string]string) map[string]*credgate.Facts {
	changed := map[string]*credgate.Facts{} // nil: gone
	described := map[string]*credgate.Credential{}
	describe := func(key string) (*credgate.Credential, bool) {
		f, ok := m.describe(ctx, ss, tenant, key)
		if !ok {
			return nil, false
		}
		changed[key] = f
		if f == nil {
			return nil, false
		}
		_, id := credgate.SplitSummaryKey(key)
		described[key] = f.Credential(id)
		return described[key], true
	}
	for key, stamp := range head.Dirty {
		if credgate.SummaryShardOf(key, head.N) != i {
			continue
		}
		if _, ok := changed[key]; !ok {
			describe(key)
		}
		if _, ok := changed[key]; ok && now.Sub(credgate.MarkTime(stamp)) >= credgate.MarkGrace {
			seen[key] = stamp
		}
	}
	lookahead := m.lookahead()
	var b notices
	examined := map[string]*credgate.Credential{}
	for key, f := range sh {
		if _, ok := changed[key]; !ok {
			_, id := credgate.SplitSummaryKey(key)
			described[key] = f.Credential(id)
		}
	}
	for key, c := range described {
		at, refresh := c.RefreshAt()
		refresh = refresh && !at.After(now.Add(lookahead))
		if !refresh && !c.MonitorWork(now, sched) {
			continue
		}
		if _, fresh := changed[key]; refresh && !fresh {
			var ok bool
			if c, ok = describe(key); !ok {
				continue
			}
		}
		if m.limiter.Wait(ctx) != nil {
			break
		}
		m.examine(ctx, tenant, c, &b)
		examined[key] = c
	}
	m.flush(ctx, tenant, &b)
	for key, c := range examined {
		f := credgate.FactsOf(c)
		changed[key] = &f
	}
	return changed
}

// describe returns the facts of the credential key names in tenant as it
// is now (nil: gone); ok is false when it could not be read.
func (m *Monitor) describe(ctx context.Context, ss SummaryStore, tenant, key string) (f *credgate.Facts, ok bool) {
	service, id := credgate.SplitSummaryKey(key)
	c, settled, err := ss.DescribeLive(ctx, service, id)
	switch {
	case credgate.ErrorCode(err) == credgate.ECredentialNotFound:
		return nil, true
	case err == nil && !settled:
		return nil, false // being written: the next pass looks again
	case err != nil:
		m.o.Logger.Warn("monitor: describing a changed credential failed; the next pass tries again", zap.String("tenant", tenant), zap.String("credential_id", id), zap.Error(err))
		return nil, false
	}
	facts := credgate.FactsOf(c)
	return &facts, true
}

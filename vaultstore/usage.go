package vaultstore

import (
	"context"
	"encoding/json"
	"errors"
	"sync"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/policy"
)

// What each tenant keeps is counted in one record of credgate's own,
// system/usage/<tenant>, written with credgate's own token: no caller's
// token reaches it, so no leaked token can reset it. Every write that adds
// a record, removes one or changes its size charges the difference first
// (charge), through update with check-and-set, and only growth past the
// tenant's credgate.TenantLimits is refused; when the record's own write
// then fails, the charge is given back. The count is made from the
// tenant's folders the first time (a tenant from before the count kept
// no bytes: they are counted from its next writes).
//
// What it can miss: a write Vault took whose answer was lost is given back
// all the same, and two DELETEs of one service racing each other may give
// back its credentials twice. Both err toward a lower count, never toward
// refusing a tenant what it may keep.

// usageBook keeps the tenants' usage records: one writer at a time per
// tenant in this replica (other replicas are kept out by check-and-set),
// and the last version read, so a charge is one write when nobody else
// wrote in between.
type usageBook struct {
	mu    sync.Mutex
	locks map[string]*tenantUsage
}

type tenantUsage struct {
	turn    chan struct{} // one writer at a time; waiting ends with ctx
	cur     credgate.TenantUsage
	version int // 0: not read yet
}

// take waits for u's turn, or for ctx to end.
func (u *tenantUsage) take(ctx context.Context) error {
	select {
	case u.turn <- struct{}{}:
		return nil
	case <-ctx.Done():
		return unavailable(ctx.Err())
	}
}

func (u *tenantUsage) done() { <-u.turn }

func (b *usageBook) of(tenant string) *tenantUsage {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.locks == nil {
		b.locks = map[string]*tenantUsage{}
	}
	u, ok := b.locks[tenant]
	if !ok {
		u = &tenantUsage{turn: make(chan struct{}, 1)}
		b.locks[tenant] = u
	}
	return u
}

// limits returns tenant's limits.
func (s *Store) limits(tenant string) credgate.TenantLimits {
	if s.opts.Limits != nil {
		return s.opts.Limits(tenant)
	}
	return credgate.DefaultTenantLimits
}

// usageRecord is tenant's usage as update reads and writes it: from what
// this replica wrote last, read again after another writer was first.
func (s *Store) usageRecord(tenant string, u *tenantUsage) record[credgate.TenantUsage] {
	path := policy.SystemPath("usage/" + tenant)
	kv := ownKV{s}
	return record[credgate.TenantUsage]{
		read: func(ctx context.Context) (credgate.TenantUsage, int, error) {
			if u.version > 0 {
				return u.cur, u.version, nil
			}
			var cur credgate.TenantUsage
			meta, err := kv.read(ctx, "usage_read", path, &cur)
			if errors.Is(err, errNotFound) {
				cur, err = s.countUsage(ctx, tenant)
				return cur, 0, err
			}
			if err != nil {
				return cur, 0, err
			}
			u.cur, u.version = cur, meta.Version
			return cur, meta.Version, nil
		},
		write: func(ctx context.Context, _ credgate.TenantUsage, next *credgate.TenantUsage, cas int) (int, error) {
			data, err := encode(*next)
			if err != nil {
				return 0, err
			}
			version, err := kv.write(ctx, "usage_write", path, data, cas)
			if err != nil {
				u.version = 0 // read it again
				return 0, err
			}
			u.cur, u.version = *next, version
			return version, nil
		},
		clone: func(v credgate.TenantUsage) credgate.TenantUsage { return v },
	}
}

// charge adds d to tenant's usage, refusing growth past its limits
// (VALIDATION_FAILED naming the limit), and returns what gives it back.
// A zero d changes nothing and costs no Vault call.
func (s *Store) charge(ctx context.Context, tenant string, d credgate.TenantUsage) (refund func(context.Context), err error) {
	if d == (credgate.TenantUsage{}) {
		return func(context.Context) {}, nil
	}
	u := s.usage.of(tenant)
	if err := u.take(ctx); err != nil {
		return nil, err
	}
	defer u.done()
	limits := s.limits(tenant)
	for fresh := u.version == 0; ; fresh = true {
		_, _, err = update(ctx, s.usageRecord(tenant, u), 0, func(cur *credgate.TenantUsage) error {
			next := cur.Plus(d)
			if what := limits.Exceeded(*cur, next); what != "" {
				return credgate.FieldErrors{credgate.WholeBody: "the tenant keeps the most " + what + " it may; delete some first"}.Err()
			}
			*cur = next
			return nil
		})
		if err == nil || fresh || credgate.ErrorCode(err) != credgate.EValidationFailed {
			break
		}
		u.version = 0 // refused by what this replica wrote last: ask Vault
	}
	if err != nil {
		if credgate.ErrorCode(err) == credgate.EValidationFailed {
			return nil, err
		}
		return nil, translate(err, credgate.ENotFound)
	}
	return func(ctx context.Context) { s.settle(ctx, tenant, d.Neg()) }, nil
}

// settle applies d, a shrink (what a removed or smaller record no longer
// keeps, or a charge given back), to tenant's usage. A failure is only
// counted: the records are as they are all the same.
//
// It is made within the request while the request lasts, so that its
// answer keeps the request's deadline; what the deadline cuts short is
// finished in the background.
func (s *Store) settle(ctx context.Context, tenant string, d credgate.TenantUsage) {
	_, err := s.charge(ctx, tenant, d)
	if err != nil && ctx.Err() != nil {
		go func() {
			if _, err := s.charge(context.WithoutCancel(ctx), tenant, d); err != nil {
				s.observe("usage_settle", s.opts.Now(), err)
			}
		}()
		return
	}
	if err != nil {
		s.observe("usage_settle", s.opts.Now(), err)
	}
}

// Usage returns what tenant keeps and may keep. Errors:
// BACKEND_UNAVAILABLE, INTERNAL_ERROR.
func (s *Store) Usage(ctx context.Context, tenant string) (credgate.TenantUsage, credgate.TenantLimits, error) {
	u := s.usage.of(tenant)
	if err := u.take(ctx); err != nil {
		return credgate.TenantUsage{}, credgate.TenantLimits{}, err
	}
	defer u.done()
	u.version = 0 // what the others wrote too
	cur, _, err := s.usageRecord(tenant, u).read(ctx)
	return cur, s.limits(tenant), translate(err, credgate.ENotFound)
}

// countUsage counts tenant's services, credentials and webhooks from its
// folders, through the system session: the start of a usage record.
func (s *Store) countUsage(ctx context.Context, tenant string) (credgate.TenantUsage, error) {
	var out credgate.TenantUsage
	k, err := s.systemSession(ctx, tenant)
	if err != nil {
		return out, err
	}
	services, err := k.list(ctx, "service_list", k.folder(policy.FolderServices))
	if err != nil {
		return out, err
	}
	out.Services = len(services)
	for _, svc := range services {
		creds, err := k.list(ctx, "credential_list", k.credFolder(svc))
		if err != nil {
			return out, err
		}
		out.Credentials += len(creds)
	}
	hooks, err := k.list(ctx, "webhook_list", k.folder(policy.FolderWebhooks))
	if err != nil {
		return out, err
	}
	out.Webhooks = len(hooks)
	return out, nil
}

// sizeOf is what data takes as a record: the length of its JSON.
func sizeOf(data map[string]any) int64 {
	b, err := json.Marshal(data)
	if err != nil {
		return 0
	}
	return int64(len(b))
}

// accounted makes write, a write of one of the session tenant's records
// that changes its usage by d: growth is charged first and given back when
// write fails; a shrink is given back once write succeeded, so that no
// failed or lost write frees what is still kept.
func (k *session) accounted(ctx context.Context, d credgate.TenantUsage, write func() (int, error)) (int, error) {
	if d.Grows() {
		refund, err := k.s.charge(ctx, k.tenant, d)
		if err != nil {
			return 0, err
		}
		version, err := write()
		if err != nil {
			refund(ctx)
		}
		return version, err
	}
	version, err := write()
	if err == nil {
		k.s.settle(ctx, k.tenant, d)
	}
	return version, err
}

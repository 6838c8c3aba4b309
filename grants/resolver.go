// Package grants decides, for each request, which grants are in force for
// its caller: the tenant's grants kept in Vault (vaultstore) and those
// from credgate's configuration, matched by subject or group and by
// expiry. Every replica keeps each tenant's grants for a moment and asks
// Vault, with one small metadata read, whether they changed; so a grant
// made or deleted through any replica counts on every replica within
// seconds, without a Vault call per request.
package grants

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"

	"github.com/credgate/credgate"
)

// Store is what the resolver needs of the store (vaultstore.Store).
type Store interface {
	// TenantGrants returns tenant's grants and their record's version.
	TenantGrants(ctx context.Context, tenant string) ([]credgate.Grant, int, error)
	// TenantGrantsVersion returns that version alone (a metadata read).
	TenantGrantsVersion(ctx context.Context, tenant string) (int, error)
}

// DefaultFresh is how long a replica uses a tenant's grants before it asks
// whether they changed. A change counts on every replica within twice
// that (and a Vault call's time): 4 s, within the 5 s credgate promises.
const DefaultFresh = 2 * time.Second

// Options configures a Resolver.
type Options struct {
	Store Store
	// Configured are the grants of credgate's configuration, by tenant,
	// with their ids (credgate.ConfigGrantID) and source set.
	Configured map[string][]credgate.Grant
	Fresh      time.Duration
	// CacheSize bounds the tenants whose grants are kept; default 10,000.
	CacheSize int
	Now       func() time.Time
}

// Resolver resolves callers' grants. It is safe for concurrent use.
type Resolver struct {
	o       Options
	tenants *lru.Cache[string, *tenantGrants]
	flight  singleflight.Group
}

// tenantGrants is what a replica knows of a tenant's grants.
type tenantGrants struct {
	stored  []credgate.Grant
	version int
	checked time.Time
	byWho   map[string][]credgate.Grant // "s:"+subject, "g:"+group
}

// New returns a Resolver.
func New(o Options) (*Resolver, error) {
	if o.Store == nil {
		return nil, errors.New("grants: a store is required")
	}
	o.Fresh = cmp.Or(o.Fresh, DefaultFresh)
	o.CacheSize = cmp.Or(o.CacheSize, 10000)
	if o.Now == nil {
		o.Now = time.Now
	}
	c, err := lru.New[string, *tenantGrants](o.CacheSize)
	if err != nil {
		return nil, err
	}
	return &Resolver{o: o, tenants: c}, nil
}

// Resolve returns p with the grants in force for it now
// (credgate.Principal.WithGrants), or p itself when it has none. Errors:
// the store's (BACKEND_UNAVAILABLE), when the tenant's grants cannot be
// known.
func (r *Resolver) Resolve(ctx context.Context, p *credgate.Principal) (*credgate.Principal, error) {
	t, err := r.tenant(ctx, p.Tenant)
	if err != nil {
		return nil, err
	}
	now := r.o.Now()
	var in []credgate.Grant
	add := func(list []credgate.Grant) {
		for _, g := range list {
			if g.Live(now) {
				in = append(in, g)
			}
		}
	}
	add(t.byWho["s:"+p.Subject])
	for _, group := range p.Groups {
		add(t.byWho["g:"+group])
	}
	if len(in) == 0 && len(p.Grants) == 0 {
		return p, nil
	}
	slices.SortFunc(in, func(a, b credgate.Grant) int { return cmp.Compare(a.ID, b.ID) })
	in = slices.CompactFunc(in, func(a, b credgate.Grant) bool { return a.ID == b.ID })
	return p.WithGrants(in), nil
}

// Configured returns tenant's grants from configuration.
func (r *Resolver) Configured(tenant string) []credgate.Grant {
	return slices.Clone(r.o.Configured[tenant])
}

// tenant returns what the replica knows of tenant's grants: what it read
// less than Fresh ago; after that it asks Vault whether they changed, in
// the background while it is less than twice Fresh old, else before it
// answers.
func (r *Resolver) tenant(ctx context.Context, tenant string) (*tenantGrants, error) {
	t, ok := r.tenants.Get(tenant)
	age := time.Duration(0)
	if ok {
		age = r.o.Now().Sub(t.checked)
	}
	switch {
	case ok && age < r.o.Fresh:
		return t, nil
	case ok && age < 2*r.o.Fresh:
		go func() { _, _ = r.refresh(context.WithoutCancel(ctx), tenant) }()
		return t, nil
	}
	return r.refresh(ctx, tenant)
}

// refresh asks Vault whether tenant's grants changed (reading them again
// when they did); concurrent refreshes of a tenant make one.
func (r *Resolver) refresh(ctx context.Context, tenant string) (*tenantGrants, error) {
	v, err, _ := r.flight.Do(tenant, func() (any, error) {
		now := r.o.Now()
		if old, ok := r.tenants.Get(tenant); ok {
			version, err := r.o.Store.TenantGrantsVersion(ctx, tenant)
			if err != nil {
				return nil, err
			}
			if version == old.version {
				next := *old
				next.checked = now
				r.tenants.Add(tenant, &next)
				return &next, nil
			}
		}
		stored, version, err := r.o.Store.TenantGrants(ctx, tenant)
		if err != nil {
			return nil, err
		}
		t := &tenantGrants{stored: stored, version: version, checked: now, byWho: map[string][]credgate.Grant{}}
		for _, g := range append(slices.Clone(stored), r.o.Configured[tenant]...) {
			key := "s:" + g.Subject
			if g.Subject == "" {
				key = "g:" + g.Group
			}
			t.byWho[key] = append(t.byWho[key], g)
		}
		r.tenants.Add(tenant, t)
		return t, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*tenantGrants), nil
}

// Forget drops what this replica knows of tenant's grants: it changed
// them, and its next request of the tenant reads them again.
func (r *Resolver) Forget(tenant string) { r.tenants.Remove(tenant) }

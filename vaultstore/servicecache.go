package vaultstore

import (
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// A replica remembers, for a short while, two non-secret facts about each
// service it has read: that it exists (its incarnation) and which credential
// a read without a credential id serves (its primary). With both, a
// steady-state credential read is one Vault call: the credential's values,
// which prove their own status (revoked, inactive, deleted, or of another
// incarnation), so that no replica serves a credential another has revoked
// or deleted. What may be stale, for at most Options.ServiceCacheTTL, is
// only the choice: a service deleted elsewhere whose credentials are not yet
// gone, or a newer credential created elsewhere. This replica's own writes
// forget what they change at once. Secret values are never kept.

// DefaultServiceCacheTTL is how long a replica trusts what it remembers
// about a service.
const DefaultServiceCacheTTL = 5 * time.Second

type serviceKey struct{ tenant, service string }

// serviceView is what is remembered about a service.
type serviceView struct {
	incarnation string
	primary     string // "" when not known
	at          time.Time
}

type serviceCache struct {
	views *lru.Cache[serviceKey, serviceView]
	ttl   time.Duration
	now   func() time.Time
}

func newServiceCache(size int, ttl time.Duration, now func() time.Time) (*serviceCache, error) {
	views, err := lru.New[serviceKey, serviceView](size)
	if err != nil {
		return nil, err
	}
	return &serviceCache{views: views, ttl: ttl, now: now}, nil
}

// get returns the view of service of tenant when it is fresh.
func (c *serviceCache) get(tenant, service string) (serviceView, bool) {
	if c.ttl <= 0 {
		return serviceView{}, false
	}
	v, ok := c.views.Get(serviceKey{tenant, service})
	if !ok || c.now().Sub(v.at) >= c.ttl {
		return serviceView{}, false
	}
	return v, true
}

// seen records that service is live with incarnation, and its primary
// when primary is not "". A primary already known for the same
// incarnation is kept, with its own age.
func (c *serviceCache) seen(tenant, service, incarnation, primary string) {
	if c.ttl <= 0 {
		return
	}
	key := serviceKey{tenant, service}
	now := c.now()
	if primary == "" {
		if old, ok := c.views.Get(key); ok && old.incarnation == incarnation && old.primary != "" && now.Sub(old.at) < c.ttl {
			return
		}
	}
	c.views.Add(key, serviceView{incarnation: incarnation, primary: primary, at: now})
}

// forget drops what is remembered of service: this replica changed it.
func (c *serviceCache) forget(tenant, service string) {
	c.views.Remove(serviceKey{tenant, service})
}

package grants_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/grants"
)

// store is a tenant's grants record in memory, counting what is asked.
type store struct {
	mu              sync.Mutex
	grants          []credgate.Grant
	version         int
	reads, versions int
}

func (s *store) TenantGrants(context.Context, string) ([]credgate.Grant, int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	return append([]credgate.Grant(nil), s.grants...), s.version, nil
}

func (s *store) TenantGrantsVersion(context.Context, string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.versions++
	return s.version, nil
}

func (s *store) set(gs ...credgate.Grant) {
	s.mu.Lock()
	s.grants, s.version = gs, s.version+1
	s.mu.Unlock()
}

func (s *store) counts() (reads, versions int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads, s.versions
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }
func ids(p *credgate.Principal) []string {
	out := []string{}
	for _, g := range p.Grants {
		out = append(out, g.ID)
	}
	return out
}

// TestResolverMatchesAndStaysFreshCheaply: a caller gets the live grants
// of its subject and groups (stored and configured); a replica asks the
// store only for the version while nothing changed, and sees a change
// within twice its freshness.
func TestResolverMatchesAndStaysFreshCheaply(t *testing.T) {
	st := &store{}
	st.set(credgate.Grant{ID: "grant_b", Subject: "app", Role: "credential_reader", Integrations: []string{"stripe"}})
	c := &clock{now: time.Unix(1_800_000_000, 0)}
	soon := c.now.Add(time.Minute)
	r, err := grants.New(grants.Options{Store: st, Now: c.Now, Fresh: 2 * time.Second, Configured: map[string][]credgate.Grant{
		"acme": {{ID: "grant_cfg_a", Group: "team", Role: "integration_viewer", Integrations: []string{"*"}, ExpiresAt: &soon}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	app := &credgate.Principal{Subject: "app", Tenant: "acme", Groups: []string{"team"}}
	p, err := r.Resolve(ctx, app)
	if err != nil || len(app.Grants) != 0 {
		t.Fatal(err, "Resolve changed the principal it was given")
	}
	if got := ids(p); len(got) != 2 || got[0] != "grant_b" || got[1] != "grant_cfg_a" {
		t.Fatalf("grants %v", got)
	}
	if other, _ := r.Resolve(ctx, &credgate.Principal{Subject: "else", Tenant: "acme"}); len(other.Grants) != 0 {
		t.Fatalf("another subject got %v", ids(other))
	}
	for range 100 {
		_, _ = r.Resolve(ctx, app)
	}
	if reads, versions := st.counts(); reads != 1 || versions != 0 {
		t.Fatalf("%d reads and %d version checks for 102 resolutions within the freshness; want 1 and 0", reads, versions)
	}
	c.add(5 * time.Second) // stale: checked before answering, unchanged
	_, _ = r.Resolve(ctx, app)
	if reads, versions := st.counts(); reads != 1 || versions != 1 {
		t.Fatalf("after 5 s: %d reads, %d version checks; want 1 and 1", reads, versions)
	}
	st.set() // the stored grant is deleted, through another replica
	c.add(5 * time.Second)
	if p, _ := r.Resolve(ctx, app); len(p.Grants) != 1 || p.Grants[0].ID != "grant_cfg_a" {
		t.Fatalf("after the delete: %v", ids(p))
	}
	c.add(2 * time.Minute) // the configured grant expired
	if p, _ := r.Resolve(ctx, app); len(p.Grants) != 0 {
		t.Fatalf("an expired grant still resolves: %v", ids(p))
	}
	r.Forget("acme")
	_, _ = r.Resolve(ctx, app)
	if reads, _ := st.counts(); reads != 3 {
		t.Fatalf("after Forget: %d reads; want the record read again", reads)
	}
}

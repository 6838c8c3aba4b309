package monitor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/fairqueue"
)

// Store is what the monitor needs of the store (vaultstore.Store).
type Store interface {
	Tenants(ctx context.Context) ([]string, error)
	HoldLease(ctx context.Context, name, holder string, ttl time.Duration, cursor *string) (bool, string, error)
	ReleaseLease(ctx context.Context, name, holder string)
	ListCredentials(ctx context.Context, f credgate.CredentialFilter) (*credgate.CredentialPage, error)
	SaveWatch(ctx context.Context, tenant string, c *credgate.Credential) error
	// SaveRefreshState is SaveWatch after an automatic refresh failed, or
	// succeeded after failures (the credential's description shows it).
	SaveRefreshState(ctx context.Context, tenant string, c *credgate.Credential) error
	UpdateCredential(ctx context.Context, cred string, ifMatch int, fn func(*credgate.Credential) error) (*credgate.Credential, error)
	RefreshCredential(ctx context.Context, cred string, ifMatch int, grant credgate.RefreshGrant) (*credgate.Credential, error)
	// ExpireGrants removes tenant's grants that expired at now (their
	// Vault policies first) and returns them.
	ExpireGrants(ctx context.Context, tenant string, now time.Time) ([]credgate.Grant, error)
	// SweepIdempotency removes tenant's Idempotency-Key answers past
	// keeping.
	SweepIdempotency(ctx context.Context, tenant string) (int, error)
	// CredentialLedger is who read a credential (a migration's readers).
	CredentialLedger(ctx context.Context, service, cred string) (*credgate.Ledger, error)
}

// Publisher publishes events (webhook.Dispatcher): notices at once, and
// the events of changes recorded before the change (Intend).
type Publisher interface {
	Publish(ctx context.Context, e credgate.Event) error
	Intend(ctx context.Context, events ...credgate.Event) (credgate.Intent, error)
}

// Rotations starts the rotations credentials' policies make due and
// resumes those whose next step is due (rotation.Runner).
type Rotations interface {
	Examine(ctx context.Context, tenant string, c *credgate.Credential)
}

// Sweeper retries the webhook deliveries that are due (webhook.Dispatcher).
type Sweeper interface {
	Sweep(ctx context.Context) (int, error)
}

// Defaults of Options.
const (
	DefaultInterval = 5 * time.Minute
	DefaultRate     = 100 // credentials a second
	DefaultLeaseTTL = 30 * time.Second
	DefaultSweep    = 10 * time.Second
	DefaultWorkers  = 4
	// DefaultReconcile and DefaultHousekeeping: Options.
	DefaultReconcile    = 24 * time.Hour
	DefaultHousekeeping = time.Hour
	leaseName           = "monitor"
	// tenantsAtOnce is how many tenants a pass looks at at once: most
	// cost a Vault read or two, so the pass's wall time is latency.
	tenantsAtOnce = 8
	pageSize      = 200
)

// Options configures a Monitor.
type Options struct {
	Store  Store
	Events Publisher
	Sweep  Sweeper // optional
	// Grant makes the refresh-token grants of autoRefresh.
	Grant  credgate.RefreshGrant
	Logger *zap.Logger
	// Holder names this replica in the lease.
	Holder string
	// Interval is the least time from the start of one pass over all
	// credentials to the start of the next; Rate bounds the credentials
	// examined a second (each costs about one Vault read).
	Interval time.Duration
	Rate     float64
	// LeaseTTL is how long the lease outlives a replica that stops
	// renewing it; Tick how often a replica looks at it.
	LeaseTTL, Tick, SweepEvery time.Duration
	// Thresholds returns a tenant's expiry thresholds in days (nil:
	// credgate.DefaultExpiryThresholds).
	Thresholds func(tenant string) []int
	// RotationOverdue returns how long after rotationDueAt a tenant's
	// credential is announced overdue (0: credgate.DefaultRotationOverdue).
	RotationOverdue func(tenant string) time.Duration
	// Rotations, when set, is handed every credential the scan examines.
	Rotations Rotations
	// RefreshBackoff is the pause after a failed refresh, doubled after
	// each further failure, at most an hour; default a minute.
	RefreshBackoff time.Duration
	// Workers bounds the automatic refreshes running at once (default 4),
	// outside the scan: a tenant gets at most half of them, so a tenant
	// whose token endpoint hangs delays only its own refreshes
	// (fairqueue). RefreshTimeout bounds one (default a minute).
	Workers        int
	RefreshTimeout time.Duration
	// OnRefresh is told of every refresh (ok, error); OnPass of every
	// finished pass.
	OnRefresh func(outcome string)
	OnPass    func(Pass)
	// OnLost is told when this replica stops holding the lease, so that
	// what it reported of the inventory is withdrawn (another replica
	// reports it now).
	OnLost func()
	Now    func() time.Time
	// Reconcile is how often a tenant's summary is rebuilt from every
	// credential, whatever its marks say (default a day); Housekeeping
	// how often a tenant's expired grants and Idempotency-Key answers are
	// removed when its summary does not ask sooner (default an hour).
	Reconcile, Housekeeping time.Duration
}

// Pass is what one pass over all tenants found and cost.
type Pass struct {
	Tenants, Credentials int
	Took                 time.Duration
	// Inventory counts each tenant's credentials.
	Inventory map[string]credgate.InventoryCounts
}

// Monitor is the scan. Run it on every replica; one at a time works.
type Monitor struct {
	o       Options
	limiter *rate.Limiter
	work    *fairqueue.Queue // the refreshes

	mu        sync.Mutex
	leader    bool
	lastPass  time.Time
	passTook  time.Duration
	lastSweep time.Time
	pass      *Pass                // the pass under way
	held      time.Time            // when the lease was last renewed
	housekept map[string]time.Time // by tenant
}

// New returns a Monitor.
func New(o Options) (*Monitor, error) {
	if o.Store == nil || o.Events == nil || o.Grant == nil || o.Logger == nil {
		return nil, errors.New("monitor: Store, Events, Grant and Logger are required")
	}
	if o.Holder == "" {
		o.Holder = uuid.NewString()
	}
	o.Interval = cmp.Or(o.Interval, DefaultInterval)
	o.LeaseTTL = cmp.Or(o.LeaseTTL, DefaultLeaseTTL)
	o.Tick = cmp.Or(o.Tick, min(o.LeaseTTL/3, 5*time.Second))
	o.SweepEvery = cmp.Or(o.SweepEvery, DefaultSweep)
	o.RefreshBackoff = cmp.Or(o.RefreshBackoff, time.Minute)
	o.RefreshTimeout = cmp.Or(o.RefreshTimeout, time.Minute)
	o.Reconcile = cmp.Or(o.Reconcile, DefaultReconcile)
	o.Housekeeping = cmp.Or(o.Housekeeping, DefaultHousekeeping)
	if o.Rate <= 0 {
		o.Rate = DefaultRate
	}
	if o.Thresholds == nil {
		o.Thresholds = func(string) []int { return nil }
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Monitor{o: o, limiter: rate.NewLimiter(rate.Limit(o.Rate), pageSize), work: fairqueue.New(fairqueue.Options{Workers: cmp.Or(o.Workers, DefaultWorkers)}), housekept: map[string]time.Time{}}, nil
}

// Leader reports whether this replica holds the lease now.
func (m *Monitor) Leader() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.leader
}

// Run scans whenever this replica holds the lease, until ctx ends; then it
// waits for the refreshes under way and gives the lease up.
func (m *Monitor) Run(ctx context.Context) {
	work := make(chan struct{})
	go func() { m.work.Run(ctx); close(work) }()
	defer func() {
		<-work
		m.o.Store.ReleaseLease(context.WithoutCancel(ctx), leaseName, m.o.Holder)
		m.mu.Lock()
		was := m.leader
		m.leader = false
		m.mu.Unlock()
		if was && m.o.OnLost != nil {
			m.o.OnLost()
		}
	}()
	t := time.NewTicker(m.o.Tick)
	defer t.Stop()
	for {
		m.Step(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Step is one look at the lease and, when held, the work that is due: a
// pass (resumed or new) and a sweep of the webhook outboxes.
func (m *Monitor) Step(ctx context.Context) {
	held, cursor, err := m.o.Store.HoldLease(ctx, leaseName, m.o.Holder, m.o.LeaseTTL, nil)
	if err != nil {
		m.o.Logger.Warn("monitor: the lease could not be read", zap.Error(err))
	}
	m.mu.Lock()
	lost := m.leader && !held
	m.leader = held
	if held {
		m.held = m.o.Now()
	}
	due := held && (cursor != "" || m.o.Now().Sub(m.lastPass) >= m.o.Interval)
	sweep := held && m.o.Sweep != nil && m.o.Now().Sub(m.lastSweep) >= m.o.SweepEvery
	m.mu.Unlock()
	if lost && m.o.OnLost != nil {
		m.o.OnLost()
	}
	if sweep {
		if _, err := m.o.Sweep.Sweep(ctx); err != nil && ctx.Err() == nil {
			m.o.Logger.Warn("monitor: the webhook sweep failed", zap.Error(err))
		}
		m.mu.Lock()
		m.lastSweep = m.o.Now()
		m.mu.Unlock()
	}
	if due {
		m.runPass(ctx, cursor)
	}
}

// runPass scans the tenants after cursor, a few at once, saving its place
// with the lease as it renews it; it stops when the lease is lost.
func (m *Monitor) runPass(ctx context.Context, cursor string) {
	start := m.o.Now()
	tenants, err := m.o.Store.Tenants(ctx)
	if err != nil {
		m.o.Logger.Warn("monitor: listing tenants failed", zap.Error(err))
		return
	}
	m.mu.Lock()
	if m.pass == nil || cursor == "" {
		m.pass = &Pass{Inventory: map[string]credgate.InventoryCounts{}}
	}
	p := m.pass
	m.mu.Unlock()
	tenants = slices.DeleteFunc(tenants, func(t string) bool { return t <= cursor })
	// tenantsAtOnce workers take the tenants in order; a slow tenant (a
	// rebuild) holds one worker, not the others. The cursor saved is the
	// last tenant before which every tenant is done.
	var (
		mu     sync.Mutex
		next   int
		done   = make([]bool, len(tenants))
		prefix int // tenants[:prefix] are done
		stop   bool
	)
	var wg sync.WaitGroup
	for range min(tenantsAtOnce, len(tenants)) {
		wg.Go(func() {
			for {
				mu.Lock()
				if stop || next == len(tenants) {
					mu.Unlock()
					return
				}
				i := next
				next++
				mu.Unlock()
				n, err := m.scanTenant(ctx, tenants[i], p)
				if err != nil && (ctx.Err() != nil || errors.Is(err, errLeaseLost)) {
					mu.Lock()
					stop = true
					mu.Unlock()
					return
				}
				if err != nil {
					m.o.Logger.Warn("monitor: scanning a tenant failed", zap.String("tenant", tenants[i]), zap.Error(err))
				}
				mu.Lock()
				p.Tenants++
				p.Credentials += n
				done[i] = true
				for prefix < len(done) && done[prefix] {
					prefix++
				}
				var saved *string // nil: keep the stored cursor
				if prefix > 0 {
					saved = &tenants[prefix-1]
				}
				mu.Unlock()
				if !m.renew(ctx, saved) {
					mu.Lock()
					stop = true
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	if stop {
		return
	}
	none := ""
	if held, _, err := m.o.Store.HoldLease(ctx, leaseName, m.o.Holder, m.o.LeaseTTL, &none); err != nil || !held {
		return
	}
	p.Took = m.o.Now().Sub(start)
	m.mu.Lock()
	m.lastPass, m.passTook, m.pass = start, p.Took, nil
	m.mu.Unlock()
	if m.o.OnPass != nil {
		m.o.OnPass(*p)
	}
}

var errLeaseLost = errors.New("monitor: the lease went to another replica")

// renew keeps the lease, saving cursor (nil: keeping the stored one), when
// a third of its time has passed since it was last kept, and reports
// whether this replica still holds it: a pass costs the lease a few Vault
// calls, not some for every tenant.
func (m *Monitor) renew(ctx context.Context, cursor *string) bool {
	m.mu.Lock()
	fresh := m.o.Now().Sub(m.held) < m.o.LeaseTTL/3
	m.mu.Unlock()
	if fresh {
		return true
	}
	held, _, err := m.o.Store.HoldLease(ctx, leaseName, m.o.Holder, m.o.LeaseTTL, cursor)
	if err != nil || !held {
		return false
	}
	m.mu.Lock()
	m.held = m.o.Now()
	m.mu.Unlock()
	return true
}

// scanTenant examines what is due in tenant: through its summary when the
// store keeps one (summary.go), else every credential.
func (m *Monitor) scanTenant(ctx context.Context, tenant string, p *Pass) (int, error) {
	sys := credgate.WithPrincipal(ctx, credgate.SystemPrincipal(tenant))
	sys = credgate.WithRequestID(sys, "monitor-"+uuid.NewString())
	if ss, ok := m.o.Store.(SummaryStore); ok {
		return m.scanSummary(sys, ss, tenant, p)
	}
	counts, seen, err := m.scanAll(sys, tenant, nil)
	if err != nil {
		return seen, err
	}
	m.mu.Lock()
	p.Inventory[tenant] = counts
	m.mu.Unlock()
	m.housekeep(sys, tenant)
	return seen, nil
}

// scanAll examines every credential of tenant, a page at a time at the
// monitor's rate, handing each to each after it is examined, and returns
// their counts and how many it saw.
func (m *Monitor) scanAll(ctx context.Context, tenant string, each func(*credgate.Credential)) (credgate.InventoryCounts, int, error) {
	counts := credgate.NewInventoryCounts()
	counts.Overdue = m.overdue(tenant)
	seen := 0
	var after *credgate.CredentialPosition
	for {
		page, err := m.o.Store.ListCredentials(ctx, credgate.CredentialFilter{After: after, Limit: pageSize, Walk: true})
		if err != nil {
			return counts, seen, err
		}
		if err := m.limiter.WaitN(ctx, len(page.Credentials)); err != nil {
			return counts, seen, err
		}
		var b notices
		for _, c := range page.Credentials {
			m.examine(ctx, tenant, c, &b)
		}
		m.flush(ctx, tenant, &b)
		for _, c := range page.Credentials {
			counts.Count(c, m.o.Now())
			if each != nil {
				each(c)
			}
		}
		seen += len(page.Credentials)
		if page.Next == nil {
			break
		}
		after = page.Next
		if !m.renew(ctx, nil) {
			return counts, seen, errLeaseLost
		}
	}
	return counts, seen, nil
}

// housekeep removes tenant's expired grants and its Idempotency-Key
// answers past keeping.
func (m *Monitor) housekeep(ctx context.Context, tenant string) {
	m.expireGrants(ctx, tenant)
	if _, err := m.o.Store.SweepIdempotency(ctx, tenant); err != nil {
		m.o.Logger.Warn("monitor: removing Idempotency-Key answers past keeping failed", zap.String("tenant", tenant), zap.Error(err))
	}
	m.mu.Lock()
	m.housekept[tenant] = m.o.Now()
	m.mu.Unlock()
}

// expireGrants removes tenant's expired grants and announces each once.
// (A caller's own check stops counting a grant the moment it expires, and
// a caller token never outlives its grants; this is the clean-up.)
func (m *Monitor) expireGrants(ctx context.Context, tenant string) {
	gone, err := m.o.Store.ExpireGrants(ctx, tenant, m.o.Now())
	if err != nil {
		m.o.Logger.Warn("monitor: removing expired grants failed", zap.String("tenant", tenant), zap.Error(err))
	}
	for _, g := range gone {
		e := credgate.NewGrantEvent(ctx, credgate.EventGrantExpired, &g)
		e.OnceID(credgate.EventGrantExpired, g.ID)
		if err := m.o.Events.Publish(ctx, e); err != nil {
			m.o.Logger.Warn("monitor: publishing an expired grant failed", zap.String("grant_id", g.ID), zap.Error(err))
		}
	}
}

// lookahead is how far ahead a pass refreshes: a credential due before the
// next pass reaches it is refreshed now.
func (m *Monitor) lookahead() time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	return max(m.o.Interval, m.passTook)
}

// examine does what c is due: revocation, refresh, an expiry notice. A
// refresh (a call to the tenant's token endpoint) is queued in the
// tenant's lane, and the notice waits for its outcome; the scan goes on.
// The expiry and rotation notices go into b, to be published with the
// scan's others (nil: at once).
func (m *Monitor) examine(ctx context.Context, tenant string, c *credgate.Credential, b *notices) {
	now := m.o.Now()
	if c.RevocationDue(now) {
		m.revoke(ctx, c)
		return
	}
	if c.PreviousEnded(now) {
		m.previousEnded(ctx, tenant, c, "previousRevokeAt")
	}
	if c.MigrationWatched(now) {
		m.migration(ctx, tenant, c)
	}
	m.rotationNotice(ctx, tenant, c, b)
	if m.o.Rotations != nil {
		m.o.Rotations.Examine(ctx, tenant, c)
	}
	if at, ok := c.RefreshAt(); ok && !at.After(now.Add(m.lookahead())) {
		id := credgate.RequestIDFrom(ctx)
		c := *c // the scan goes on with its copy
		c.Notices.Days = slices.Clone(c.Notices.Days)
		m.work.Add(tenant, c.ID, func(ctx context.Context) {
			ctx, cancel := context.WithTimeout(ctx, m.o.RefreshTimeout)
			defer cancel()
			ctx = credgate.WithRequestID(credgate.WithPrincipal(ctx, credgate.SystemPrincipal(tenant)), id)
			if out, ok := m.refresh(ctx, tenant, &c); ok {
				m.notify(ctx, tenant, out, nil)
			}
		})
		return
	}
	m.notify(ctx, tenant, c, b)
}

// notify sends c's expiry notice when one is due, into b (nil: at once).
func (m *Monitor) notify(ctx context.Context, tenant string, c *credgate.Credential, b *notices) {
	now := m.o.Now()
	thresholds := m.o.Thresholds(tenant)
	if thresholds == nil {
		thresholds = credgate.DefaultExpiryThresholds
	}
	days, expired := c.NoticeDue(now, thresholds)
	if days == 0 && !expired {
		return
	}
	typ := credgate.EventExpiring
	if expired {
		typ = credgate.EventExpired
	}
	e := credgate.NewEvent(ctx, typ, c)
	e.Data.ThresholdDays = days
	e.OnceID(typ, c.ID, c.ExpiresAt.UTC().Format(time.RFC3339), strconv.Itoa(days))
	m.send(ctx, tenant, b, notice{e: e, c: c, sent: func() { c.MarkSent(days, expired, thresholds) }})
}

// overdue is how long after its due date tenant's credential not rotated
// is overdue.
func (m *Monitor) overdue(tenant string) time.Duration {
	if m.o.RotationOverdue != nil {
		if d := m.o.RotationOverdue(tenant); d > 0 {
			return d
		}
	}
	return credgate.DefaultRotationOverdue
}

// rotationNotice sends c's rotation notice when one is due, into b (nil:
// at once): once per due date each, the overdue one the overdue period
// later.
func (m *Monitor) rotationNotice(ctx context.Context, tenant string, c *credgate.Credential, b *notices) {
	typ := c.RotationNoticeDue(m.o.Now(), m.overdue(tenant))
	if typ == "" {
		return
	}
	e := credgate.NewEvent(ctx, typ, c)
	e.Data.RotationDueAt = c.RotationDueAt
	e.OnceID(typ, c.ID, c.RotationDueAt.UTC().Format(time.RFC3339))
	m.send(ctx, tenant, b, notice{e: e, c: c, sent: func() { c.MarkRotationNotice(typ) }})
}

// revoke stores c revoked because its revokeAt came, if nobody changed it
// since the scan read it.
func (m *Monitor) revoke(ctx context.Context, c *credgate.Credential) {
	e := credgate.NewEvent(ctx, credgate.EventRevoked, c)
	e.Data.Reason = "revokeAt"
	e.OnceID(credgate.EventRevoked, c.ID, c.RevokeAt.UTC().Format(time.RFC3339))
	in, err := m.o.Events.Intend(ctx, e)
	if err != nil {
		m.o.Logger.Warn("monitor: recording a revocation's event failed; the next pass tries again", zap.String("credential_id", c.ID), zap.Error(err))
		return
	}
	out, err := m.o.Store.UpdateCredential(in.Context(ctx), c.ID, c.Version, func(x *credgate.Credential) error {
		x.Status = credgate.CredRevoked
		return nil
	})
	if err != nil {
		if code := credgate.ErrorCode(err); code != credgate.EBackendUnavailable && code != credgate.EInternal {
			in.Withdraw(ctx) // refused before any write: no revocation to announce
		}
		if credgate.ErrorCode(err) != credgate.EVersionConflict {
			m.o.Logger.Warn("monitor: a scheduled revocation failed", zap.String("credential_id", c.ID), zap.Error(err))
		}
		return
	}
	final := credgate.NewEvent(ctx, credgate.EventRevoked, out)
	final.Data.Reason = "revokeAt"
	in.Confirm(ctx, final)
}

// previousEnded announces that the previous version c kept servable is
// served no more (its reads stop at PreviousRevokeAt by themselves), for
// reason (previousRevokeAt, or migrated).
func (m *Monitor) previousEnded(ctx context.Context, tenant string, c *credgate.Credential, reason string) {
	e := credgate.NewEvent(ctx, credgate.EventRevoked, c)
	e.Data.Version, e.Data.Reason = c.PreviousVersion, reason
	e.OnceID(credgate.EventRevoked, c.ID, strconv.Itoa(c.PreviousVersion))
	if err := m.o.Events.Publish(ctx, e); err != nil {
		m.o.Logger.Warn("monitor: publishing the end of a previous version failed", zap.String("credential_id", c.ID), zap.Error(err))
		return
	}
	c.PreviousRevoked = c.PreviousVersion
	if err := m.o.Store.SaveWatch(ctx, tenant, c); err != nil {
		m.o.Logger.Warn("monitor: recording the end of a previous version failed", zap.String("credential_id", c.ID), zap.Error(err))
	}
}

// refresh refreshes c through the store's locked rotation path, on
// condition that c is still the version the scan read: a credential
// refreshed meanwhile (by another replica, or by its owner) is left alone.
// It returns the credential as it stands now, refreshed or with its
// failure recorded, and false when the scan's copy is not (changed or
// gone since, or not tried).
func (m *Monitor) refresh(ctx context.Context, tenant string, c *credgate.Credential) (*credgate.Credential, bool) {
	in, err := m.o.Events.Intend(ctx, credgate.NewEvent(ctx, credgate.EventRefreshed, c))
	if err != nil {
		m.o.Logger.Warn("monitor: recording a refresh's event failed; the next pass tries again", zap.String("credential_id", c.ID), zap.Error(err))
		return c, true
	}
	out, err := m.o.Store.RefreshCredential(in.Context(ctx), c.ID, c.Version, m.o.Grant)
	if err != nil {
		if code := credgate.ErrorCode(err); code != credgate.EBackendUnavailable && code != credgate.EInternal {
			in.Withdraw(ctx)
		}
	}
	if err == nil {
		if m.o.OnRefresh != nil {
			m.o.OnRefresh("ok")
		}
		if c.Refresh != nil { // the failures are over
			out.Refresh = nil
			if err := m.o.Store.SaveRefreshState(ctx, tenant, out); err != nil {
				m.o.Logger.Warn("monitor: clearing a refresh failure failed", zap.String("credential_id", c.ID), zap.Error(err))
			}
		}
		in.Confirm(ctx, credgate.NewEvent(ctx, credgate.EventRefreshed, out))
		return out, true
	}
	code := credgate.ErrorCode(err)
	if code == credgate.EVersionConflict || code == credgate.ECredentialNotFound {
		return nil, false // changed or gone since the scan read it
	}
	if m.o.OnRefresh != nil {
		m.o.OnRefresh("error")
	}
	now := m.o.Now().UTC().Truncate(time.Second)
	st := credgate.RefreshState{FailingSince: now}
	if c.Refresh != nil {
		st = *c.Refresh
	}
	st.Failures++
	st.LastError = code
	var ce *credgate.Error
	if errors.As(err, &ce) && ce.UpstreamError != "" {
		st.LastError += ": " + ce.UpstreamError
	}
	pause := time.Duration(float64(m.o.RefreshBackoff) * math.Pow(2, float64(min(st.Failures-1, 10))))
	next := now.Add(min(pause, time.Hour))
	st.NextAttemptAt = &next
	c.Refresh = &st
	if err := m.o.Store.SaveRefreshState(ctx, tenant, c); err != nil {
		m.o.Logger.Warn("monitor: recording a refresh failure failed", zap.String("credential_id", c.ID), zap.Error(err))
	}
	e := credgate.NewEvent(ctx, credgate.EventRefreshFailed, c)
	e.Data.Reason, e.Data.Failures = st.LastError, st.Failures
	if err := m.o.Events.Publish(ctx, e); err != nil {
		m.o.Logger.Warn("monitor: publishing a refresh failure failed", zap.String("credential_id", c.ID), zap.Error(err))
	}
	m.o.Logger.Info("monitor: an automatic refresh failed", zap.String("tenant", tenant), zap.String("credential_id", c.ID), zap.String("reason", st.LastError), zap.Int("failures", st.Failures))
	return c, true
}

// migration looks at who has moved off the previous version c keeps
// servable: when every recent reader has and c asked for it, the previous
// version ends now (on condition that c is still the version the scan
// read); a day before the deadline, the readers still on it are named once
// (credential.migration_stalled).
func (m *Monitor) migration(ctx context.Context, tenant string, c *credgate.Credential) {
	now := m.o.Now()
	l, err := m.o.Store.CredentialLedger(ctx, c.IntegrationID, c.ID)
	if err != nil {
		m.o.Logger.Warn("monitor: reading a credential's ledger failed", zap.String("credential_id", c.ID), zap.Error(err))
		return
	}
	mg := c.MigrationOf(l, now)
	end, stalled := c.MigrationDue(mg, now)
	switch {
	case end:
		prev := c.PreviousVersion
		out, err := m.o.Store.UpdateCredential(ctx, c.ID, c.Version, func(x *credgate.Credential) error {
			if x.PreviousVersion == prev {
				at := now.UTC()
				x.PreviousRevokeAt = &at
			}
			return nil
		})
		if err != nil {
			if credgate.ErrorCode(err) != credgate.EVersionConflict {
				m.o.Logger.Warn("monitor: ending a migrated previous version failed", zap.String("credential_id", c.ID), zap.Error(err))
			}
			return
		}
		out.SetWatch(credgate.WatchOf(c)) // the monitor's bookkeeping, which the write does not carry
		if out.PreviousEnded(now) {
			m.previousEnded(ctx, tenant, out, "migrated")
		}
	case stalled:
		e := credgate.NewEvent(ctx, credgate.EventMigrationStalled, c)
		e.Data.Version = c.PreviousVersion
		e.Data.Reason = fmt.Sprintf("%d of %d recent readers still read version %d, which ends at %s", len(mg.Pending), len(mg.Pending)+len(mg.Moved), c.PreviousVersion, mg.Deadline.UTC().Format(time.RFC3339))
		for _, r := range mg.Pending {
			e.Data.Readers = append(e.Data.Readers, credgate.EventReader{Subject: r.Subject, Name: r.Name, Email: r.Email, LastVersion: r.LastVersion, LastRead: r.LastRead})
		}
		e.OnceID(credgate.EventMigrationStalled, c.ID, strconv.Itoa(c.PreviousVersion))
		if err := m.o.Events.Publish(ctx, e); err != nil {
			m.o.Logger.Warn("monitor: publishing a stalled migration failed", zap.String("credential_id", c.ID), zap.Error(err))
			return
		}
		c.StalledNotice = c.PreviousVersion
		if err := m.o.Store.SaveWatch(ctx, tenant, c); err != nil {
			m.o.Logger.Warn("monitor: recording a stalled migration failed", zap.String("credential_id", c.ID), zap.Error(err))
		}
	}
}

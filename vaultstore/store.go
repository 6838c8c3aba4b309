package vaultstore

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/hashicorp/vault/api"
	"golang.org/x/sync/singleflight"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/policy"
)

// Defaults of Options (the mount and token role: policy.DefaultMount,
// policy.DefaultTokenRole).
const (
	DefaultMaxTokenTTL = 15 * time.Minute
	DefaultTimeout     = 5 * time.Second
)

// Identity is credgate's own Vault login (vaultlogin.Identity): the token
// of credgate's own calls, and a new login when Vault refuses it.
type Identity interface {
	// Token is the current token; empty before the first login.
	Token() string
	// Refused is told that Vault refused token; it reports whether there
	// is now another token to repeat the call with.
	Refused(ctx context.Context, token string) bool
	// Err says why there is no usable token, or nil.
	Err() error
	// LastErr is why the last login failed, or nil.
	LastErr() error
	// Method names the login method, for messages.
	Method() string
}

// Options configures a Store.
type Options struct {
	// Client is credgate's Vault client. With its own token (or Identity's)
	// it mints caller tokens and writes policies; records are never read or
	// written with credgate's own token.
	Client *api.Client
	// Identity, when set, supplies credgate's own token and logs in again
	// when Vault refuses it; otherwise Client's token is used as it is.
	Identity  Identity
	Mount     string
	TokenRole string
	// MaxTokenTTL caps the life of a caller token; a token never outlives
	// the JWT it was minted for.
	MaxTokenTTL time.Duration
	// Timeout bounds every Vault call.
	Timeout time.Duration
	// CacheSize bounds the caller-token, policy and service caches (entries
	// each); default 10,000.
	CacheSize int
	// LockLease and LockWait time the rotation lock; defaults
	// DefaultLockLease and DefaultLockWait.
	LockLease, LockWait time.Duration
	// ServiceCacheTTL bounds how long a replica trusts what it remembers
	// about a service (that it exists, which credential is its primary);
	// default DefaultServiceCacheTTL, negative: remember nothing.
	ServiceCacheTTL time.Duration
	// InventoryCacheBytes bounds what a replica keeps of the inventory
	// bases it has read (basecache.go); default
	// DefaultInventoryCacheBytes, negative: keep none.
	InventoryCacheBytes int
	Now                 func() time.Time
	// Observe, when set, is told about every Vault call (for metrics).
	Observe func(op string, d time.Duration, err error)
	// OnTokenCache, when set, is told about every caller-token lookup.
	OnTokenCache func(hit bool)
	// Limits returns what a tenant may keep; default
	// credgate.DefaultTenantLimits for every tenant.
	Limits func(tenant string) credgate.TenantLimits
	// LedgerInterval is how often the reads gathered for the credentials'
	// ledgers are written; default DefaultLedgerInterval.
	LedgerInterval time.Duration
	// PendingReads bounds the (reader, credential) pairs a replica gathers
	// between two ledger writes; default DefaultPendingReads. Past it
	// reads go uncounted (LostReads) but for a reserve kept for the
	// tenants holding few (ledgerBook.admits).
	PendingReads int
	// UsageRules returns a tenant's thresholds of unusual use (default
	// credgate.DefaultUsageRules); OnUsageAlert, when set, is told of each
	// finding as the ledgers are written (an event to publish).
	UsageRules   func(tenant string) credgate.UsageRules
	OnUsageAlert func(credgate.UsageAlert)
	// RotationPolicy returns a tenant's default rotation policy, which
	// holds for its credentials without their own (nil: none).
	RotationPolicy func(tenant string) *credgate.RotationPolicy
	// OnConnection, when set, is told when a refresh broke an OAuth2
	// connection (credgate.EventConnectionBroken) or restored one
	// (credgate.EventConnectionRestored): an event to publish.
	OnConnection func(ctx context.Context, c *credgate.Credential, event string)
}

// Store keeps credgate's records in Vault. It is safe for concurrent use.
type Store struct {
	opts   Options
	layout policy.Layout

	tokens   *lru.Cache[[32]byte, callerToken]
	policies *lru.Cache[string, [32]byte] // policy name -> hash of what we wrote
	mint     singleflight.Group
	minting  singleflight.Group // client-credentials tokens being minted, by tenant and credential
	access   *accessRecorder
	ledgers  *ledgerBook
	health   healthCache
	services *serviceCache
	bases    *baseCache
	marks    markBook
	notes    markBook // notes in the services' inventory records
	usage    usageBook
	vault    vaultHTTP
}

// healthCache remembers Vault's health for a moment, so that a burst of
// failing requests asks Vault once.
type healthCache struct {
	mu      sync.Mutex
	at      time.Time
	healthy bool
}

// healthInterval is how long an answer of sys/health is used.
const healthInterval = time.Second

// healthy reports whether Vault says it is initialized and unsealed (and
// answers at all), and answers an audited call of credgate's own without
// failing. It asks sys/health at most once per healthInterval.
func (s *Store) healthy(ctx context.Context) bool {
	s.health.mu.Lock()
	defer s.health.mu.Unlock()
	now := s.opts.Now()
	if now.Sub(s.health.at) < healthInterval {
		return s.health.healthy
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.Timeout)
	defer cancel()
	h, err := s.own(ctx).Sys().HealthWithContext(ctx)
	s.observe("health", now, err)
	s.health.at, s.health.healthy = now, err == nil && h.Initialized && !h.Sealed
	if s.health.healthy {
		// sys/health is not audited; an audit device that fails makes
		// Vault answer 500 to everything else. An audited call of
		// credgate's own tells: a 5xx there too is an outage.
		start := s.opts.Now()
		_, err := s.own(ctx).Auth().Token().LookupSelfWithContext(ctx)
		s.observe("token_lookup_self", start, err)
		var re *api.ResponseError
		if errors.As(err, &re) && re.StatusCode >= 500 || isUnreachable(err) && !errors.As(err, &re) {
			s.health.healthy = false
		}
	}
	return s.health.healthy
}

type callerToken struct {
	token      string
	validUntil time.Time
}

// New returns a Store. It does not contact Vault.
func New(opts Options) (*Store, error) {
	if opts.Client == nil {
		return nil, errors.New("vaultstore: no Vault client")
	}
	if opts.Mount == "" {
		opts.Mount = policy.DefaultMount
	}
	opts.Mount = strings.Trim(opts.Mount, "/")
	if opts.TokenRole == "" {
		opts.TokenRole = policy.DefaultTokenRole
	}
	if opts.MaxTokenTTL <= 0 {
		opts.MaxTokenTTL = DefaultMaxTokenTTL
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = 10000
	}
	if opts.LockLease <= 0 {
		opts.LockLease = DefaultLockLease
	}
	if opts.LockWait <= 0 {
		opts.LockWait = DefaultLockWait
	}
	if opts.LedgerInterval <= 0 {
		opts.LedgerInterval = DefaultLedgerInterval
	}
	if opts.PendingReads <= 0 {
		opts.PendingReads = DefaultPendingReads
	}
	if opts.UsageRules == nil {
		opts.UsageRules = func(string) credgate.UsageRules { return credgate.DefaultUsageRules }
	}
	if opts.ServiceCacheTTL == 0 {
		opts.ServiceCacheTTL = DefaultServiceCacheTTL
	}
	if opts.InventoryCacheBytes == 0 {
		opts.InventoryCacheBytes = DefaultInventoryCacheBytes
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	tokens, err := lru.New[[32]byte, callerToken](opts.CacheSize)
	if err != nil {
		return nil, err
	}
	policies, err := lru.New[string, [32]byte](opts.CacheSize)
	if err != nil {
		return nil, err
	}
	services, err := newServiceCache(opts.CacheSize, opts.ServiceCacheTTL, opts.Now)
	if err != nil {
		return nil, err
	}
	bases, err := newBaseCache(opts.InventoryCacheBytes)
	if err != nil {
		return nil, err
	}
	return &Store{opts: opts, layout: policy.Layout{Mount: opts.Mount}, tokens: tokens, policies: policies, access: newAccessRecorder(), ledgers: newLedgerBook(), services: services, bases: bases, vault: newVaultHTTP(opts.Client)}, nil
}

// observe times one Vault call.
func (s *Store) observe(op string, start time.Time, err error) {
	if s.opts.Observe != nil {
		s.opts.Observe(op, s.opts.Now().Sub(start), err)
	}
}

// withRequest returns c bound to token (when not empty) and to the
// request ctx carries, so Vault's audit log can be joined with credgate's.
func withRequest(ctx context.Context, c *api.Client, token string) *api.Client {
	return bind(c, token, traceOf(ctx))
}

// trace is what a Vault call says of the request it is made for: the
// caller's X-Request-Id and credgate's own id of the request
// (credgate.CorrelationHeader), which credgate audit groups calls by.
type trace struct{ requestID, correlation string }

func traceOf(ctx context.Context) trace {
	return trace{credgate.RequestIDFrom(ctx), credgate.CorrelationFrom(ctx)}
}

// set puts t's headers into h.
func (t trace) set(h http.Header) { t.add(h.Set) }

// add gives set each header t sends.
func (t trace) add(set func(name, value string)) {
	if t.requestID != "" {
		set(credgate.RequestIDHeader, t.requestID)
	}
	if t.correlation != "" {
		set(credgate.CorrelationHeader, t.correlation)
	}
}

// bind returns c bound to token (when not empty) and request t.
func bind(c *api.Client, token string, t trace) *api.Client {
	if token == "" && t == (trace{}) {
		return c
	}
	return c.WithRequestCallbacks(func(r *api.Request) {
		if token != "" {
			r.ClientToken = token
		}
		if t != (trace{}) {
			if r.Headers == nil {
				r.Headers = http.Header{}
			}
			t.set(r.Headers)
		}
	})
}

// own returns credgate's own client for this request.
func (s *Store) own(ctx context.Context) *api.Client {
	return withRequest(ctx, s.opts.Client, s.ownToken())
}

func (s *Store) ownToken() string {
	if s.opts.Identity != nil {
		return s.opts.Identity.Token()
	}
	return s.opts.Client.Token()
}

// asSelf makes one of credgate's own Vault calls. When Vault refuses
// credgate's own token (403), the identity logs in again and the call is
// made once more; a refusal that stays is BACKEND_UNAVAILABLE with the
// cause for the log: credgate's own identity failing is never the
// caller's 403.
func (s *Store) asSelf(ctx context.Context, call func(*api.Client) error) error {
	return s.asSelfToken(ctx, func(tok string) error { return call(withRequest(ctx, s.opts.Client, tok)) })
}

// asSelfToken is asSelf for a call that sends credgate's own token itself
// (tok).
func (s *Store) asSelfToken(ctx context.Context, call func(tok string) error) error {
	tok := s.ownToken()
	if id := s.opts.Identity; tok == "" && id != nil {
		// Never logged in (Vault or the source was not there at start):
		// try now, as Run does, rather than wait for its next attempt.
		if !id.Refused(ctx, "") {
			return unavailable(id.Err())
		}
		tok = id.Token()
	}
	err := call(tok)
	if !refusedOwn(err) {
		return err
	}
	if id := s.opts.Identity; id != nil && id.Refused(ctx, tok) {
		err = call(id.Token())
		if !refusedOwn(err) {
			return err
		}
	}
	cause := fmt.Errorf("vault refused credgate's own token: %w", err)
	if id := s.opts.Identity; id != nil {
		if lerr := id.LastErr(); lerr != nil {
			cause = fmt.Errorf("%w; logging in again (%s): %v", cause, id.Method(), lerr)
		}
	}
	return unavailable(cause)
}

// refusedOwn reports whether Vault answered 403 to credgate's own token.
func refusedOwn(err error) bool {
	var re *api.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusForbidden
}

// tokenMargin is how long before expiry a cached caller token is replaced.
const tokenMargin = 15 * time.Second

// principalKey is what a caller token is cached by: who the caller is,
// its roles and the grants it was minted for, so that a token is only
// ever used for the grant set its policies were rendered from. It is
// every request's lookup: hashed from a stack buffer (a typical principal
// fits), with no allocation of its own.
func principalKey(p *credgate.Principal) [32]byte {
	var stack [512]byte
	b := stack[:0]
	for _, part := range [...]string{p.Issuer, p.Subject, p.Tenant, p.Email, p.Name} {
		b = append(append(b, part...), 0)
	}
	b = appendJoined(b, p.Roles, ',')
	b = append(b, 0)
	for _, g := range p.Grants {
		b = append(appendGrantNote(b, g), 0)
	}
	return sha256.Sum256(b)
}

// appendJoined appends list to b, sep between each (strings.Join's text).
func appendJoined(b []byte, list []string, sep byte) []byte {
	for i, s := range list {
		if i > 0 {
			b = append(b, sep)
		}
		b = append(b, s...)
	}
	return b
}

// grantNote is g as a caller token's metadata names it, for credgate
// audit: id:role:pattern|pattern.
func grantNote(g credgate.Grant) string {
	return string(appendGrantNote(nil, g))
}

// appendGrantNote appends grantNote(g) to b.
func appendGrantNote(b []byte, g credgate.Grant) []byte {
	b = append(append(append(append(b, g.ID...), ':'), g.Role...), ':')
	return appendJoined(b, g.Integrations, '|')
}

// TokenFor returns the Vault batch token for p: minted through the token
// role with only the policies of p's roles in p's tenant and of p's
// grants, metadata naming p (and its grants), and a life no longer than
// p's JWT or any of its grants. Tokens are cached by principalKey;
// concurrent first requests of one principal mint one token.
func (s *Store) TokenFor(ctx context.Context, p *credgate.Principal) (string, error) {
	if !slices.ContainsFunc(p.Roles, func(r string) bool { return policy.Known(policy.Role(r)) }) && len(p.Grants) == 0 {
		return "", credgate.Errorf(credgate.EInsufficientPermissions, "the caller holds no credgate role and no grant")
	}
	key := principalKey(p)
	now := s.opts.Now()
	if ct, ok := s.tokens.Get(key); ok && now.Before(ct.validUntil) {
		s.reportTokenCache(true)
		return ct.token, nil
	}
	s.reportTokenCache(false)
	v, err, _ := s.mint.Do(string(key[:]), func() (any, error) {
		if ct, ok := s.tokens.Get(key); ok && s.opts.Now().Before(ct.validUntil) {
			return ct.token, nil
		}
		ct, err := s.mintToken(context.WithoutCancel(ctx), p)
		if err != nil {
			return "", err
		}
		if s.opts.Now().Before(ct.validUntil) {
			s.tokens.Add(key, ct)
		}
		return ct.token, nil
	})
	if err != nil {
		return "", err
	}
	return v.(string), nil
}

func (s *Store) reportTokenCache(hit bool) {
	if s.opts.OnTokenCache != nil {
		s.opts.OnTokenCache(hit)
	}
}

func (s *Store) mintToken(ctx context.Context, p *credgate.Principal) (callerToken, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	names := make([]string, 0, len(p.Roles)+len(p.Grants))
	for _, r := range p.Roles {
		if !policy.Known(policy.Role(r)) {
			continue
		}
		name, err := s.ensurePolicy(ctx, p.Tenant, policy.Role(r))
		if err != nil {
			return callerToken{}, err
		}
		names = append(names, name)
	}
	notes := make([]string, 0, len(p.Grants))
	now := s.opts.Now()
	until := p.Expiry // when the token must end: the JWT's end, or the first grant's
	for _, g := range p.Grants {
		name, err := s.ensureGrantPolicy(ctx, p.Tenant, g)
		if err != nil {
			return callerToken{}, err
		}
		names, notes = append(names, name), append(notes, grantNote(g))
		if g.ExpiresAt != nil && (until.IsZero() || g.ExpiresAt.Before(until)) {
			until = *g.ExpiresAt
		}
	}
	ttl := s.opts.MaxTokenTTL
	if !p.Expiry.IsZero() && p.Expiry.Sub(now) < ttl {
		ttl = max(p.Expiry.Sub(now), 30*time.Second) // long enough for the request at hand
	}
	if !until.IsZero() && until.Sub(now) < ttl {
		ttl = max(until.Sub(now), time.Second) // a grant's end is exact, at Vault too
	}
	req := &api.TokenCreateRequest{
		Policies:        names,
		NoDefaultPolicy: true,
		TTL:             fmt.Sprintf("%ds", max(int(ttl.Seconds()), 1)),
		Type:            "batch",
		DisplayName:     "credgate",
		Metadata: map[string]string{
			"sub":    p.Subject,
			"email":  p.Email,
			"name":   p.Name,
			"tenant": p.Tenant,
			"roles":  strings.Join(p.Roles, ","),
			"grants": strings.Join(notes, ","),
		},
	}
	var secret *api.Secret
	err := s.asSelf(ctx, func(c *api.Client) (err error) {
		start := s.opts.Now()
		secret, err = c.Auth().Token().CreateWithRoleWithContext(ctx, req, s.opts.TokenRole)
		s.observe("token_create", start, err)
		return err
	})
	if err != nil {
		return callerToken{}, translate(err, credgate.EInternal)
	}
	if secret == nil || secret.Auth == nil || secret.Auth.ClientToken == "" {
		return callerToken{}, &credgate.Error{Code: credgate.EInternal, Message: "internal error", Err: errors.New("vault returned no token")}
	}
	valid := now.Add(time.Duration(secret.Auth.LeaseDuration) * time.Second)
	if !until.IsZero() && until.Before(valid) {
		valid = until
	}
	return callerToken{token: secret.Auth.ClientToken, validUntil: valid.Add(-tokenMargin)}, nil
}

// ensurePolicy writes the policy for (tenant, role) unless this process
// already wrote the same text, and returns its name.
func (s *Store) ensurePolicy(ctx context.Context, tenant string, r policy.Role) (string, error) {
	return s.ensure(ctx, policy.Name(tenant, r), s.layout.Render(tenant, r))
}

// ensure writes policy name with text unless this process already wrote
// the same text, and returns name.
func (s *Store) ensure(ctx context.Context, name, text string) (string, error) {
	sum := sha256.Sum256([]byte(text))
	if old, ok := s.policies.Get(name); ok && old == sum {
		return name, nil
	}
	err := s.asSelf(ctx, func(c *api.Client) error {
		start := s.opts.Now()
		err := c.Sys().PutPolicyWithContext(ctx, name, text)
		s.observe("policy_write", start, err)
		return err
	})
	if err != nil {
		return "", translate(err, credgate.EInternal)
	}
	s.policies.Add(name, sum)
	return name, nil
}

// Ready reports whether Vault is reachable and unsealed and credgate's own
// token is valid. Errors: BACKEND_UNAVAILABLE.
func (s *Store) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	start := s.opts.Now()
	health, err := s.own(ctx).Sys().HealthWithContext(ctx)
	s.observe("health", start, err)
	if err != nil {
		return unavailable(err)
	}
	if !health.Initialized || health.Sealed {
		return unavailable(errors.New("vault is sealed or not initialized"))
	}
	if id := s.opts.Identity; id != nil {
		if err := id.Err(); err != nil {
			return unavailable(err)
		}
	}
	err = s.asSelf(ctx, func(c *api.Client) error {
		start := s.opts.Now()
		_, err := c.Auth().Token().LookupSelfWithContext(ctx)
		s.observe("token_lookup_self", start, err)
		return err
	})
	if err != nil {
		return unavailable(fmt.Errorf("credgate's own token: %w", err))
	}
	return nil
}

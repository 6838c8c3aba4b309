package auth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/policy"
)

// IssuerConfig configures one trusted OIDC issuer.
type IssuerConfig struct {
	// Name selects the issuer by the realmname request header.
	Name string
	// URL is the issuer URL; discovery is at URL/.well-known/openid-configuration
	// and tokens must carry it as iss.
	URL string
	// Audiences: a token must name at least one of them in aud.
	Audiences []string
	// TenantClaim and RolesClaim name the claims (dotted paths such as
	// realm_access.roles are allowed) holding the tenant and the roles.
	TenantClaim string
	RolesClaim  string
	// TenantNameClaim names the claim holding the tenant's display name.
	TenantNameClaim string
	// Tenants and TenantPattern bind the issuer to the tenants it may
	// assert: a token whose tenant is neither listed nor matched by the
	// pattern (a regular expression over the whole tenant id) is refused.
	// An issuer bound to neither may assert any tenant, which is allowed
	// only when it is the one issuer configured.
	Tenants       []string
	TenantPattern string
	// Tenant binds the issuer to one tenant: its tokens act in it and
	// need no tenant claim (workload identity: Kubernetes service-account
	// tokens, CI OIDC tokens, SPIFFE JWT-SVIDs); a token that carries a
	// tenant claim naming another tenant is refused.
	Tenant string
	// GroupsClaim names the claim (dotted paths allowed) holding the
	// groups a grant may name; empty: none.
	GroupsClaim string
}

// Options configures a Verifier. Zero values take the defaults below.
type Options struct {
	Issuers []IssuerConfig
	RoleMap policy.RoleMap
	// TenantNames are display names of tenants, used when a token carries
	// no tenant name claim.
	TenantNames     map[string]string
	CacheSize       int           // verified tokens kept; default 10000
	RefreshInterval time.Duration // least time between JWKS refetches; default 30s
	HTTPClient      *http.Client  // for discovery and JWKS; default 10s timeout
	Now             func() time.Time
	// OnJWKSFetch, when set, is told about every JWKS fetch (for metrics).
	OnJWKSFetch func(issuer string, err error)
	// OnCache, when set, is told about every verified-token cache lookup.
	OnCache func(hit bool)
}

// Defaults of the claims an issuer's tokens carry.
const (
	DefaultTenantClaim     = "tenant_id"
	DefaultRolesClaim      = "roles"
	DefaultTenantNameClaim = "tenant_name"
)

// Verifier verifies bearer tokens. It is safe for concurrent use.
type Verifier struct {
	opts    Options
	byName  map[string]*issuer
	byURL   map[string]*issuer
	ordered []*issuer
	cache   *lru.Cache[[32]byte, *credgate.Principal]
}

type issuer struct {
	cfg     IssuerConfig
	opts    *Options
	pattern *regexp.Regexp // of cfg.TenantPattern

	mu       sync.Mutex
	verifier *oidc.IDTokenVerifier // nil until discovery succeeded
	lastTry  time.Time
	lastErr  error
}

// New returns a Verifier. It does not contact the issuers: discovery happens
// on first use and in Ready, so credgate can start while an identity provider
// is down and become ready when it is back.
func New(opts Options) (*Verifier, error) {
	if len(opts.Issuers) == 0 {
		return nil, errors.New("auth: no issuer configured")
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = 10000
	}
	if opts.RefreshInterval <= 0 {
		opts.RefreshInterval = 30 * time.Second
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.RoleMap == nil {
		opts.RoleMap = policy.DefaultRoleMap()
	}
	cache, err := lru.New[[32]byte, *credgate.Principal](opts.CacheSize)
	if err != nil {
		return nil, err
	}
	v := &Verifier{opts: opts, byName: map[string]*issuer{}, byURL: map[string]*issuer{}, cache: cache}
	for _, c := range opts.Issuers {
		if c.URL == "" || len(c.Audiences) == 0 {
			return nil, fmt.Errorf("auth: issuer %q needs a URL and at least one audience", c.Name)
		}
		if c.TenantClaim == "" {
			c.TenantClaim = DefaultTenantClaim
		}
		if c.RolesClaim == "" {
			c.RolesClaim = DefaultRolesClaim
		}
		if c.TenantNameClaim == "" {
			c.TenantNameClaim = DefaultTenantNameClaim
		}
		if len(opts.Issuers) > 1 && len(c.Tenants) == 0 && c.TenantPattern == "" && c.Tenant == "" {
			return nil, fmt.Errorf("auth: issuer %q: with several issuers, each must say which tenants it may assert (tenant, tenants or tenant_pattern)", c.URL)
		}
		if c.Tenant != "" && (len(c.Tenants) > 0 || c.TenantPattern != "" || !credgate.ValidID(c.Tenant)) {
			return nil, fmt.Errorf("auth: issuer %q: tenant binds it to one valid tenant id, and goes without tenants and tenant_pattern", c.URL)
		}
		pattern, err := compileTenantPattern(c.TenantPattern)
		if err != nil {
			return nil, fmt.Errorf("auth: issuer %q: tenant_pattern: %w", c.URL, err)
		}
		iss := &issuer{cfg: c, opts: &v.opts, pattern: pattern}
		if _, dup := v.byURL[c.URL]; dup {
			return nil, fmt.Errorf("auth: issuer %q configured twice", c.URL)
		}
		v.byURL[c.URL] = iss
		if c.Name != "" {
			v.byName[c.Name] = iss
		}
		v.ordered = append(v.ordered, iss)
	}
	return v, nil
}

func unauthorized(format string, args ...any) *credgate.Error {
	return credgate.Errorf(credgate.EUnauthorized, format, args...)
}

// Verify verifies raw (the bearer token) and returns its principal. realm,
// when not empty, names the issuer to use (the realmname header); otherwise
// the token's iss picks it. Every failure is an UNAUTHORIZED *credgate.Error
// whose message never repeats the token; a token that verifies but carries
// no usable tenant is INSUFFICIENT_PERMISSIONS; an issuer whose discovery
// document cannot be fetched is BACKEND_UNAVAILABLE.
func (v *Verifier) Verify(ctx context.Context, raw, realm string) (*credgate.Principal, error) {
	if raw == "" {
		return nil, unauthorized("missing bearer token")
	}
	key := cacheKey(realm, raw)
	if p, ok := v.cache.Get(key); ok {
		if v.opts.Now().Before(p.Expiry) {
			v.reportCache(true)
			return p, nil
		}
		v.cache.Remove(key)
	}
	v.reportCache(false)

	iss, err := v.pick(raw, realm)
	if err != nil {
		return nil, err
	}
	p, err := iss.verify(ctx, raw)
	if err != nil {
		return nil, err
	}
	v.cache.Add(key, p)
	return p, nil
}

// cacheKey names a token verified for realm in the cache: a hash of both,
// put together on the stack (a token is most of a kilobyte; every request
// asks).
func cacheKey(realm, raw string) [32]byte {
	var buf [2048]byte
	b := append(append(append(buf[:0], realm...), 0), raw...)
	return sha256.Sum256(b)
}

func (v *Verifier) reportCache(hit bool) {
	if v.opts.OnCache != nil {
		v.opts.OnCache(hit)
	}
}

func (v *Verifier) pick(raw, realm string) (*issuer, error) {
	if realm != "" {
		iss, ok := v.byName[realm]
		if !ok {
			// The same answer as a bad token: a realm's name is not
			// something to probe for.
			return nil, unauthorized("token is invalid")
		}
		return iss, nil
	}
	claimedIss, err := unverifiedIssuer(raw)
	if err != nil {
		return nil, unauthorized("malformed token")
	}
	iss, ok := v.byURL[claimedIss]
	if !ok {
		return nil, unauthorized("token issuer is not trusted")
	}
	return iss, nil
}

// payload is the payload of raw, a JWS in compact form, decoded and not
// verified.
func payload(raw string) ([]byte, error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, errors.New("not a JWS compact token")
	}
	return base64.RawURLEncoding.DecodeString(parts[1])
}

// unverifiedIssuer reads iss from the payload without verifying anything; it
// only chooses which issuer's keys will verify the token.
func unverifiedIssuer(raw string) (string, error) {
	b, err := payload(raw)
	if err != nil {
		return "", err
	}
	var c struct {
		Iss string `json:"iss"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return "", err
	}
	return c.Iss, nil
}

// Claims returns the claims of raw as it carries them (a JSON object). For
// a token Verify accepted they are the verified claims: the payload go-oidc
// checks the signature of is the one it parsed, byte for byte. Principals
// do not keep them (about 0.4 KB each in the cache, for /debug/auth alone).
func (v *Verifier) Claims(raw string) (json.RawMessage, error) {
	b, err := payload(raw)
	if err != nil || !json.Valid(b) {
		return nil, unauthorized("malformed token")
	}
	return b, nil
}

// Ready discovers every issuer not yet discovered and reports the first
// failure.
func (v *Verifier) Ready(ctx context.Context) error {
	for _, iss := range v.ordered {
		if _, err := iss.discover(ctx, true); err != nil {
			return fmt.Errorf("issuer %s: %w", iss.cfg.URL, err)
		}
	}
	return nil
}

// discoverRetry is how long a failed discovery is remembered before a
// request may try again.
const discoverRetry = 5 * time.Second

func (i *issuer) discover(ctx context.Context, force bool) (*oidc.IDTokenVerifier, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.verifier != nil {
		return i.verifier, nil
	}
	now := i.opts.Now()
	if !force && i.lastErr != nil && now.Sub(i.lastTry) < discoverRetry {
		return nil, i.lastErr
	}
	i.lastTry = now
	ctx = oidc.ClientContext(ctx, i.opts.HTTPClient)
	provider, err := oidc.NewProvider(ctx, i.cfg.URL)
	if err != nil {
		i.lastErr = err
		return nil, err
	}
	var meta struct {
		JWKSURI string `json:"jwks_uri"`
	}
	if err := provider.Claims(&meta); err != nil || meta.JWKSURI == "" {
		i.lastErr = errors.New("discovery document has no jwks_uri")
		return nil, i.lastErr
	}
	ks := &keySet{url: meta.JWKSURI, client: i.opts.HTTPClient, minInterval: i.opts.RefreshInterval, now: i.opts.Now}
	if f := i.opts.OnJWKSFetch; f != nil {
		name := i.cfg.URL
		ks.onFetch = func(err error) { f(name, err) }
	}
	i.verifier = oidc.NewVerifier(i.cfg.URL, ks, &oidc.Config{
		SkipClientIDCheck:    true, // several audiences may be accepted; checked below
		SupportedSigningAlgs: algNames(),
		Now:                  i.opts.Now,
	})
	i.lastErr = nil
	return i.verifier, nil
}

func (i *issuer) verify(ctx context.Context, raw string) (*credgate.Principal, error) {
	ov, err := i.discover(ctx, false)
	if err != nil {
		// The identity provider cannot be reached, so the token cannot be
		// checked yet: not the caller's fault, and worth a retry.
		return nil, &credgate.Error{Code: credgate.EBackendUnavailable, Message: "the identity provider is unavailable; retry later", Err: err}
	}
	tok, err := ov.Verify(ctx, raw)
	if err != nil {
		var expired *oidc.TokenExpiredError
		if errors.As(err, &expired) {
			return nil, unauthorized("token is expired")
		}
		return nil, unauthorized("token is invalid")
	}
	if !slices.ContainsFunc(tok.Audience, func(a string) bool { return slices.Contains(i.cfg.Audiences, a) }) {
		return nil, unauthorized("token audience is not accepted")
	}
	var claims map[string]any
	if err := tok.Claims(&claims); err != nil {
		return nil, unauthorized("token claims are malformed")
	}
	p, err := i.principal(claims, i.opts.Now())
	if err != nil {
		return nil, err
	}
	p.Issuer = tok.Issuer
	return p, nil
}

package main

import (
	"bytes"
	"cmp"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/auth"
	"github.com/credgate/credgate/httpapi"
	"github.com/credgate/credgate/monitor"
	"github.com/credgate/credgate/outbound"
	"github.com/credgate/credgate/policy"
	"github.com/credgate/credgate/rotation"
	"github.com/credgate/credgate/vaultlogin"
	"github.com/credgate/credgate/vaultstore"
	"github.com/credgate/credgate/webhook"
)

// Config is credgate's configuration: a YAML file, then the environment.
type Config struct {
	Listen string `yaml:"listen"`
	// PublicURL is where browsers and providers reach credgate (the OAuth2
	// redirect URI is PublicURL/oauth/callback); default http://<listen>.
	PublicURL      string          `yaml:"public_url"`
	OAuth          OAuthConfig     `yaml:"oauth"`
	CORS           CORSConfig      `yaml:"cors"`
	LogLevel       string          `yaml:"log_level"`
	TrustedProxies []string        `yaml:"trusted_proxies"`
	MaxBodyBytes   int64           `yaml:"max_body_bytes"`
	RequestTimeout time.Duration   `yaml:"request_timeout"`
	ShutdownGrace  time.Duration   `yaml:"shutdown_grace"`
	ShutdownDrain  time.Duration   `yaml:"shutdown_drain"`
	TLS            ListenerTLS     `yaml:"tls"`
	Vault          VaultConfig     `yaml:"vault"`
	Auth           AuthConfig      `yaml:"auth"`
	RateLimit      RateLimitConfig `yaml:"rate_limit"`
	Limits         LimitsConfig    `yaml:"limits"`
	Usage          UsageConfig     `yaml:"usage"`
	Outbound       OutboundConfig  `yaml:"outbound"`
	Monitor        MonitorConfig   `yaml:"monitor"`
	Webhooks       WebhooksConfig  `yaml:"webhooks"`
	Rotation       RotationConfig  `yaml:"rotation"`
	Grants         []GrantConfig   `yaml:"grants"`
}

// MonitorConfig times the scan of every credential (expiry notices,
// automatic refresh, scheduled revocation), which one replica at a time
// makes. A pass starts at most every Interval and examines at most Rate
// credentials a second (about one Vault read each).
type MonitorConfig struct {
	Disabled bool          `yaml:"disabled"`
	Interval time.Duration `yaml:"interval"`
	Rate     float64       `yaml:"rate"`
	LeaseTTL time.Duration `yaml:"lease_ttl"`
	// ExpiryThresholds are the days before expiresAt at which
	// credential.expiring is sent; TenantThresholds override them.
	ExpiryThresholds []int            `yaml:"expiry_thresholds"`
	TenantThresholds map[string][]int `yaml:"tenant_thresholds"`
	// RefreshWorkers bounds the automatic refreshes at once; a tenant
	// gets at most half.
	RefreshWorkers int `yaml:"refresh_workers"`
}

// CORSConfig lets browser pages of the listed origins call the API
// (exact scheme://host[:port]; none by default, so browsers get no CORS
// headers at all).
type CORSConfig struct {
	AllowedOrigins []string `yaml:"allowed_origins"`
}

// OAuthConfig governs connects (the authorization-code flow): the URL
// prefixes a connect may send the browser to afterwards (redirectAfter;
// none by default) and how long a connect's state waits for the
// provider's redirect.
type OAuthConfig struct {
	RedirectAllow []string      `yaml:"redirect_allow"`
	StateTTL      time.Duration `yaml:"state_ttl"`
}

// publicURL is where browsers reach credgate.
func (c Config) publicURL() string {
	if c.PublicURL != "" {
		return strings.TrimSuffix(c.PublicURL, "/")
	}
	return "http://" + c.Listen
}

// RotationConfig is the rotation schedule and the driving of rotations
// through rotators: a default policy (every, keep_previous; none unless
// set) and a tenant's own, the overdue period after a due date, how a
// failed step is retried (backoff doubled up to an hour, max_attempts
// tries) and how many rotations are driven at once (a tenant gets half).
type RotationConfig struct {
	RotationPolicyConfig `yaml:",inline"`
	Backoff              time.Duration                   `yaml:"backoff"`
	MaxAttempts          int                             `yaml:"max_attempts"`
	Workers              int                             `yaml:"workers"`
	Tenants              map[string]RotationPolicyConfig `yaml:"tenants"`
}

// RotationPolicyConfig is a default rotation policy (credgate.RotationPolicy)
// and, per tenant, its overdue period.
type RotationPolicyConfig struct {
	Every        string        `yaml:"every"`
	KeepPrevious string        `yaml:"keep_previous"`
	OverdueAfter time.Duration `yaml:"overdue_after"`
}

// policyOf returns tenant's default rotation policy, or nil.
func (r RotationConfig) policyOf(tenant string) *credgate.RotationPolicy {
	p := r.RotationPolicyConfig
	if t, ok := r.Tenants[tenant]; ok && t.Every != "" {
		p = t
	}
	if p.Every == "" {
		return nil
	}
	return &credgate.RotationPolicy{Every: p.Every, KeepPrevious: p.KeepPrevious}
}

// overdueOf returns tenant's overdue period.
func (r RotationConfig) overdueOf(tenant string) time.Duration {
	if t, ok := r.Tenants[tenant]; ok && t.OverdueAfter > 0 {
		return t.OverdueAfter
	}
	return r.RotationPolicyConfig.OverdueAfter
}

// WebhooksConfig times webhook deliveries: Timeout per attempt; after a
// failure Backoff, doubled each time up to MaxBackoff; given up after
// MaxAttempts or RetryFor. Workers bound the events delivered at once (a
// tenant gets at most half); a subscription whose every delivery failed
// for DisableAfter is disabled.
type WebhooksConfig struct {
	Workers      int           `yaml:"workers"`
	DisableAfter time.Duration `yaml:"disable_after"`
	Timeout      time.Duration `yaml:"timeout"`
	Backoff      time.Duration `yaml:"backoff"`
	MaxBackoff   time.Duration `yaml:"max_backoff"`
	RetryFor     time.Duration `yaml:"retry_for"`
	MaxAttempts  int           `yaml:"max_attempts"`
}

// OutboundConfig governs the requests credgate sends on a tenant's behalf
// (OAuth2 token endpoints, webhook receivers): non-public addresses are
// refused unless Allow lists them (CIDR prefixes, addresses or
// address:port). Proxy, when set, carries every such request but those
// NoProxy exempts (NO_PROXY's syntax); the environment's HTTP(S)_PROXY is
// never used for them. CAFile adds certificate authorities (PEM) to the
// system's for these requests.
type OutboundConfig struct {
	Allow   []string `yaml:"allow"`
	Proxy   string   `yaml:"proxy"`
	NoProxy string   `yaml:"no_proxy"`
	CAFile  string   `yaml:"ca_file"`
}

// guard returns the outbound guard this configuration describes.
func (o OutboundConfig) guard() (*outbound.Guard, error) {
	opts := outbound.Options{Allow: o.Allow, Proxy: o.Proxy, NoProxy: o.NoProxy}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("outbound.ca_file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("outbound.ca_file: %s holds no PEM certificate", o.CAFile)
		}
		opts.RootCAs = pool
	}
	return outbound.New(opts)
}

// RateLimitConfig is the per-tenant limit and where its counters live.
type RateLimitConfig struct {
	Default int            `yaml:"default"` // requests per minute per tenant
	Tenants map[string]int `yaml:"tenants"` // overrides
	Redis   RedisConfig    `yaml:"redis"`
	// OnStoreError is what a request gets when Redis gives no answer:
	// allow (the default: fail open) or deny (503).
	OnStoreError string `yaml:"on_store_error"`
}

// LimitsConfig bounds what each tenant keeps. In default, -1 is no
// bound; in a tenant's entry, a field left out (0) is default's and -1 is
// no bound.
type LimitsConfig struct {
	Default credgate.TenantLimits            `yaml:"default"`
	Tenants map[string]credgate.TenantLimits `yaml:"tenants"`
}

// UsageConfig holds the thresholds of unusual use (credgate.UsageRules):
// the default's, and a tenant's where it differs (a field left out is the
// default's).
type UsageConfig struct {
	credgate.UsageRules `yaml:",inline"`
	Tenants             map[string]credgate.UsageRules `yaml:"tenants"`
	// PendingReads bounds the reads a replica gathers between two writes
	// of the ledgers, as (reader, credential) pairs of about 0.5 KB each;
	// 0: vaultstore.DefaultPendingReads.
	PendingReads int `yaml:"pending_reads"`
}

// maxPendingReads bounds usage.pending_reads: about 0.5 GB of a replica's
// memory.
const maxPendingReads = 1_000_000

// of returns tenant's thresholds.
func (u UsageConfig) of(tenant string) credgate.UsageRules {
	if t, ok := u.Tenants[tenant]; ok {
		return t.Or(u.UsageRules)
	}
	return u.UsageRules
}

// maxWebhookLimit bounds limits.*.webhooks: every event is sent to each.
const maxWebhookLimit = 100

// of returns tenant's limits (credgate's 0: no bound).
func (l LimitsConfig) of(tenant string) credgate.TenantLimits {
	out := l.Default
	if t, ok := l.Tenants[tenant]; ok {
		out = t.Or(out)
	}
	return out.Bounds()
}

// check names what is wrong with l.
func (l LimitsConfig) check(bad func(string, ...any)) {
	checkOne := func(key string, t credgate.TenantLimits, inherit bool) {
		low := 1
		if inherit {
			low = 0
		}
		for _, n := range []int64{int64(t.Services), int64(t.Credentials), int64(t.Webhooks), t.Bytes} {
			if n != -1 && n < int64(low) {
				bad("%s: each limit at least %d, or -1 for no bound", key, low)
				return
			}
		}
		if t.Webhooks > maxWebhookLimit || t.Webhooks == -1 {
			bad("%s.webhooks: %d at most (every event is sent to each)", key, maxWebhookLimit)
		}
	}
	checkOne("limits.default", l.Default, false)
	for t, lim := range l.Tenants {
		if !validTenant(t) {
			bad("limits.tenants.%s: not a valid tenant id", t)
			continue
		}
		checkOne("limits.tenants."+t, lim, true)
	}
}

// RedisConfig names the Redis shared by all replicas; empty: in memory.
type RedisConfig struct {
	Address  string `yaml:"address"` // host:port; CREDGATE_REDIS_ADDR
	Username string `yaml:"username"`
	DB       int    `yaml:"db"`
	TLS      bool   `yaml:"tls"`
	// Password comes from CREDGATE_REDIS_PASSWORD only, never the file.
	Password string `yaml:"-"`
}

// ListenerTLS makes credgate serve HTTPS; both files or neither.
type ListenerTLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// VaultTLS says how credgate trusts Vault and proves itself to it. The
// VAULT_CACERT, VAULT_CLIENT_CERT, VAULT_CLIENT_KEY, VAULT_TLS_SERVER_NAME
// and VAULT_SKIP_VERIFY variables win over these.
type VaultTLS struct {
	CACert     string `yaml:"ca_cert"`
	ClientCert string `yaml:"client_cert"`
	ClientKey  string `yaml:"client_key"`
	ServerName string `yaml:"server_name"`
	SkipVerify bool   `yaml:"skip_verify"`
}

// VaultConfig says how credgate reaches Vault. The standard VAULT_*
// variables (VAULT_ADDR, VAULT_TOKEN, VAULT_CACERT, VAULT_CLIENT_CERT, ...)
// are honoured and win over the file.
type VaultConfig struct {
	Address string `yaml:"address"`
	// Auth is how credgate logs itself in to Vault.
	Auth VaultAuth `yaml:"auth"`
	// TokenFile is short for auth.method token_file with this file.
	TokenFile   string        `yaml:"token_file"`
	Mount       string        `yaml:"mount"`
	TokenRole   string        `yaml:"token_role"`
	MaxTokenTTL time.Duration `yaml:"max_token_ttl"`
	Timeout     time.Duration `yaml:"timeout"`
	// ServiceCacheTTL bounds how long a replica trusts what it remembers
	// about a service (that it exists, which credential it serves); 0
	// remembers nothing.
	ServiceCacheTTL time.Duration `yaml:"service_cache_ttl"`
	// InventoryCacheMB bounds, in MiB, the inventory bases a replica keeps
	// (vaultstore/basecache.go); 0 keeps none.
	InventoryCacheMB int      `yaml:"inventory_cache_mb"`
	TLS              VaultTLS `yaml:"tls"`
	// Token is VAULT_TOKEN; never in the file.
	Token string `yaml:"-"`
}

// VaultAuth is credgate's own login to Vault. Method is one of token
// (VAULT_TOKEN), token_file (a file kept fresh by Vault Agent or Proxy,
// read again when it changes), approle, jwt and kubernetes; when it is
// empty, token_file is used if a file is named, token otherwise. No secret
// goes in the file: tokens, secret ids and JWTs are read from files.
type VaultAuth struct {
	Method string `yaml:"method"`
	// Mount of the auth method; default approle, jwt or kubernetes.
	Mount string `yaml:"mount"`
	// TokenFile holds the token (token_file).
	TokenFile string `yaml:"token_file"`
	// Role is the jwt or kubernetes role credgate logs in as.
	Role string `yaml:"role"`
	// JWTFile holds the JWT (jwt; kubernetes defaults to the pod's
	// service-account token).
	JWTFile string `yaml:"jwt_file"`
	// RoleID or RoleIDFile, and SecretIDFile (approle); SecretIDWrapped
	// says the file holds a response-wrapping token around the secret id.
	RoleID          string `yaml:"role_id"`
	RoleIDFile      string `yaml:"role_id_file"`
	SecretIDFile    string `yaml:"secret_id_file"`
	SecretIDWrapped bool   `yaml:"secret_id_wrapped"`
}

// Auth methods of VaultAuth.Method.
const (
	authToken      = "token"
	authTokenFile  = "token_file"
	authAppRole    = "approle"
	authJWT        = "jwt"
	authKubernetes = "kubernetes"
)

// method is the login method the configuration names, with the defaults
// applied.
func (a VaultAuth) method(legacyTokenFile string) string {
	switch {
	case a.Method != "":
		return a.Method
	case a.TokenFile != "" || legacyTokenFile != "":
		return authTokenFile
	}
	return authToken
}

// LoginMethod returns credgate's login method; Validate has checked it.
func (v VaultConfig) LoginMethod() vaultlogin.LoginMethod {
	a := v.Auth
	switch a.method(v.TokenFile) {
	case authTokenFile:
		return vaultlogin.TokenFile{Path: cmp.Or(a.TokenFile, v.TokenFile)}
	case authAppRole:
		return &vaultlogin.AppRole{Mount: a.Mount, RoleID: a.RoleID, RoleIDFile: a.RoleIDFile, SecretIDFile: a.SecretIDFile, SecretIDWrapped: a.SecretIDWrapped}
	case authJWT:
		return vaultlogin.JWT{Mount: a.Mount, Role: a.Role, Path: a.JWTFile}
	case authKubernetes:
		return vaultlogin.Kubernetes{Mount: a.Mount, Role: a.Role, Path: a.JWTFile}
	}
	return vaultlogin.StaticToken{Token: v.Token}
}

// validate reports what is missing for the chosen method.
func (a VaultAuth) validate(v VaultConfig, bad func(string, ...any)) {
	m := a.method(v.TokenFile)
	need := func(field, value string) {
		if value == "" {
			bad("vault.auth.%s: required with method %s", field, m)
		}
	}
	switch m {
	case authToken:
		if v.Token == "" {
			bad("vault token: set VAULT_TOKEN, or choose another vault.auth.method (token_file, approle, jwt, kubernetes)")
		}
	case authTokenFile:
		if a.TokenFile != "" && v.TokenFile != "" && a.TokenFile != v.TokenFile {
			bad("vault.token_file and vault.auth.token_file name different files")
		}
	case authAppRole:
		if (a.RoleID == "") == (a.RoleIDFile == "") {
			bad("vault.auth: approle needs role_id or role_id_file (one of them)")
		}
		need("secret_id_file", a.SecretIDFile)
	case authJWT:
		need("role", a.Role)
		need("jwt_file", a.JWTFile)
	case authKubernetes:
		need("role", a.Role)
	default:
		bad("vault.auth.method: %q is not one of token, token_file, approle, jwt, kubernetes", a.Method)
	}
	if strings.Contains(strings.Trim(a.Mount, "/"), "..") {
		bad("vault.auth.mount: %q is not a mount path", a.Mount)
	}
}

// AuthConfig lists the trusted issuers and maps their role names.
type AuthConfig struct {
	Issuers []IssuerConfig      `yaml:"issuers"`
	RoleMap map[string][]string `yaml:"role_map"`
	// TenantNames are display names (tenant.name in answers) for tokens
	// that carry no tenant name claim.
	TenantNames         map[string]string `yaml:"tenant_names"`
	CacheSize           int               `yaml:"cache_size"`
	JWKSRefreshInterval time.Duration     `yaml:"jwks_refresh_interval"`
}

// IssuerConfig is one trusted OIDC issuer (one realm).
type IssuerConfig struct {
	Name            string   `yaml:"name"`
	URL             string   `yaml:"url"`
	Audiences       []string `yaml:"audiences"`
	TenantClaim     string   `yaml:"tenant_claim"`
	RolesClaim      string   `yaml:"roles_claim"`
	TenantNameClaim string   `yaml:"tenant_name_claim"`
	// Tenants and TenantPattern bind the issuer to the tenants it may
	// assert; required of each issuer when there are several (or Tenant).
	Tenants       []string `yaml:"tenants"`
	TenantPattern string   `yaml:"tenant_pattern"`
	// Tenant binds the issuer to one tenant, whose tokens then need no
	// tenant claim (workload identity).
	Tenant string `yaml:"tenant"`
	// GroupsClaim names the claim of groups that grants may name.
	GroupsClaim string `yaml:"groups_claim"`
}

// GrantConfig is a grant kept in configuration (in git, by a platform
// team): a role on named integrations for one subject or group of tenant.
type GrantConfig struct {
	Tenant       string     `yaml:"tenant"`
	Subject      string     `yaml:"subject"`
	Group        string     `yaml:"group"`
	Role         string     `yaml:"role"`
	Integrations []string   `yaml:"integrations"`
	ExpiresAt    *time.Time `yaml:"expires_at"`
	Description  string     `yaml:"description"`
}

// DefaultConfig returns the configuration credgate runs with when nothing
// is said.
func DefaultConfig() Config {
	return Config{
		Listen:       "127.0.0.1:8080",
		LogLevel:     "info",
		MaxBodyBytes: 1 << 20,
		// Every request is answered within this, Vault calls included.
		RequestTimeout: httpapi.DefaultRequestTimeout,
		ShutdownGrace:  20 * time.Second,
		ShutdownDrain:  2 * time.Second,
		Vault: VaultConfig{
			Mount:       policy.DefaultMount,
			TokenRole:   policy.DefaultTokenRole,
			MaxTokenTTL: vaultstore.DefaultMaxTokenTTL,
			Timeout:     vaultstore.DefaultTimeout,
			// What a replica remembers of a service, at most this long.
			ServiceCacheTTL: vaultstore.DefaultServiceCacheTTL,
			// The inventory bases a replica keeps, at most this many MiB.
			InventoryCacheMB: vaultstore.DefaultInventoryCacheBytes >> 20,
		},
		Auth:      AuthConfig{CacheSize: 10000, JWKSRefreshInterval: 30 * time.Second},
		RateLimit: RateLimitConfig{Default: 100},
		Limits:    LimitsConfig{Default: credgate.DefaultTenantLimits},
		Usage:     UsageConfig{UsageRules: credgate.DefaultUsageRules},
		Monitor: MonitorConfig{
			Interval: monitor.DefaultInterval, Rate: monitor.DefaultRate, LeaseTTL: monitor.DefaultLeaseTTL,
			ExpiryThresholds: credgate.DefaultExpiryThresholds, RefreshWorkers: monitor.DefaultWorkers,
		},
		Rotation: RotationConfig{
			RotationPolicyConfig: RotationPolicyConfig{OverdueAfter: credgate.DefaultRotationOverdue}, Backoff: credgate.DefaultRotationBackoff,
			MaxAttempts: credgate.DefaultRotationAttempts, Workers: rotation.DefaultWorkers,
		},
		Webhooks: WebhooksConfig{
			Timeout: webhook.DefaultTimeout, Backoff: webhook.DefaultBackoff, MaxBackoff: webhook.DefaultMaxBackoff,
			RetryFor: webhook.DefaultRetryFor, MaxAttempts: webhook.DefaultMaxAttempts,
			Workers: webhook.DefaultWorkers, DisableAfter: credgate.DefaultDisableAfter,
		},
	}
}

// LoadConfig reads path (when not empty) over the defaults, then the
// environment: CREDGATE_LISTEN, CREDGATE_LOG_LEVEL, VAULT_ADDR, VAULT_TOKEN,
// and CREDGATE_OIDC_ISSUER with CREDGATE_OIDC_AUDIENCE for a single issuer.
func LoadConfig(path string, getenv func(string) string) (Config, error) {
	cfg := DefaultConfig()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return cfg, err
		}
		if len(bytes.TrimSpace(b)) > 0 { // an empty file means all defaults
			dec := yaml.NewDecoder(bytes.NewReader(b))
			dec.KnownFields(true) // a typo in a key is an error, not a silent default
			if err := dec.Decode(&cfg); err != nil {
				return cfg, fmt.Errorf("%s: %w", path, err)
			}
		}
	}
	if v := getenv("CREDGATE_LISTEN"); v != "" {
		cfg.Listen = v
	}
	if v := getenv("CREDGATE_PUBLIC_URL"); v != "" {
		cfg.PublicURL = v
	}
	if v := getenv("CREDGATE_LOG_LEVEL"); v != "" {
		cfg.LogLevel = v
	}
	if v := getenv("VAULT_ADDR"); v != "" {
		cfg.Vault.Address = v
	}
	cfg.Vault.Token = getenv("VAULT_TOKEN")
	if cfg.Vault.Token != "" && cfg.Vault.Auth.Method == "" {
		cfg.Vault.Auth.Method = authToken // VAULT_TOKEN wins over a token file
	}
	if v := getenv("CREDGATE_REDIS_ADDR"); v != "" {
		cfg.RateLimit.Redis.Address = v
	}
	cfg.RateLimit.Redis.Password = getenv("CREDGATE_REDIS_PASSWORD")
	if iss := getenv("CREDGATE_OIDC_ISSUER"); iss != "" {
		cfg.Auth.Issuers = append(cfg.Auth.Issuers, IssuerConfig{Name: "default", URL: iss, Audiences: strings.Split(getenv("CREDGATE_OIDC_AUDIENCE"), ",")})
	}
	return cfg, nil
}

// Validate reports every problem of the configuration at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen: %q is not host:port", c.Listen)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log_level: %q is not one of debug, info, warn, error", c.LogLevel)
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		bad("tls: cert_file and key_file go together")
	}
	for name, f := range map[string]string{"tls.cert_file": c.TLS.CertFile, "tls.key_file": c.TLS.KeyFile,
		"vault.tls.ca_cert": c.Vault.TLS.CACert, "vault.tls.client_cert": c.Vault.TLS.ClientCert, "vault.tls.client_key": c.Vault.TLS.ClientKey} {
		if f != "" {
			if _, err := os.Stat(f); err != nil {
				bad("%s: %v", name, err)
			}
		}
	}
	if (c.Vault.TLS.ClientCert == "") != (c.Vault.TLS.ClientKey == "") {
		bad("vault.tls: client_cert and client_key go together")
	}
	if c.RequestTimeout < time.Second || c.RequestTimeout > 5*time.Minute {
		bad("request_timeout: 1s to 5m")
	}
	if c.MaxBodyBytes <= 0 {
		bad("max_body_bytes: must be positive")
	}
	if c.ShutdownGrace <= 0 {
		bad("shutdown_grace: must be positive")
	}
	if c.ShutdownDrain < 0 {
		bad("shutdown_drain: must not be negative")
	}
	if u, err := url.Parse(c.Vault.Address); c.Vault.Address == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		bad("vault.address (or VAULT_ADDR): %q is not an http(s) URL", c.Vault.Address)
	}
	c.Vault.Auth.validate(c.Vault, bad)
	if c.Vault.Mount == "" || strings.Contains(strings.Trim(c.Vault.Mount, "/"), "..") {
		bad("vault.mount: %q is not a mount path", c.Vault.Mount)
	}
	if c.Vault.TokenRole == "" {
		bad("vault.token_role: required")
	}
	if c.Vault.MaxTokenTTL < time.Minute {
		bad("vault.max_token_ttl: at least 1m")
	}
	if c.Vault.Timeout <= 0 {
		bad("vault.timeout: must be positive")
	}
	if c.Vault.ServiceCacheTTL < 0 || c.Vault.ServiceCacheTTL > time.Minute {
		bad("vault.service_cache_ttl: from 0 (remember nothing) to 1m")
	}
	if c.Vault.InventoryCacheMB < 0 || c.Vault.InventoryCacheMB > 4096 {
		bad("vault.inventory_cache_mb: from 0 (keep none) to 4096")
	}
	if len(c.Auth.Issuers) == 0 {
		bad("auth.issuers: at least one issuer (or CREDGATE_OIDC_ISSUER)")
	}
	names := map[string]bool{}
	for i, iss := range c.Auth.Issuers {
		u, err := url.Parse(iss.URL)
		if err != nil || (u.Scheme != "https" && !(u.Scheme == "http" && isLoopbackHost(u.Hostname()))) {
			bad("auth.issuers[%d].url: %q must be https (http only on a loopback host)", i, iss.URL)
		}
		if len(iss.Audiences) == 0 || slicesHasEmpty(iss.Audiences) {
			bad("auth.issuers[%d].audiences: at least one, none empty", i)
		}
		if len(c.Auth.Issuers) > 1 && len(iss.Tenants) == 0 && iss.TenantPattern == "" && iss.Tenant == "" {
			bad("auth.issuers[%d]: with several issuers, each must say which tenants it may assert (tenant, tenants or tenant_pattern)", i)
		}
		if iss.Tenant != "" && (!validTenant(iss.Tenant) || len(iss.Tenants) > 0 || iss.TenantPattern != "") {
			bad("auth.issuers[%d].tenant: one valid tenant id, without tenants or tenant_pattern", i)
		}
		for _, t := range iss.Tenants {
			if !validTenant(t) {
				bad("auth.issuers[%d].tenants: %q is not a valid tenant id", i, t)
			}
		}
		if iss.TenantPattern != "" {
			if _, err := regexp.Compile(iss.TenantPattern); err != nil {
				bad("auth.issuers[%d].tenant_pattern: %v", i, err)
			}
		}
		if iss.Name != "" && names[iss.Name] {
			bad("auth.issuers[%d].name: %q used twice", i, iss.Name)
		}
		names[iss.Name] = true
	}
	for _, err := range c.roleMap().Validate() {
		errs = append(errs, fmt.Errorf("auth.role_map: %w", err))
	}
	for t, name := range c.Auth.TenantNames {
		if !validTenant(t) || strings.TrimSpace(name) == "" || len(name) > 200 {
			bad("auth.tenant_names.%s: a valid tenant id and a name of 1 to 200 bytes", t)
		}
	}
	if c.Auth.CacheSize <= 0 {
		bad("auth.cache_size: must be positive")
	}
	if c.Auth.JWKSRefreshInterval < time.Second {
		bad("auth.jwks_refresh_interval: at least 1s")
	}
	if c.RateLimit.Default < 1 {
		bad("rate_limit.default: at least 1 request per minute")
	}
	for t, n := range c.RateLimit.Tenants {
		if n < 1 || !validTenant(t) {
			bad("rate_limit.tenants.%s: a valid tenant id and at least 1 request per minute", t)
		}
	}
	c.Limits.check(bad)
	if why := c.Usage.UsageRules.Check(); why != "" {
		bad("usage: %s", why)
	}
	for t, r := range c.Usage.Tenants {
		if why := r.Or(c.Usage.UsageRules).Check(); why != "" || !validTenant(t) {
			bad("usage.tenants.%s: a valid tenant id; %s", t, why)
		}
	}
	if n := c.Usage.PendingReads; n < 0 || n > maxPendingReads {
		bad("usage.pending_reads: 0 (the default, %d) to %d reads, not %d", vaultstore.DefaultPendingReads, maxPendingReads, n)
	}
	checkPolicy := func(key string, p RotationPolicyConfig) {
		if p.Every == "" && p.KeepPrevious == "" {
			return
		}
		fe := credgate.FieldErrors{}
		(&credgate.RotationPolicy{Every: p.Every, KeepPrevious: p.KeepPrevious}).Check(fe, key)
		for f, why := range fe {
			bad("%s: %s", f, why)
		}
	}
	checkPolicy("rotation", c.Rotation.RotationPolicyConfig)
	for t, p := range c.Rotation.Tenants {
		if !validTenant(t) {
			bad("rotation.tenants.%s: not a valid tenant id", t)
		}
		checkPolicy("rotation.tenants."+t, p)
	}
	if c.Rotation.OverdueAfter <= 0 || c.Rotation.Backoff < time.Second || c.Rotation.MaxAttempts < 1 || c.Rotation.Workers < 1 {
		bad("rotation: overdue_after above 0, backoff at least 1s, max_attempts and workers at least 1")
	}
	if _, err := c.Outbound.guard(); err != nil {
		errs = append(errs, err)
	}
	if e := c.RateLimit.OnStoreError; e != "" && e != "allow" && e != "deny" {
		bad("rate_limit.on_store_error: allow or deny, not %q", e)
	}
	if a := c.RateLimit.Redis.Address; a != "" {
		if _, _, err := net.SplitHostPort(a); err != nil {
			bad("rate_limit.redis.address: %q is not host:port", a)
		}
	}
	if u, err := url.Parse(c.publicURL()); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		bad("public_url: an absolute http(s) URL, not %q", c.PublicURL)
	}
	for _, p := range c.OAuth.RedirectAllow {
		if u, err := url.Parse(p); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			bad("oauth.redirect_allow: %q is not an absolute http(s) URL prefix", p)
		}
	}
	for _, o := range c.CORS.AllowedOrigins {
		if u, err := url.Parse(o); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || strings.HasSuffix(o, "/") {
			bad("cors.allowed_origins: %q is not an origin (scheme://host[:port])", o)
		}
	}
	if c.OAuth.StateTTL < 0 || c.OAuth.StateTTL > time.Hour {
		bad("oauth.state_ttl: at most 1h (0: 10m)")
	}
	if c.Monitor.Interval < time.Second || c.Monitor.Rate <= 0 || c.Monitor.LeaseTTL < 3*time.Second {
		bad("monitor: interval at least 1s, rate above 0, lease_ttl at least 3s")
	}
	checkDays := func(key string, days []int) {
		if len(days) == 0 || len(days) > 10 || slices.ContainsFunc(days, func(d int) bool { return d < 1 || d > 3650 }) {
			bad("%s: 1 to 10 whole days, each 1 to 3650", key)
		}
	}
	checkDays("monitor.expiry_thresholds", c.Monitor.ExpiryThresholds)
	for t, days := range c.Monitor.TenantThresholds {
		if !validTenant(t) {
			bad("monitor.tenant_thresholds.%s: not a valid tenant id", t)
		}
		checkDays("monitor.tenant_thresholds."+t, days)
	}
	if _, err := c.grants(time.Now()); err != nil {
		errs = append(errs, err)
	}
	if w := c.Webhooks; w.Timeout < time.Second || w.Backoff < time.Second || w.MaxBackoff < w.Backoff || w.RetryFor < w.Backoff || w.MaxAttempts < 1 {
		bad("webhooks: timeout and backoff at least 1s, max_backoff and retry_for at least backoff, max_attempts at least 1")
	}
	if w := c.Webhooks; w.Workers < 1 || w.Workers > 256 || w.DisableAfter < time.Minute {
		bad("webhooks: workers from 1 to 256, disable_after at least 1m")
	}
	if n := c.Monitor.RefreshWorkers; n < 1 || n > 256 {
		bad("monitor: refresh_workers from 1 to 256")
	}
	return errors.Join(errs...)
}

// grants returns the configured grants by tenant, validated at now.
func (c Config) grants(now time.Time) (map[string][]credgate.Grant, error) {
	out := map[string][]credgate.Grant{}
	var errs []error
	for i, gc := range c.Grants {
		// An expiry that passed is kept (the grant is simply not in force):
		// a configuration must not stop serving when a date comes.
		g := credgate.Grant{Subject: gc.Subject, Group: gc.Group, Role: gc.Role, Integrations: gc.Integrations,
			Description: gc.Description, Source: credgate.GrantFromConfig, Version: 1, CreatedBy: credgate.Actor{ID: "configuration"}}
		if !validTenant(gc.Tenant) {
			errs = append(errs, fmt.Errorf("grants[%d].tenant: %q is not a valid tenant id", i, gc.Tenant))
		}
		if gc.ExpiresAt != nil && gc.ExpiresAt.Sub(now) > credgate.MaxGrantLife {
			errs = append(errs, fmt.Errorf("grants[%d].expires_at: at most 10 years away", i))
		}
		if err := g.Validate(now, func(r string) bool { return policy.Known(policy.Role(r)) }); err != nil {
			var ce *credgate.Error
			if errors.As(err, &ce) {
				err = errors.New(ce.Fields.Sentence())
			}
			errs = append(errs, fmt.Errorf("grants[%d]: %w", i, err))
			continue
		}
		if gc.ExpiresAt != nil {
			t := gc.ExpiresAt.UTC()
			g.ExpiresAt = &t
		}
		g.ID = credgate.ConfigGrantID(gc.Tenant, g)
		if slices.ContainsFunc(out[gc.Tenant], func(x credgate.Grant) bool { return x.ID == g.ID }) {
			errs = append(errs, fmt.Errorf("grants[%d]: the same grant twice", i))
			continue
		}
		out[gc.Tenant] = append(out[gc.Tenant], g)
	}
	return out, errors.Join(errs...)
}

func (c Config) roleMap() policy.RoleMap {
	if len(c.Auth.RoleMap) == 0 {
		return policy.DefaultRoleMap()
	}
	m := policy.RoleMap{}
	for from, to := range c.Auth.RoleMap {
		for _, r := range to {
			m[from] = append(m[from], policy.Role(r))
		}
	}
	return m
}

func (c Config) issuers() []auth.IssuerConfig {
	out := make([]auth.IssuerConfig, len(c.Auth.Issuers))
	for i, iss := range c.Auth.Issuers {
		out[i] = auth.IssuerConfig(iss)
	}
	return out
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func slicesHasEmpty(ss []string) bool {
	for _, s := range ss {
		if strings.TrimSpace(s) == "" {
			return true
		}
	}
	return false
}

func validTenant(t string) bool { return credgate.ValidID(t) }

// Command credgate serves the credgate API in front of a Vault.
//
//	credgate serve [-config file] [-check-config]   run the API
//	credgate bootstrap [flags]                      prepare a Vault for credgate
//	credgate dev [flags]                            a local stack: Vault dev server, issuer, API
//	credgate dev token --tenant T --roles r1,r2 --user U   a token from the running dev stack
//	credgate version
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/auth"
	"github.com/credgate/credgate/connect"
	"github.com/credgate/credgate/grants"
	"github.com/credgate/credgate/httpapi"
	"github.com/credgate/credgate/httpapi/ratelimit"
	"github.com/credgate/credgate/tokenrefresh"
	"github.com/credgate/credgate/vaultlogin"
	"github.com/credgate/credgate/vaultstore"
	"github.com/credgate/credgate/webhook"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	var exit exitError
	switch {
	case errors.As(err, &exit): // credgate run: the command's own code
		os.Exit(exit.code)
	case err != nil:
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "credgate:", err)
		}
		os.Exit(1)
	}
}

const usage = `usage: credgate <command> [flags]

commands:
  serve       run the API (-config FILE, -check-config)
  bootstrap   prepare a Vault for credgate (uses VAULT_ADDR and VAULT_TOKEN)
  dev         run a local stack: Vault dev server, identity issuer, API
  dev token   mint a token from the running dev stack (also: credgate token)
  audit       who did what to which credential, from Vault's audit log (-h for flags)
  usage       who read a credential and which version, from the API (CREDGATE_ADDR, CREDGATE_TOKEN)
  run         start a command with services' credentials in its environment (SERVICE_<ID>_<KEY>)
  install     copy this binary to PATH (an init container's way to give an app credgate run)
  services, credentials, webhooks, grants
              the API from a shell (credgate services -h; exit codes 2 not found, 3 refused,
              4 unavailable, 5 invalid request)
  version     print the version`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "serve":
		return serveCmd(ctx, args[1:], stdout, stderr)
	case "bootstrap":
		return bootstrapCmd(ctx, args[1:], stdout, stderr)
	case "dev":
		if len(args) > 1 && args[1] == "token" {
			return tokenCmd(ctx, args[2:], stdout, stderr)
		}
		return devCmd(ctx, args[1:], stdout, stderr)
	case "token":
		return tokenCmd(ctx, args[1:], stdout, stderr)
	case "audit":
		return auditCmd(ctx, args[1:], os.Stdin, stdout, stderr)
	case "usage":
		return usageCmd(ctx, args[1:], os.Getenv, stdout, stderr)
	case "run":
		return runCmd(ctx, args[1:], os.Getenv, os.Environ(), stdout, stderr)
	case "install":
		return installCmd(args[1:], stdout)
	case "services", "credentials", "webhooks", "grants":
		return apiCmd(ctx, args[0], args[1:], os.Getenv, os.Stdin, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "credgate", version())
		return nil
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	fmt.Fprintln(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

func serveCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", os.Getenv("CREDGATE_CONFIG"), "configuration file (YAML)")
	check := fs.Bool("check-config", false, "report every configuration problem and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := LoadConfig(*path, os.Getenv)
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	if *check {
		fmt.Fprintln(stdout, "configuration is valid")
		return nil
	}
	log, err := NewLogger(cfg.LogLevel, stderr)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	m := &Main{Config: cfg, Logger: log}
	if err := m.Run(ctx); err != nil {
		return err
	}
	log.Info("credgate serving", zap.String("addr", m.Addr()), zap.String("version", version()))
	select {
	case <-ctx.Done():
	case err := <-m.served:
		return err
	}
	return m.Close()
}

// serviceCacheTTL is vault.service_cache_ttl as the store takes it: 0 in
// the configuration remembers nothing.
func serviceCacheTTL(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// inventoryCacheBytes is vault.inventory_cache_mb as the store takes it
// (0: keep none).
func inventoryCacheBytes(mb int) int {
	if mb == 0 {
		return -1
	}
	return mb << 20
}

// NewLogger returns a JSON logger at level writing to w.
//
// Lines are buffered and written at least every logFlush and when the
// logger is synced (serve and dev sync it when they stop): a write(2) per
// request line cost about a tenth of a credential read.
func NewLogger(level string, w io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, err
	}
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	ws := &zapcore.BufferedWriteSyncer{WS: zapcore.AddSync(w), Size: 64 << 10, FlushInterval: logFlush}
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), ws, lvl)
	return zap.New(core), nil
}

// logFlush bounds how long a log line waits in the buffer.
const logFlush = time.Second

// Main is the running service: Run wires everything and starts serving,
// Close shuts it down. Tests run the real wiring on port 0 through it.
type Main struct {
	Config Config
	Logger *zap.Logger

	ln       net.Listener
	srv      *http.Server
	store    *vaultstore.Store
	identity *vaultlogin.Identity
	redis    *redis.Client
	// draining is set when Close begins: /readyz fails and keep-alives end.
	draining atomic.Bool
	served   chan error
	cancel   context.CancelFunc
}

// Run wires the store, verifier and API and starts serving in the
// background. It tries credgate's own Vault login once (bounded by the
// Vault timeout) but does not wait for Vault or the issuers to be there:
// /readyz reports them, and requests answer 503 or 401 until they are.
func (m *Main) Run(ctx context.Context) error {
	cfg := m.Config
	vc, err := NewVaultClient(cfg.Vault)
	if err != nil {
		return err
	}
	named := make([]string, 0, len(cfg.RateLimit.Tenants))
	for t := range cfg.RateLimit.Tenants {
		named = append(named, t)
	}
	metrics := httpapi.NewMetrics(named)
	identity, err := vaultlogin.NewIdentity(vaultlogin.IdentityOptions{
		Method: cfg.Vault.LoginMethod(), Client: vc, Report: m.reportLogin(metrics),
	})
	if err != nil {
		return err
	}
	// Unusual use the ledgers find is published once the dispatcher is.
	var alerts atomic.Pointer[webhook.Dispatcher]
	store, err := vaultstore.New(vaultstore.Options{
		Client: vc, Identity: identity, Mount: cfg.Vault.Mount, TokenRole: cfg.Vault.TokenRole,
		MaxTokenTTL: cfg.Vault.MaxTokenTTL, Timeout: cfg.Vault.Timeout, ServiceCacheTTL: serviceCacheTTL(cfg.Vault.ServiceCacheTTL),
		InventoryCacheBytes: inventoryCacheBytes(cfg.Vault.InventoryCacheMB),
		Observe:             metrics.ObserveVault, OnTokenCache: metrics.TokenCache, Limits: cfg.Limits.of,
		UsageRules: cfg.Usage.of, PendingReads: cfg.Usage.PendingReads, RotationPolicy: cfg.Rotation.policyOf,
		OnConnection: func(ctx context.Context, c *credgate.Credential, typ string) {
			if d := alerts.Load(); d != nil {
				e := credgate.NewEvent(ctx, typ, c)
				e.OnceID(typ, c.ID, strconv.Itoa(c.Version))
				d.Announce(ctx, e)
			}
		},
		OnUsageAlert: func(a credgate.UsageAlert) {
			metrics.UsageAlert(a.Type)
			m.Logger.Warn("unusual use of credentials", zap.String("type", a.Type), zap.String("tenant", a.Tenant), zap.String("credential_id", a.Cred), zap.String("subject", a.Reader.Subject), zap.String("reason", a.Reason))
			if d := alerts.Load(); d != nil {
				d.Announce(context.Background(), a.Event())
			}
		},
	})
	if err != nil {
		return err
	}
	metrics.UsageReadsLost(store.LostReads)
	verifier, err := auth.New(auth.Options{
		Issuers: cfg.issuers(), RoleMap: cfg.roleMap(), TenantNames: cfg.Auth.TenantNames,
		CacheSize: cfg.Auth.CacheSize, RefreshInterval: cfg.Auth.JWKSRefreshInterval,
		OnCache: metrics.VerifiedTokenCache, OnJWKSFetch: metrics.JWKSFetch,
	})
	if err != nil {
		return err
	}
	rl := httpapi.RateLimit{Default: cfg.RateLimit.Default, Tenants: cfg.RateLimit.Tenants, DenyOnStoreError: cfg.RateLimit.OnStoreError == "deny"}
	if r := cfg.RateLimit.Redis; r.Address != "" {
		opts := &redis.Options{Addr: r.Address, Username: r.Username, Password: r.Password, DB: r.DB,
			DialTimeout: time.Second, ReadTimeout: 250 * time.Millisecond, WriteTimeout: 250 * time.Millisecond}
		if r.TLS {
			opts.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		m.redis = redis.NewClient(opts)
		// A breaker: a down or hung Redis costs a request nothing, and is
		// logged once per change, not once per request.
		rl.Store = ratelimit.NewBreaker(ratelimit.NewRedis(m.redis), ratelimit.BreakerOptions{OnChange: func(from, to string) {
			metrics.RateLimitStoreState(to)
			if to == "open" {
				m.Logger.Warn("rate-limit store failing; not asking it for a while", zap.String("redis", r.Address), zap.Bool("deny", rl.DenyOnStoreError))
			} else {
				m.Logger.Info("rate-limit store", zap.String("state", to), zap.String("was", from))
			}
		}})
	}
	m.store, m.identity = store, identity
	// The first login before serving, so that a reachable Vault makes the
	// first requests work; a failure is logged and Run keeps trying.
	_ = identity.Login(ctx)
	guard, err := cfg.Outbound.guard()
	if err != nil {
		return err
	}
	mon, err := newMonitoring(cfg, store, guard, metrics, m.Logger)
	if err != nil {
		return err
	}
	alerts.Store(mon.events)
	configured, err := cfg.grants(time.Now())
	if err != nil {
		return err
	}
	resolver, err := grants.New(grants.Options{Store: store, Configured: configured})
	if err != nil {
		return err
	}
	connector, err := connect.New(connect.Options{
		Store: store, Events: mon.events, Guard: guard, Client: guard.Client(tokenrefresh.Timeout), PublicURL: cfg.publicURL(),
		RedirectAllow: cfg.OAuth.RedirectAllow, TTL: cfg.OAuth.StateTTL, Logger: m.Logger.Named("connect"),
	})
	if err != nil {
		return err
	}
	handler, err := httpapi.New(httpapi.Options{
		Connect: connector, Tokens: store, CORSOrigins: cfg.CORS.AllowedOrigins,
		Services: store, Credentials: store, Primary: store, Rotator: store, Access: store, Locator: store, Usage: store,
		Webhooks: store, Rotators: store, Rotations: mon.rotations, Events: mon.events, GrantResolver: resolver, Grants: grantStore{store, resolver}, RoleMap: cfg.roleMap(), Idempotency: store,
		Refresh: tokenrefresh.Grant(guard.Client(tokenrefresh.Timeout)), Endpoints: guard, Auth: verifier, Logger: m.Logger,
		Metrics: metrics, RateLimit: rl,
		TrustedProxies: cfg.TrustedProxies, MaxBodyBytes: cfg.MaxBodyBytes, RequestTimeout: cfg.RequestTimeout,
		Ready: []httpapi.ReadyCheck{
			{Name: "vault", Check: store.Ready}, {Name: "issuers", Check: verifier.Ready},
			{Name: "shutdown", Instant: true, Check: func(context.Context) error {
				if m.draining.Load() {
					return errors.New("shutting down")
				}
				return nil
			}},
		},
	})
	if err != nil {
		return err
	}
	m.ln, err = net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	m.srv = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          zap.NewStdLog(m.Logger.Named("http")),
	}
	m.served = make(chan error, 1)
	go func() {
		var err error
		if cfg.TLS.CertFile != "" {
			m.srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
			err = m.srv.ServeTLS(m.ln, cfg.TLS.CertFile, cfg.TLS.KeyFile)
		} else {
			err = m.srv.Serve(m.ln)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			m.served <- err
		}
		close(m.served)
	}()
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.cancel = cancel
	go identity.Run(bg)
	mon.run(bg, !cfg.Monitor.Disabled)
	return nil
}

// grantStore is the store's grants with the configured ones beside them,
// as the grant routes see them.
type grantStore struct {
	*vaultstore.Store
	configured *grants.Resolver
}

func (g grantStore) Configured(tenant string) []credgate.Grant {
	return g.configured.Configured(tenant)
}

// reportLogin logs credgate's own logins to Vault and counts them.
func (m *Main) reportLogin(metrics *httpapi.Metrics) func(string, error) {
	log := m.Logger.Named("vault")
	return func(method string, err error) {
		metrics.VaultLogin(method, err)
		if err != nil {
			log.Warn("credgate's own Vault login failed", zap.String("method", method), zap.Error(err))
			return
		}
		log.Info("logged in to Vault", zap.String("method", method))
	}
}

// Addr is the address the API listens on (useful with port 0).
func (m *Main) Addr() string { return m.ln.Addr().String() }

// Close shuts down in three steps. Drain: /readyz fails (load balancers
// stop sending) and keep-alives end, so every answer closes its connection
// and no client is caught reusing one the server is about to close. Then
// stop accepting and let in-flight requests finish within the grace
// period. Last, write the pending lastAccessedAt values.
func (m *Main) Close() error {
	if m.cancel != nil {
		m.cancel()
	}
	if m.srv == nil {
		return nil
	}
	m.draining.Store(true)
	m.srv.SetKeepAlivesEnabled(false)
	time.Sleep(m.Config.ShutdownDrain)
	ctx, cancel := context.WithTimeout(context.Background(), m.Config.ShutdownGrace)
	defer cancel()
	err := m.srv.Shutdown(ctx)
	if serr := m.store.Close(ctx); err == nil {
		err = serr
	}
	if m.redis != nil {
		_ = m.redis.Close()
	}
	_ = m.Logger.Sync()
	return err
}

// maxVaultConns bounds the idle connections kept to Vault.
const maxVaultConns = 256

// NewVaultClient returns credgate's Vault client: the standard VAULT_*
// environment (TLS included) with the configured address and no token.
func NewVaultClient(vc VaultConfig) (*api.Client, error) {
	conf := api.DefaultConfig() // reads VAULT_CACERT, VAULT_CLIENT_CERT, ...
	if conf.Error != nil {
		return nil, conf.Error
	}
	conf.Address = vc.Address
	// The file's TLS settings first; then the VAULT_* variables win again.
	t := vc.TLS
	if t.CACert != "" || t.ClientCert != "" || t.ServerName != "" || t.SkipVerify {
		if err := conf.ConfigureTLS(&api.TLSConfig{CACert: t.CACert, ClientCert: t.ClientCert, ClientKey: t.ClientKey, TLSServerName: t.ServerName, Insecure: t.SkipVerify}); err != nil {
			return nil, fmt.Errorf("vault.tls: %w", err)
		}
		if err := conf.ReadEnvironment(); err != nil {
			return nil, err
		}
	}
	conf.MaxRetries = 0 // a sealed or absent Vault answers 503 at once; clients retry
	conf.Timeout = vc.Timeout + time.Second
	if tr, ok := conf.HttpClient.Transport.(*http.Transport); ok {
		// The Vault client keeps GOMAXPROCS+1 idle connections per host:
		// under concurrent requests every other one was closed and dialled
		// again. Every request credgate serves is a Vault request.
		tr.MaxIdleConns, tr.MaxIdleConnsPerHost = maxVaultConns, maxVaultConns
	}
	c, err := api.NewClient(conf)
	if err != nil {
		return nil, err
	}
	c.ClearToken() // credgate's own token comes from its Identity
	return c, nil
}

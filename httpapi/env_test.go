package httpapi_test

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/auth"
	"github.com/credgate/credgate/bootstrap"
	"github.com/credgate/credgate/connect"
	"github.com/credgate/credgate/grants"
	"github.com/credgate/credgate/httpapi"
	"github.com/credgate/credgate/outbound"
	"github.com/credgate/credgate/policy"
	"github.com/credgate/credgate/rotation"
	"github.com/credgate/credgate/tokenrefresh"
	"github.com/credgate/credgate/vaultstore"
	"github.com/credgate/credgate/vaultstore/devvault"
	"github.com/credgate/credgate/vaultstore/vaultidp"
	"github.com/credgate/credgate/vaultstore/vaulttest"
	"github.com/credgate/credgate/webhook"
)

// suite is what every test of this package shares: one real Vault,
// bootstrapped as credgate bootstrap does, with a file audit device, and
// Vault's identity token issuer as the identity provider.
type suite struct {
	vault     *vaulttest.Server
	root      *api.Client
	idp       *vaultidp.IdP
	ownToken  string // credgate's own token (credgate_service policy)
	auditFile string
	logs      devvault.Buffer // every credgate log line of the package
	tokens    sync.Map        // every bearer token handed out, to look for in logs
	secrets   sync.Map        // every secret value used, to look for in logs
	spec      *spec           // every answer is checked against the OpenAPI document
}

// secret registers v as a secret value the logs must never hold.
func secret(v string) string {
	s.secrets.Store(v, true)
	return v
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

var s suite

func TestMain(m *testing.M) {
	code, err := runMain(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}

func runMain(m *testing.M) (int, error) {
	flag.Parse()
	if vaulttest.NoVaultNeeded() {
		return m.Run(), nil
	}
	var err error
	if s.spec, err = loadSpec(); err != nil {
		return 1, err
	}
	if s.vault, err = vaulttest.New(true); err != nil {
		return 1, err
	}
	defer s.vault.Close()
	if s.root, err = s.vault.NewClient(); err != nil {
		return 1, err
	}
	dir, err := os.MkdirTemp("", "credgate-audit-")
	if err != nil {
		return 1, err
	}
	defer os.RemoveAll(dir)
	s.auditFile = filepath.Join(dir, "audit.log")
	ctx := context.Background()
	res, err := bootstrap.Bootstrap(ctx, s.root, bootstrap.Options{AuditFile: s.auditFile, IssueToken: true})
	if err != nil {
		return 1, err
	}
	s.ownToken = res.Token
	if s.idp, err = vaultidp.Setup(ctx, s.root, vaultidp.Config{VaultAddr: s.vault.Addr}); err != nil {
		return 1, err
	}
	code := m.Run()
	if err := s.spec.report(); err != nil {
		return 1, err
	}
	// No bearer token may ever reach a log line.
	leaked := 0
	logs := s.logs.String()
	s.tokens.Range(func(k, _ any) bool {
		if strings.Contains(logs, k.(string)) {
			leaked++
		}
		return true
	})
	if leaked > 0 {
		return 1, fmt.Errorf("%d bearer tokens appear in credgate's logs", leaked)
	}
	checked := 0
	s.secrets.Range(func(k, _ any) bool {
		checked++
		if strings.Contains(logs, k.(string)) {
			leaked++
		}
		return true
	})
	if leaked > 0 {
		return 1, fmt.Errorf("%d of %d secret values used in the tests appear in credgate's logs", leaked, checked)
	}
	if f := flag.Lookup("test.run"); code == 0 && checked < 20 && (f == nil || f.Value.String() == "") {
		return 1, fmt.Errorf("only %d secret values were registered: the log check proves little", checked)
	}
	fmt.Printf("log check: %d log bytes hold none of %d secret values\n", len(logs), checked)
	return code, nil
}

// apiOptions changes what newAPI builds.
type apiOptions struct {
	vault     *vaulttest.Server // default: the suite's
	vaultURL  string            // talk to Vault here instead (a proxy)
	issuers   []auth.IssuerConfig
	roleMap   policy.RoleMap
	wrap      func(httpapi.ServiceStore) httpapi.ServiceStore
	ownToken  string
	rateLimit httpapi.RateLimit // default: 10000 a minute, in memory
	// tenantNames are configured tenant display names (auth.tenant_names).
	tenantNames map[string]string
	// outboundAllow is outbound.allow; nil: 127.0.0.1/32, where the tests'
	// OAuth2 token servers listen.
	outboundAllow []string
	// proxy and rootCAs are outbound.proxy and the CAs outbound TLS
	// trusts (outbound.ca_file).
	proxy   string
	rootCAs *x509.CertPool
	// serviceCacheTTL is the store's; 0: its default.
	serviceCacheTTL time.Duration
	// pendingReads is the store's bound of reads gathered for the
	// ledgers; 0: its default.
	pendingReads int
	// lockLease shortens the rotation lock's lease (and wait).
	lockLease time.Duration
	// unchecked serves the handler without checking its answers against
	// the OpenAPI document: for benchmarks, which measure credgate alone.
	unchecked bool
	// noAccess leaves lastAccessedAt unrecorded, so that Vault sees only
	// the calls of the requests a test sends.
	noAccess bool
	// monitor, when set, runs this instance's webhook dispatcher and
	// expiry monitor, as credgate serve does.
	monitor *monitorSetup
	// configured are grants from configuration, by tenant.
	configured map[string][]credgate.Grant
	// redirectAllow is oauth.redirect_allow; connectTTL oauth.state_ttl.
	redirectAllow []string
	connectTTL    time.Duration
	// requestTimeout bounds each request; 0: httpapi's default.
	requestTimeout time.Duration
	// vaultTimeout bounds each Vault call; 0: 2 s.
	vaultTimeout time.Duration
	// corsOrigins is cors.allowed_origins.
	corsOrigins []string
}

// monitorSetup times an instance's monitor for a test.
type monitorSetup struct {
	now         func() time.Time // the monitor's clock; default time.Now
	maxAttempts int              // webhook attempts; default webhook.DefaultMaxAttempts
	// disableAfter is webhook.Options.DisableAfter; default its default.
	disableAfter time.Duration
	// rotationBackoff and rotationAttempts time the retries of rotation
	// steps (default 200 ms, credgate's attempts); rotationOverdue is the
	// overdue period (0: credgate's).
	rotationBackoff  time.Duration
	rotationAttempts int
	rotationOverdue  time.Duration
	// noMonitor runs the dispatcher (what this instance publishes is
	// delivered from here) but no monitor: another instance sweeps.
	noMonitor bool
}

// testAPI is a credgate API served for one test.
type testAPI struct {
	t          testing.TB
	url        string
	metrics    *httpapi.Metrics
	store      *vaultstore.Store
	grants     *grants.Resolver
	vaultCalls atomic.Int64
	mu         sync.Mutex
	ops        map[string]int // Vault calls by operation
	// rotations drives this instance's rotations (with a monitor); holder
	// names it in leases; stop stops its monitor, dispatcher and
	// rotations, as a replica that dies would.
	rotations *rotation.Runner
	holder    string
	stop      func()
	// root is a root client of the instance's own Vault (replicas).
	root *api.Client
}

// rootRead reads the data of logical path p of the credgate mount as
// root: nil when there is none.
func (a *testAPI) rootRead(p string) (map[string]any, error) {
	c := a.root
	if c == nil {
		c = s.root
	}
	sec, err := c.Logical().Read("credgate/data/" + p)
	if err != nil || sec == nil {
		return nil, err
	}
	data, _ := sec.Data["data"].(map[string]any)
	return data, nil
}

// metricsText is what a's /metrics answers.
func (a *testAPI) metricsText() string { return string(a.do("GET", "/metrics", "", nil).Raw) }

// grepLines is the lines of text that hold sub.
func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func (a *testAPI) opCount(op string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ops[op]
}

// newAPI serves credgate's real handler, store and verifier for t.
func newAPI(t testing.TB, o apiOptions) *testAPI {
	t.Helper()
	if o.vault == nil {
		o.vault = s.vault
	}
	if o.ownToken == "" {
		o.ownToken = s.ownToken
	}
	if o.rateLimit.Default == 0 {
		o.rateLimit.Default = 10000 // tests that are not about the limit never meet it
	}
	cfg := api.DefaultConfig()
	cfg.Address = o.vault.Addr
	if o.vaultURL != "" {
		cfg.Address = o.vaultURL
	}
	cfg.MaxRetries = 0
	cfg.Timeout = 3 * time.Second
	vc, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	vc.SetToken(o.ownToken)
	named := make([]string, 0, len(o.rateLimit.Tenants))
	for t := range o.rateLimit.Tenants {
		named = append(named, t)
	}
	a := &testAPI{t: t, ops: map[string]int{}, metrics: httpapi.NewMetrics(named)}
	vaultTimeout := cmp.Or(o.vaultTimeout, 2*time.Second)
	// Unusual use is published as cmd/credgate publishes it, once the
	// dispatcher runs.
	var alerts atomic.Pointer[webhook.Dispatcher]
	a.store, err = vaultstore.New(vaultstore.Options{Client: vc, Timeout: vaultTimeout, LockLease: o.lockLease, LockWait: o.lockLease * 3 / 2, ServiceCacheTTL: o.serviceCacheTTL, PendingReads: o.pendingReads, OnTokenCache: a.metrics.TokenCache, Observe: func(op string, d time.Duration, err error) {
		a.metrics.ObserveVault(op, d, err)
		a.vaultCalls.Add(1)
		a.mu.Lock()
		a.ops[op]++
		a.mu.Unlock()
	}, OnConnection: func(ctx context.Context, c *credgate.Credential, typ string) {
		if d := alerts.Load(); d != nil {
			e := credgate.NewEvent(ctx, typ, c)
			e.OnceID(typ, c.ID, strconv.Itoa(c.Version))
			d.Announce(ctx, e)
		}
	}, OnUsageAlert: func(u credgate.UsageAlert) {
		a.metrics.UsageAlert(u.Type)
		if d := alerts.Load(); d != nil {
			d.Announce(context.Background(), u.Event())
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	a.metrics.UsageReadsLost(a.store.LostReads)
	if o.issuers == nil {
		o.issuers = []auth.IssuerConfig{{Name: "vault", URL: s.idp.IssuerURL, Audiences: []string{s.idp.Audience}}}
	}
	v, err := auth.New(auth.Options{Issuers: o.issuers, RoleMap: o.roleMap, TenantNames: o.tenantNames, OnCache: a.metrics.VerifiedTokenCache, OnJWKSFetch: a.metrics.JWKSFetch})
	if err != nil {
		t.Fatal(err)
	}
	var store httpapi.ServiceStore = a.store
	if o.wrap != nil {
		store = o.wrap(store)
	}
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&s.logs), zapcore.DebugLevel))
	t.Cleanup(func() { _ = a.store.Close(context.Background()) })
	if o.outboundAllow == nil {
		o.outboundAllow = []string{"127.0.0.1/32"}
	}
	guard, err := outbound.New(outbound.Options{Allow: o.outboundAllow, Proxy: o.proxy, RootCAs: o.rootCAs})
	if err != nil {
		t.Fatal(err)
	}
	var access httpapi.AccessRecorder = a.store
	if o.noAccess {
		access = nil
	}
	var events httpapi.EventPublisher
	// The server listens first: a connect's redirect URI names it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var connector httpapi.Connector
	if o.monitor != nil {
		d := a.startMonitoring(guard, log, o.monitor)
		alerts.Store(d)
		events = d
		connector, err = connect.New(connect.Options{
			Store: a.store, Events: d, Guard: guard, Client: guard.Client(tokenrefresh.Timeout), PublicURL: "http://" + ln.Addr().String(),
			RedirectAllow: o.redirectAllow, TTL: o.connectTTL, Logger: log,
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	a.grants, err = grants.New(grants.Options{Store: a.store, Configured: o.configured})
	if err != nil {
		t.Fatal(err)
	}
	h, err := httpapi.New(httpapi.Options{
		Services: store, Credentials: a.store, Primary: a.store, Rotator: a.store, Access: access, Locator: a.store, Usage: a.store,
		Webhooks: a.store, Rotators: a.store, Rotations: rotationsOf(a), Connect: connector, Tokens: a.store, Events: events, GrantResolver: a.grants, Grants: grantStore{a.store, a.grants}, RoleMap: o.roleMap, Idempotency: a.store,
		Refresh: tokenrefresh.Grant(guard.Client(tokenrefresh.Timeout)), Endpoints: guard, Auth: v, Logger: log,
		Metrics: a.metrics, RateLimit: o.rateLimit, RequestTimeout: o.requestTimeout, CORSOrigins: o.corsOrigins,
		Ready: []httpapi.ReadyCheck{{Name: "vault", Check: a.store.Ready}, {Name: "issuers", Check: v.Ready}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !o.unchecked {
		h = s.spec.validating(h)
	}
	srv := httptest.NewUnstartedServer(h)
	_ = srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	a.url = srv.URL
	return a
}

// rotationsOf is a's rotations for its handler, or nil without a monitor.
func rotationsOf(a *testAPI) httpapi.Rotations {
	if a.rotations == nil {
		return nil
	}
	return a.rotations
}

var nonID = regexp.MustCompile(`[^A-Za-z0-9]+`)

// tenant returns a tenant id of this test alone.
func tenant(t testing.TB) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	name := nonID.ReplaceAllString(t.Name(), "-")
	if len(name) > 40 {
		name = name[:40]
	}
	return strings.ToLower(strings.Trim(name, "-")) + "-" + hex.EncodeToString(b)
}

// token returns a real token of Vault's issuer for user in tenant.
func token(t testing.TB, user, tenant string, roles ...string) string {
	t.Helper()
	return tokenFor(t, vaultidp.User{Name: user, Tenant: tenant, Roles: roles})
}

// tokenFor returns a real token of Vault's issuer for u; its name is made
// unique to the tenant and its e-mail is user@tenant.example.
func tokenFor(t testing.TB, u vaultidp.User) string {
	t.Helper()
	user, tenant := u.Name, u.Tenant
	u.Name = user + "-" + tenant
	if len(u.Name) > 60 {
		u.Name = u.Name[:60]
	}
	u.Email = user + "@" + tenant + ".example"
	tok, err := s.idp.Token(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	s.tokens.Store(tok, true)
	return tok
}

// reply is a decoded answer.
type reply struct {
	Status int
	Header http.Header
	Body   map[string]any
	Raw    []byte
}

// do sends one request. body is sent as is when a string, else as JSON;
// hdr is name, value, name, value...
func (a *testAPI) do(method, path, tok string, body any, hdr ...string) reply {
	a.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			a.t.Fatal(err)
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, a.url+path, r)
	if err != nil {
		a.t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		a.t.Fatal(err)
	}
	out := reply{Status: res.StatusCode, Header: res.Header, Raw: raw}
	if len(raw) > 0 {
		_ = json.Unmarshal(raw, &out.Body)
	}
	return out
}

// errCode returns the error code of a services-family error answer.
func (r reply) errCode() string {
	e, _ := r.Body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func (r reply) str(key string) string {
	v, _ := r.Body[key].(string)
	return v
}

// wantError fails unless r is an error answer with status and code.
func wantError(t *testing.T, r reply, status int, code string) {
	t.Helper()
	if r.Status != status || r.errCode() != code {
		t.Fatalf("got %d %s; want %d %s\n%s", r.Status, r.errCode(), status, code, r.Raw)
	}
}

// mustCreate creates a service and returns its answer.
func (a *testAPI) mustCreate(tok string, body map[string]any) reply {
	a.t.Helper()
	r := a.do("POST", "/api/v1/services", tok, body)
	if r.Status != http.StatusCreated {
		a.t.Fatalf("create %v: %d %s", body, r.Status, r.Raw)
	}
	return r
}

// grantStore is the store's grants with the configured ones beside them, as
// credgate serve wires them.
type grantStore struct {
	*vaultstore.Store
	configured *grants.Resolver
}

func (g grantStore) Configured(tenant string) []credgate.Grant {
	return g.configured.Configured(tenant)
}

// noAuth refuses everyone; for building a handler whose routes are listed.
type noAuth struct{}

func (noAuth) Verify(context.Context, string, string) (*credgate.Principal, error) {
	return nil, credgate.Errorf(credgate.EUnauthorized, "no")
}

func (noAuth) Claims(string) (json.RawMessage, error) {
	return nil, credgate.Errorf(credgate.EUnauthorized, "no")
}

func nopLogger() *zap.Logger { return zap.NewNop() }

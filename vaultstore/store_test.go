package vaultstore_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/bootstrap"
	"github.com/credgate/credgate/policy"
	"github.com/credgate/credgate/vaultstore"
	"github.com/credgate/credgate/vaultstore/conformance"
	"github.com/credgate/credgate/vaultstore/vaulttest"
)

var vault *vaulttest.Server

func TestMain(m *testing.M) {
	flag.Parse()
	if vaulttest.NoVaultNeeded() {
		os.Exit(m.Run())
	}
	var err error
	vault, err = vaulttest.New(true)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	vault.Close()
	os.Exit(code)
}

var mountSeq atomic.Int64

// env is a bootstrapped mount and a store using credgate's own (non-root)
// token, as in production.
type env struct {
	root   *api.Client
	store  *vaultstore.Store
	mount  string
	token  string // the store's own
	mints  atomic.Int64
	policy atomic.Int64
	opts   vaultstore.Options // the store's
}

func mustEnv(t *testing.T) *env { return mustEnvWith(t, nil) }

// mustEnvWith is mustEnv with its store's options changed by with.
func mustEnvWith(t *testing.T, with func(*vaultstore.Options)) *env {
	t.Helper()
	own, err := vault.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	return envOn(t, vault.Client(t), own, with)
}

// envOn is mustEnvWith on the Vault root is root of; own is a client of
// it, for the store's own token.
func envOn(t testing.TB, root, own *api.Client, with func(*vaultstore.Options)) *env {
	t.Helper()
	e := &env{root: root, mount: fmt.Sprintf("cg-test-%d-%d", os.Getpid(), mountSeq.Add(1))}
	ctx := context.Background()
	res, err := bootstrap.Bootstrap(ctx, e.root, bootstrap.Options{Mount: e.mount, TokenRole: e.mount + "-caller", ServicePolicy: e.mount + "_service", IssueToken: true})
	if err != nil {
		t.Fatal(err)
	}
	own.SetToken(res.Token)
	e.token = res.Token
	opts := vaultstore.Options{
		Client: own, Mount: e.mount, TokenRole: e.mount + "-caller", LockLease: 3 * time.Second, LockWait: lockWait,
		Observe: func(op string, _ time.Duration, _ error) {
			switch op {
			case "token_create":
				e.mints.Add(1)
			case "policy_write":
				e.policy.Add(1)
			}
		},
	}
	if with != nil {
		with(&opts)
	}
	e.opts = opts
	e.store, err = vaultstore.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// lockWait is the rotation lock wait of the stores the tests make.
const lockWait = 1500 * time.Millisecond

// TestConformance runs the store conformance suite against the dev Vault.
func TestConformance(t *testing.T) {
	conformance.Run(t, func(t *testing.T) *conformance.Env {
		e := mustEnv(t)
		return &conformance.Env{Store: e.store, Root: e.root, Mount: e.mount, LockWait: lockWait}
	})
}

func principal(tenant, sub string, roles ...string) *credgate.Principal {
	return &credgate.Principal{Subject: sub, Email: sub + "@example.test", Name: sub, Tenant: tenant, Roles: roles, Issuer: "https://issuer.test", Expiry: time.Now().Add(time.Hour)}
}

func as(p *credgate.Principal) context.Context {
	return credgate.WithRequestID(credgate.WithPrincipal(context.Background(), p), "req-"+p.Subject)
}

func TestCallerTokenCarriesOnlyItsPoliciesAndNamesTheCaller(t *testing.T) {
	e := mustEnv(t)
	p := principal("acme", "alice", "integration_viewer")
	p.Expiry = time.Now().Add(5 * time.Minute)
	tok, err := e.store.TokenFor(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	look, err := e.root.Auth().Token().Lookup(tok)
	if err != nil {
		t.Fatal(err)
	}
	pols, _ := look.TokenPolicies()
	if len(pols) != 1 || pols[0] != policy.Name("acme", policy.IntegrationViewer) {
		t.Fatalf("policies %v; want only %s", pols, policy.Name("acme", policy.IntegrationViewer))
	}
	meta, _ := look.TokenMetadata()
	if meta["sub"] != "alice" || meta["tenant"] != "acme" || meta["email"] != "alice@example.test" {
		t.Fatalf("metadata %v", meta)
	}
	if typ, _ := look.Data["type"].(string); typ != "batch" {
		t.Fatalf("token type %q; want batch", typ)
	}
	ttl, _ := look.TokenTTL()
	if ttl > 5*time.Minute || ttl < 4*time.Minute {
		t.Fatalf("token TTL %s; want about the JWT's remaining 5m", ttl)
	}
}

func TestConcurrentFirstRequestsMintOneToken(t *testing.T) {
	e := mustEnv(t)
	p := principal("acme", "bob", "integration_admin")
	var wg sync.WaitGroup
	toks := make([]string, 20)
	for i := range toks {
		wg.Go(func() {
			var err error
			if toks[i], err = e.store.TokenFor(context.Background(), p); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if e.mints.Load() != 1 {
		t.Fatalf("minted %d tokens for 20 concurrent first requests; want 1", e.mints.Load())
	}
	for _, tk := range toks {
		if tk != toks[0] {
			t.Fatal("callers got different tokens")
		}
	}
	// A second principal of the same tenant and role reuses the policy.
	if _, err := e.store.TokenFor(context.Background(), principal("acme", "bob2", "integration_admin")); err != nil {
		t.Fatal(err)
	}
	if e.policy.Load() != 1 {
		t.Fatalf("policy written %d times for one (tenant, role); want 1", e.policy.Load())
	}
}

func TestVaultItselfRefusesAnotherTenantsPath(t *testing.T) {
	e := mustEnv(t)
	alice := principal("tenant-a", "alice", "integration_admin")
	if _, err := e.store.CreateService(as(alice), &credgate.Service{ID: "svc-a", Name: "Stripe", Status: credgate.StatusActive}); err != nil {
		t.Fatal(err)
	}
	mallory := principal("tenant-b", "mallory", "integration_admin")
	tok, err := e.store.TokenFor(context.Background(), mallory)
	if err != nil {
		t.Fatal(err)
	}
	c, err := vault.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(tok)
	for _, path := range []string{
		e.mount + "/data/tenants/tenant-a/services/svc-a",
		e.mount + "/metadata/tenants/tenant-a/services/svc-a",
	} {
		_, err = c.Logical().Read(path)
		var re *api.ResponseError
		if !errors.As(err, &re) || re.StatusCode != 403 {
			t.Errorf("B's token reading %s: %v; want 403 from Vault", path, err)
		}
	}
	if _, err := c.Logical().Write(e.mount+"/data/tenants/tenant-a/services/svc-a", map[string]any{"data": map[string]any{"name": "pwned"}}); err == nil {
		t.Error("B's token wrote A's service")
	}
	if _, err := c.Logical().List(e.mount + "/metadata/tenants/"); err == nil {
		t.Error("B's token listed all tenants")
	}
	// Through the store, B sees A's service exactly as a missing one.
	if _, err := e.store.GetService(as(mallory), "svc-a"); credgate.ErrorCode(err) != credgate.EServiceNotFound {
		t.Fatalf("B reading A's service: %v; want SERVICE_NOT_FOUND", err)
	}
}

func TestViewerTokenCannotWrite(t *testing.T) {
	e := mustEnv(t)
	viewer := principal("acme", "vic", "integration_viewer")
	_, err := e.store.CreateService(as(viewer), &credgate.Service{ID: "svc-v", Name: "Jira", Status: credgate.StatusActive})
	if credgate.ErrorCode(err) != credgate.EInsufficientPermissions {
		t.Fatalf("viewer create: %v; want INSUFFICIENT_PERMISSIONS from Vault", err)
	}
}

func TestUpdateNeverLosesConcurrentUpdates(t *testing.T) {
	e := mustEnv(t)
	admin := principal("acme", "ann", "integration_admin")
	if _, err := e.store.CreateService(as(admin), &credgate.Service{ID: "counter", Name: "Counter", Status: credgate.StatusActive, Metadata: map[string]any{}}); err != nil {
		t.Fatal(err)
	}
	const n = 6
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, err := e.store.UpdateService(as(admin), "counter", 0, func(s *credgate.Service) error {
				s.Metadata[fmt.Sprintf("writer-%d", i)] = true
				return nil
			}, nil)
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got, err := e.store.GetService(as(admin), "counter")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Metadata) != n || got.Version != n+1 {
		t.Fatalf("after %d concurrent updates: %d keys at version %d; want %d keys at version %d", n, len(got.Metadata), got.Version, n, n+1)
	}
}

func TestSealedOrUnreachableVaultIsBackendUnavailable(t *testing.T) {
	own := vaulttest.StartOwned(t)
	root := own.Client(t)
	res, err := bootstrap.Bootstrap(context.Background(), root, bootstrap.Options{IssueToken: true})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := own.NewClient()
	c.SetToken(res.Token)
	st, err := vaultstore.New(vaultstore.Options{Client: c})
	if err != nil {
		t.Fatal(err)
	}
	admin := principal("acme", "sam", "integration_admin")
	if _, err := st.CreateService(as(admin), &credgate.Service{ID: "s1", Name: "S1", Status: credgate.StatusActive}); err != nil {
		t.Fatal(err)
	}
	own.Seal(t)
	if err := st.Ready(context.Background()); credgate.ErrorCode(err) != credgate.EBackendUnavailable {
		t.Fatalf("Ready while sealed: %v", err)
	}
	if _, err := st.GetService(as(admin), "s1"); credgate.ErrorCode(err) != credgate.EBackendUnavailable {
		t.Fatalf("read while sealed: %v; want BACKEND_UNAVAILABLE", err)
	}
	own.Unseal(t)
	if _, err := st.GetService(as(admin), "s1"); err != nil {
		t.Fatalf("read after unseal: %v", err)
	}

	cfg := api.DefaultConfig()
	cfg.Address = "http://127.0.0.1:1"
	cfg.MaxRetries = 0
	nowhere, _ := api.NewClient(cfg)
	nowhere.SetToken("x")
	st2, _ := vaultstore.New(vaultstore.Options{Client: nowhere})
	if _, err := st2.GetService(as(admin), "s1"); credgate.ErrorCode(err) != credgate.EBackendUnavailable {
		t.Fatalf("read from an unreachable Vault: %v; want BACKEND_UNAVAILABLE", err)
	}
}

func TestTenantsDifferingOnlyInCaseStayApart(t *testing.T) {
	e := mustEnv(t)
	upper, lower := principal("Acme", "u", "integration_admin"), principal("acme", "l", "integration_admin")
	if _, err := e.store.CreateService(as(upper), &credgate.Service{ID: "okta", Name: "Okta upper", Status: credgate.StatusActive}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.CreateService(as(lower), &credgate.Service{ID: "okta", Name: "Okta lower", Status: credgate.StatusActive}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*credgate.Principal{upper, lower, upper} { // upper again: its policy must not have been overwritten
		page, err := e.store.ListServices(as(p), credgate.ServiceFilter{Limit: 10})
		if err != nil {
			t.Fatalf("%s: %v", p.Tenant, err)
		}
		if len(page.Services) != 1 || page.Services[0].TenantID != p.Tenant {
			t.Fatalf("tenant %s sees %+v", p.Tenant, page.Services)
		}
	}
	tok, err := e.store.TokenFor(context.Background(), upper)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := vault.NewClient()
	c.SetToken(tok)
	if _, err := c.Logical().Read(e.mount + "/data/tenants/acme/services/okta"); err == nil {
		t.Fatal("tenant Acme's token reads tenant acme's service")
	}
}

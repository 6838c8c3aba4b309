package vaultstore_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/vault/api"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/vaultstore"
)

// A Vault standby that does not forward answers reads with a redirect to
// the active node. Reads follow it, as the Vault API client does, but never
// from https to http.
func TestReadsFollowOneRedirectToTheActiveNode(t *testing.T) {
	e, admin, c := oneCredential(t, "redirected")
	active, _ := url.Parse(vault.Addr)
	var redirected atomic.Int64
	standby := func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			redirected.Add(1)
			http.Redirect(w, r, vault.Addr+r.URL.RequestURI(), http.StatusTemporaryRedirect)
			return
		}
		httputil.NewSingleHostReverseProxy(active).ServeHTTP(w, r)
	}
	storeAt := func(t *testing.T, srv *httptest.Server) *vaultstore.Store {
		return storeVia(t, e, srv.URL, srv.Client().Transport) // trusts srv's certificate
	}

	plain := httptest.NewServer(http.HandlerFunc(standby))
	t.Cleanup(plain.Close)
	st := storeAt(t, plain)
	for _, id := range []string{c.ID, ""} {
		got, err := st.GetCredential(admin, credgate.CredentialRead{Service: "svc", ID: id})
		if err != nil || got.Secrets["apiKey"] != "k-0123456789" {
			t.Fatalf("read %q through a redirecting standby: %v %v", id, got, err)
		}
	}
	if redirected.Load() == 0 {
		t.Fatal("the standby redirected nothing: the test tested nothing")
	}

	tls := httptest.NewTLSServer(http.HandlerFunc(standby))
	t.Cleanup(tls.Close)
	before := redirected.Load()
	if _, err := storeAt(t, tls).GetCredential(admin, credgate.CredentialRead{Service: "svc", ID: c.ID}); err == nil {
		t.Fatal("a read followed a redirect from https to http")
	}
	if redirected.Load() == before {
		t.Fatal("the https standby redirected nothing")
	}
}

// A Vault reached through an HTTP proxy (the API client's transport says
// so) is read through it: the fast client for reads stands in for the API
// client's only where that client would go straight to Vault.
func TestReadsGoThroughTheProxyTheClientIsConfiguredWith(t *testing.T) {
	e, admin, c := oneCredential(t, "proxied")
	var gets atomic.Int64
	proxy := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		if r.In.Method == http.MethodGet {
			gets.Add(1)
		}
		r.Out.URL = r.In.URL // absolute: a proxy's request
		r.Out.Host = r.In.Host
	}})
	t.Cleanup(proxy.Close)
	via, _ := url.Parse(proxy.URL)
	st := storeVia(t, e, vault.Addr, &http.Transport{Proxy: http.ProxyURL(via)})
	got, err := st.GetCredential(admin, credgate.CredentialRead{Service: "svc", ID: c.ID})
	if err != nil || got.Secrets["apiKey"] != "k-0123456789" {
		t.Fatalf("read through a proxy: %v %v", got, err)
	}
	if gets.Load() == 0 {
		t.Fatal("the read did not go through the proxy")
	}
}

// oneCredential is a store with one credential (apiKey k-0123456789) of
// service svc in tenant, and its admin.
func oneCredential(t *testing.T, tenant string) (*env, context.Context, *credgate.Credential) {
	t.Helper()
	e := mustEnv(t)
	admin := as(principal(tenant, "ann", "integration_admin"))
	if _, err := e.store.CreateService(admin, &credgate.Service{ID: "svc", Name: "Svc", Status: credgate.StatusActive}); err != nil {
		t.Fatal(err)
	}
	c, err := e.store.CreateCredential(admin, &credgate.Credential{IntegrationID: "svc", CredentialName: "k", AuthType: credgate.AuthAPIKey, Status: credgate.CredActive, Secrets: credgate.Secrets{"apiKey": "k-0123456789"}})
	if err != nil {
		t.Fatal(err)
	}
	return e, admin, c
}

// storeVia is a store on e's Vault at addr (the same Vault, or something
// in front of it) through transport.
func storeVia(t *testing.T, e *env, addr string, transport http.RoundTripper) *vaultstore.Store {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address, cfg.MaxRetries = addr, 0
	cfg.HttpClient.Transport = transport
	cl, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cl.SetToken(e.token)
	st, err := vaultstore.New(vaultstore.Options{Client: cl, Mount: e.mount, TokenRole: e.mount + "-caller"})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

package vaultstore_test

import (
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
	e := mustEnv(t)
	admin := as(principal("redirected", "ann", "integration_admin"))
	if _, err := e.store.CreateService(admin, &credgate.Service{ID: "svc", Name: "Svc", Status: credgate.StatusActive}); err != nil {
		t.Fatal(err)
	}
	c, err := e.store.CreateCredential(admin, &credgate.Credential{IntegrationID: "svc", CredentialName: "k", AuthType: credgate.AuthAPIKey, Status: credgate.CredActive, Secrets: credgate.Secrets{"apiKey": "k-0123456789"}})
	if err != nil {
		t.Fatal(err)
	}
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
		cfg := api.DefaultConfig()
		cfg.Address, cfg.MaxRetries = srv.URL, 0
		cfg.HttpClient.Transport = srv.Client().Transport // trusts srv's certificate
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

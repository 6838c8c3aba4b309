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

// A Vault reached through an HTTP proxy (the API client's transport says
// so) is read through it: the fast client for reads stands in for the API
// client's only where that client would go straight to Vault.
func TestReadsGoThroughTheProxyTheClientIsConfiguredWith(t *testing.T) {
	e := mustEnv(t)
	admin := as(principal("proxied", "ann", "integration_admin"))
	if _, err := e.store.CreateService(admin, &credgate.Service{ID: "svc", Name: "Svc", Status: credgate.StatusActive}); err != nil {
		t.Fatal(err)
	}
	c, err := e.store.CreateCredential(admin, &credgate.Credential{IntegrationID: "svc", CredentialName: "k", AuthType: credgate.AuthAPIKey, Status: credgate.CredActive, Secrets: credgate.Secrets{"apiKey": "k-0123456789"}})
	if err != nil {
		t.Fatal(err)
	}
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
	cfg := api.DefaultConfig()
	cfg.Address, cfg.MaxRetries = vault.Addr, 0
	cfg.HttpClient.Transport = &http.Transport{Proxy: http.ProxyURL(via)}
	cl, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cl.SetToken(e.token)
	st, err := vaultstore.New(vaultstore.Options{Client: cl, Mount: e.mount, TokenRole: e.mount + "-caller"})
	if err != nil {
		t.Fatal(err)
	}
	gets.Store(0)
	got, err := st.GetCredential(admin, credgate.CredentialRead{Service: "svc", ID: c.ID})
	if err != nil || got.Secrets["apiKey"] != "k-0123456789" {
		t.Fatalf("read through a proxy: %v %v", got, err)
	}
	if gets.Load() == 0 {
		t.Fatal("the read did not go through the proxy")
	}
}

package httpapi_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/go-oauth2/oauth2/v4/manage"
	"github.com/go-oauth2/oauth2/v4/models"
	"github.com/go-oauth2/oauth2/v4/server"
	"github.com/go-oauth2/oauth2/v4/store"
	"golang.org/x/oauth2"

	"github.com/credgate/credgate/outbound/outboundtest"
)

// tokenServer is a real OAuth2 authorization server (go-oauth2) on
// loopback. Refresh tokens are single-use, as most providers make them: a
// second grant with the same one is refused.
type tokenServer struct {
	URL          string // where credgate calls it
	ClientID     string
	ClientSecret string
	srv          *server.Server
	local        string       // where the test calls it (URL, unless URL names a host)
	client       *http.Client // the test's client for local

	mu     sync.Mutex
	grants map[string]int // refresh-token grants per refresh token
	refuse bool           // answer every grant with 400 invalid_grant
}

// startTokenServer starts a server whose refresh tokens are single use.
func startTokenServer(t *testing.T) *tokenServer {
	return startTokenServerWith(t, manage.DefaultRefreshTokenCfg)
}

// startTokenServerWith starts a server with the given refresh behaviour.
func startTokenServerWith(t *testing.T, refreshCfg *manage.RefreshingConfig) *tokenServer {
	t.Helper()
	ts, h := newTokenServer(t, refreshCfg)
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	ts.URL, ts.local, ts.client = hs.URL, hs.URL, http.DefaultClient
	return ts
}

// startTokenServerNamed starts a server that credgate reaches by name
// (https://name:port), as a provider on the internet is reached, and
// returns the CAs that trust its certificate. The name resolves nowhere
// but where a test makes it (an egress proxy's table).
func startTokenServerNamed(t *testing.T, name string) (*tokenServer, *x509.CertPool) {
	t.Helper()
	ts, h := newTokenServer(t, manage.DefaultRefreshTokenCfg)
	hs, cas := outboundtest.TLSServer(t, h, name)
	port := hs.Listener.Addr().(*net.TCPAddr).Port
	ts.URL = fmt.Sprintf("https://%s:%d", name, port)
	ts.local = fmt.Sprintf("https://127.0.0.1:%d", port)
	ts.client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cas}}}
	return ts, cas
}

// newTokenServer returns a token server's state and handler, not serving.
func newTokenServer(t *testing.T, refreshCfg *manage.RefreshingConfig) (*tokenServer, http.Handler) {
	t.Helper()
	ts := &tokenServer{ClientID: "credgate-test-client", ClientSecret: secret("client-secret-" + randHex(8)), grants: map[string]int{}}
	manager := manage.NewDefaultManager()
	manager.MustTokenStorage(store.NewMemoryTokenStore())
	clients := store.NewClientStore()
	if err := clients.Set(ts.ClientID, &models.Client{ID: ts.ClientID, Secret: ts.ClientSecret, Domain: "http://127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	manager.MapClientStorage(clients)
	manager.SetRefreshTokenCfg(refreshCfg)
	ts.srv = server.NewDefaultServer(manager)
	ts.srv.SetClientInfoHandler(server.ClientBasicHandler)
	ts.srv.SetPasswordAuthorizationHandler(func(_ context.Context, _, username, password string) (string, error) {
		return username, nil
	})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, "bad form", 400)
			return
		}
		if r.Form.Get("grant_type") == "refresh_token" {
			ts.mu.Lock()
			ts.grants[r.Form.Get("refresh_token")]++
			refuse := ts.refuse
			ts.mu.Unlock()
			if refuse {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(400)
				_, _ = w.Write([]byte(`{"error":"invalid_grant","error_description":"refresh token revoked"}`))
				return
			}
		}
		_ = ts.srv.HandleTokenRequest(w, r)
	})
	mux := http.NewServeMux()
	mux.Handle("/token", h)
	mux.HandleFunc("/check", func(w http.ResponseWriter, r *http.Request) {
		if _, err := ts.srv.ValidationBearerToken(r); err != nil {
			http.Error(w, "invalid", http.StatusUnauthorized)
		}
	})
	return ts, mux
}

// login gets a first access and refresh token with the password grant.
func (ts *tokenServer) login(t *testing.T) *oauth2.Token {
	t.Helper()
	conf := &oauth2.Config{ClientID: ts.ClientID, ClientSecret: ts.ClientSecret, Endpoint: oauth2.Endpoint{TokenURL: ts.local + "/token", AuthStyle: oauth2.AuthStyleInHeader}}
	tok, err := conf.PasswordCredentialsToken(context.WithValue(context.Background(), oauth2.HTTPClient, ts.client), "alice", "pw")
	if err != nil {
		t.Fatal(err)
	}
	secret(tok.AccessToken)
	secret(tok.RefreshToken)
	return tok
}

// accepts reports whether the server takes accessToken.
func (ts *tokenServer) accepts(t *testing.T, accessToken string) bool {
	t.Helper()
	req, _ := http.NewRequest("GET", ts.local+"/check", nil)
	req.Header.Set("Authorization", "Bearer "+accessToken)
	res, err := ts.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode == 200
}

func (ts *tokenServer) grantCounts() map[string]int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	out := map[string]int{}
	for k, v := range ts.grants {
		out[k] = v
	}
	return out
}

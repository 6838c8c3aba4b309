package tokenrefresh_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-oauth2/oauth2/v4/manage"
	"github.com/go-oauth2/oauth2/v4/models"
	"github.com/go-oauth2/oauth2/v4/server"
	"github.com/go-oauth2/oauth2/v4/store"
	"golang.org/x/oauth2"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/outbound"
	"github.com/credgate/credgate/tokenrefresh"
)

// provider is a real OAuth2 authorization server (go-oauth2) on loopback
// that records how each refresh grant authenticated its client.
type provider struct {
	*httptest.Server
	srv *server.Server

	mu     sync.Mutex
	grants int
	basic  []bool // per grant: the client authenticated with HTTP Basic
}

const (
	clientID     = "credgate-client"
	clientSecret = "client-secret-for-tests"
)

func startProvider(t *testing.T, refresh *manage.RefreshingConfig) *provider {
	t.Helper()
	manager := manage.NewDefaultManager()
	manager.MustTokenStorage(store.NewMemoryTokenStore())
	clients := store.NewClientStore()
	if err := clients.Set(clientID, &models.Client{ID: clientID, Secret: clientSecret, Domain: "http://127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	manager.MapClientStorage(clients)
	manager.SetPasswordTokenCfg(&manage.Config{AccessTokenExp: time.Hour, RefreshTokenExp: 24 * time.Hour, IsGenerateRefresh: true})
	manager.SetRefreshTokenCfg(refresh)
	p := &provider{srv: server.NewDefaultServer(manager)}
	p.srv.SetClientInfoHandler(server.ClientBasicHandler)
	p.srv.SetPasswordAuthorizationHandler(func(context.Context, string, string, string) (string, error) { return "alice", nil })
	mux := http.NewServeMux()
	mux.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err == nil && r.Form.Get("grant_type") == "refresh_token" {
			_, _, basic := r.BasicAuth()
			p.mu.Lock()
			p.grants++
			p.basic = append(p.basic, basic)
			p.mu.Unlock()
		}
		_ = p.srv.HandleTokenRequest(w, r)
	})
	mux.HandleFunc("/check", func(w http.ResponseWriter, r *http.Request) {
		if _, err := p.srv.ValidationBearerToken(r); err != nil {
			http.Error(w, "invalid", http.StatusUnauthorized)
		}
	})
	p.Server = httptest.NewServer(mux)
	t.Cleanup(p.Close)
	return p
}

// login gets a first token with the password grant.
func (p *provider) login(t *testing.T) *oauth2.Token {
	t.Helper()
	conf := &oauth2.Config{ClientID: clientID, ClientSecret: clientSecret, Endpoint: oauth2.Endpoint{TokenURL: p.URL + "/token", AuthStyle: oauth2.AuthStyleInHeader}}
	tok, err := conf.PasswordCredentialsToken(context.Background(), "alice", "pw")
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (p *provider) accepts(t *testing.T, access string) bool {
	t.Helper()
	req, _ := http.NewRequest("GET", p.URL+"/check", nil)
	req.Header.Set("Authorization", "Bearer "+access)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode == 200
}

func (p *provider) counts() (int, []bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.grants, append([]bool(nil), p.basic...)
}

// client is an outbound client that may call the test's loopback servers.
func client(t *testing.T, allow ...string) *http.Client {
	t.Helper()
	g, err := outbound.New(outbound.Options{Allow: allow})
	if err != nil {
		t.Fatal(err)
	}
	return g.Client(5 * time.Second)
}

func credential(endpoint, refresh string) *credgate.Credential {
	return &credgate.Credential{ID: "cred-1", AuthType: credgate.AuthOAuth2Bearer, TokenEndpoint: endpoint,
		Secrets: credgate.Secrets{"accessToken": "old", "refreshToken": refresh, "clientId": clientID, "clientSecret": clientSecret}}
}

// TestGrantRefreshesAgainstARealServer: the grant is a refresh-token
// grant with HTTP Basic client authentication; the new tokens are the
// server's and the expiry is the one it gave.
func TestGrantRefreshesAgainstARealServer(t *testing.T) {
	p := startProvider(t, manage.DefaultRefreshTokenCfg)
	first := p.login(t)
	before := time.Now()
	got, exp, err := tokenrefresh.Grant(client(t, "127.0.0.1/32"))(context.Background(), credential(p.URL+"/token", first.RefreshToken))
	if err != nil {
		t.Fatal(err)
	}
	if got["accessToken"] == "" || got["accessToken"] == first.AccessToken || !p.accepts(t, got["accessToken"]) {
		t.Fatalf("new access token %q is not one the server issued", got["accessToken"])
	}
	if got["refreshToken"] == "" || got["refreshToken"] == first.RefreshToken {
		t.Fatalf("refresh token %q: want the server's new one", got["refreshToken"])
	}
	if exp == nil || exp.Before(before.Add(time.Hour-time.Minute)) || exp.After(time.Now().Add(time.Hour+time.Minute)) {
		t.Fatalf("expiry %v; want about an hour from now (the server's default)", exp)
	}
	if n, basic := p.counts(); n != 1 || !basic[0] {
		t.Fatalf("%d grants, HTTP Basic %v; want one, with Basic", n, basic)
	}
}

// TestGrantKeepsARefreshTokenTheServerDoesNotReplace: a server that sends
// no new refresh token leaves the old one in place.
func TestGrantKeepsARefreshTokenTheServerDoesNotReplace(t *testing.T) {
	p := startProvider(t, &manage.RefreshingConfig{IsGenerateRefresh: false, IsRemoveAccess: true})
	first := p.login(t)
	got, _, err := tokenrefresh.Grant(client(t, "127.0.0.1/32"))(context.Background(), credential(p.URL+"/token", first.RefreshToken))
	if err != nil {
		t.Fatal(err)
	}
	if got["refreshToken"] != first.RefreshToken || !p.accepts(t, got["accessToken"]) {
		t.Fatalf("refresh token %q (want the old one kept), access accepted %v", got["refreshToken"], p.accepts(t, got["accessToken"]))
	}
}

// TestGrantFailuresSayOnlyWhatAClientMayHear: each way a grant fails is an
// error a client can act on, carrying at most an OAuth2 error code.
func TestGrantFailuresSayOnlyWhatAClientMayHear(t *testing.T) {
	p := startProvider(t, manage.DefaultRefreshTokenCfg)
	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"note":"no token here, secret-detail-42"}`))
	}))
	t.Cleanup(garbage.Close)
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(400)
		_, _ = w.Write([]byte(`{"error":"invalid_grant","error_description":"secret-detail-42"}`))
	}))
	t.Cleanup(refusing.Close)
	tests := []struct {
		name, endpoint      string
		allow               []string
		code, upstream, say string
	}{
		{"refused by the server", refusing.URL + "/token", []string{"127.0.0.1/32"}, credgate.EUpstreamError, "invalid_grant", "refused the refresh"},
		{"an unknown refresh token", p.URL + "/token", []string{"127.0.0.1/32"}, credgate.EUpstreamError, "invalid_grant", "refused the refresh"},
		{"an answer without a token", garbage.URL + "/token", []string{"127.0.0.1/32"}, credgate.EUpstreamError, "invalid_response", "answered no usable token"},
		{"a name that does not resolve", "https://idp.example.invalid/token", nil, credgate.EUpstreamError, "", "names a host that does not resolve"},
		{"nothing listening", "http://127.0.0.1:1/token", []string{"127.0.0.1/32"}, credgate.EUpstreamError, "", "could not be reached"},
		{"an address the guard refuses", p.URL + "/token", nil, credgate.EValidationFailed, "", "127.0.0.1, a loopback address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := p.counts()
			_, _, err := tokenrefresh.Grant(client(t, tt.allow...))(context.Background(), credential(tt.endpoint, "rt-unknown"))
			var ce *credgate.Error
			if !errors.As(err, &ce) || ce.Code != tt.code || ce.UpstreamError != tt.upstream {
				t.Fatalf("%v; want %s with upstream error %q", err, tt.code, tt.upstream)
			}
			said := ce.Message + " " + ce.Fields.Sentence()
			if !strings.Contains(said, tt.say) || strings.Contains(said+ce.Error(), "secret-detail-42") {
				t.Fatalf("says %q (cause %v); want %q and nothing the server said", said, ce.Err, tt.say)
			}
			if after, _ := p.counts(); tt.code == credgate.EValidationFailed && after != before {
				t.Fatal("a refused address was called")
			}
		})
	}
}

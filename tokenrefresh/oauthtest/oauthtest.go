// Package oauthtest is a real OAuth2 authorization server for tests
// (github.com/go-oauth2/oauth2) on loopback: a token endpoint for the
// password and refresh-token grants, whose refresh tokens are single use
// unless told otherwise, and a check of its access tokens. It counts the
// refresh grants it is asked for, per refresh token, and can be made to
// refuse them.
package oauthtest

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

// Options says how a server behaves; the zero value is single-use refresh
// tokens over plain HTTP on 127.0.0.1.
type Options struct {
	// Refresh is how refresh grants answer; default
	// manage.DefaultRefreshTokenCfg (a new refresh token, the old spent).
	Refresh *manage.RefreshingConfig
	// Name, when set, serves HTTPS with a certificate for Name: URL is
	// https://Name:port, which resolves nowhere but where a test makes it
	// (an egress proxy's table); CAs trusts the certificate.
	Name string
}

// Server is a running authorization server.
type Server struct {
	URL          string // where the code under test calls it
	ClientID     string
	ClientSecret string
	// CAs trusts the server's certificate (Options.Name), else nil.
	CAs *x509.CertPool

	srv    *server.Server
	local  string       // where the test calls it
	client *http.Client // the test's client for local

	mu     sync.Mutex
	grants map[string]int // refresh-token grants per refresh token
	basic  []bool         // per refresh grant: the client used HTTP Basic
	refuse bool           // answer every refresh grant with invalid_grant
}

// Start starts a server for tb with a client of id clientID and secret
// clientSecret; it stops when tb ends.
func Start(tb testing.TB, clientSecret string, o Options) *Server {
	tb.Helper()
	s := &Server{ClientID: "credgate-test-client", ClientSecret: clientSecret, grants: map[string]int{}}
	manager := manage.NewDefaultManager()
	manager.MustTokenStorage(store.NewMemoryTokenStore())
	clients := store.NewClientStore()
	if err := clients.Set(s.ClientID, &models.Client{ID: s.ClientID, Secret: s.ClientSecret, Domain: "http://127.0.0.1"}); err != nil {
		tb.Fatal(err)
	}
	manager.MapClientStorage(clients)
	refresh := o.Refresh
	if refresh == nil {
		refresh = manage.DefaultRefreshTokenCfg
	}
	manager.SetRefreshTokenCfg(refresh)
	s.srv = server.NewDefaultServer(manager)
	s.srv.SetClientInfoHandler(server.ClientBasicHandler)
	s.srv.SetPasswordAuthorizationHandler(func(_ context.Context, _, username, _ string) (string, error) { return username, nil })
	mux := http.NewServeMux()
	mux.HandleFunc("/token", s.token)
	mux.HandleFunc("/check", func(w http.ResponseWriter, r *http.Request) {
		if _, err := s.srv.ValidationBearerToken(r); err != nil {
			http.Error(w, "invalid", http.StatusUnauthorized)
		}
	})
	if o.Name == "" {
		hs := httptest.NewServer(mux)
		tb.Cleanup(hs.Close)
		s.URL, s.local, s.client = hs.URL, hs.URL, http.DefaultClient
		return s
	}
	hs, cas := outboundtest.TLSServer(tb, mux, o.Name)
	port := hs.Listener.Addr().(*net.TCPAddr).Port
	s.URL, s.local, s.CAs = fmt.Sprintf("https://%s:%d", o.Name, port), fmt.Sprintf("https://127.0.0.1:%d", port), cas
	s.client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cas}}}
	return s
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	if r.Form.Get("grant_type") == "refresh_token" {
		_, _, basic := r.BasicAuth()
		s.mu.Lock()
		s.grants[r.Form.Get("refresh_token")]++
		s.basic = append(s.basic, basic)
		refuse := s.refuse
		s.mu.Unlock()
		if refuse {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"invalid_grant","error_description":"refresh token revoked"}`))
			return
		}
	}
	_ = s.srv.HandleTokenRequest(w, r)
}

// Login gets a first access and refresh token with the password grant.
func (s *Server) Login(tb testing.TB) *oauth2.Token {
	tb.Helper()
	conf := &oauth2.Config{ClientID: s.ClientID, ClientSecret: s.ClientSecret, Endpoint: oauth2.Endpoint{TokenURL: s.local + "/token", AuthStyle: oauth2.AuthStyleInHeader}}
	tok, err := conf.PasswordCredentialsToken(context.WithValue(context.Background(), oauth2.HTTPClient, s.client), "alice", "pw")
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// Accepts reports whether the server takes accessToken.
func (s *Server) Accepts(tb testing.TB, accessToken string) bool {
	tb.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.local+"/check", nil)
	req.Header.Set("Authorization", "Bearer "+accessToken)
	res, err := s.client.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode == http.StatusOK
}

// GrantCounts returns the refresh grants asked for, per refresh token.
func (s *Server) GrantCounts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.grants))
	for k, v := range s.grants {
		out[k] = v
	}
	return out
}

// BasicAuth says, per refresh grant in order, whether the client
// authenticated with HTTP Basic.
func (s *Server) BasicAuth() []bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]bool(nil), s.basic...)
}

// ResetCounts forgets the grants counted so far.
func (s *Server) ResetCounts() {
	s.mu.Lock()
	s.grants, s.basic = map[string]int{}, nil
	s.mu.Unlock()
}

// Refuse makes every refresh grant from now on answer invalid_grant (or
// not).
func (s *Server) Refuse(refuse bool) {
	s.mu.Lock()
	s.refuse = refuse
	s.mu.Unlock()
}

// Package oauthtest is a real OAuth2 authorization server for tests
// (github.com/go-oauth2/oauth2) on loopback: a token endpoint for the
// password, refresh-token, client-credentials and authorization-code
// grants, whose refresh tokens are single use unless told otherwise; an
// authorization endpoint with a consent page (Allow, Deny) that requires
// PKCE (S256); and a check of its access tokens. It counts the grants it
// is asked for, records the PKCE challenges and verifiers it saw, and can
// be made to refuse refresh grants.
package oauthtest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	oauth2srv "github.com/go-oauth2/oauth2/v4"
	oauth2errors "github.com/go-oauth2/oauth2/v4/errors"
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
	// ClientTokenExp is the life of client-credentials access tokens
	// (default go-oauth2's, 2 h).
	ClientTokenExp time.Duration
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
	// clientGrants counts client-credentials grants by how the client
	// authenticated (basic, post).
	clientGrants map[string]int
	challenges   []string // PKCE code challenges the authorization endpoint saw
	verifiers    []string // PKCE code verifiers the token endpoint saw
	codes        int      // authorization codes exchanged
}

// Start starts a server for tb with a client of id clientID and secret
// clientSecret; it stops when tb ends.
func Start(tb testing.TB, clientSecret string, o Options) *Server {
	tb.Helper()
	s := &Server{ClientID: "credgate-test-client", ClientSecret: clientSecret, grants: map[string]int{}, clientGrants: map[string]int{}}
	manager := manage.NewDefaultManager()
	manager.MustTokenStorage(store.NewMemoryTokenStore())
	clients := store.NewClientStore()
	if err := clients.Set(s.ClientID, &models.Client{ID: s.ClientID, Secret: s.ClientSecret, Domain: "http://127.0.0.1"}); err != nil {
		tb.Fatal(err)
	}
	manager.MapClientStorage(clients)
	// A redirect URI must be on the client's host (any port: the tests'
	// servers listen on free ones).
	manager.SetValidateURIHandler(func(base, redirect string) error {
		b, err1 := url.Parse(base)
		r, err2 := url.Parse(redirect)
		if err1 != nil || err2 != nil || b.Hostname() != r.Hostname() {
			return oauth2errors.ErrInvalidRedirectURI
		}
		return nil
	})
	refresh := o.Refresh
	if refresh == nil {
		refresh = manage.DefaultRefreshTokenCfg
	}
	manager.SetRefreshTokenCfg(refresh)
	if o.ClientTokenExp > 0 {
		manager.SetClientTokenCfg(&manage.Config{AccessTokenExp: o.ClientTokenExp})
	}
	s.srv = server.NewDefaultServer(manager)
	s.srv.Config.ForcePKCE = true
	s.srv.Config.AllowedCodeChallengeMethods = []oauth2srv.CodeChallengeMethod{oauth2srv.CodeChallengeS256}
	// HTTP Basic, else the form (client_secret_post).
	s.srv.SetClientInfoHandler(func(r *http.Request) (string, string, error) {
		if id, secret, err := server.ClientBasicHandler(r); err == nil {
			return id, secret, nil
		}
		return server.ClientFormHandler(r)
	})
	s.srv.SetPasswordAuthorizationHandler(func(_ context.Context, _, username, _ string) (string, error) { return username, nil })
	s.srv.SetUserAuthorizationHandler(func(w http.ResponseWriter, r *http.Request) (string, error) {
		if r.Method == http.MethodPost && r.FormValue("consent") == "allow" {
			return "alice", nil
		}
		return "", errors.New("no consent")
	})
	mux := http.NewServeMux()
	mux.HandleFunc("/token", s.token)
	mux.HandleFunc("/authorize", s.authorize)
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
	switch r.Form.Get("grant_type") {
	case "client_credentials":
		how := "post"
		if _, _, basic := r.BasicAuth(); basic {
			how = "basic"
		}
		s.mu.Lock()
		s.clientGrants[how]++
		s.mu.Unlock()
	case "authorization_code":
		s.mu.Lock()
		s.verifiers = append(s.verifiers, r.Form.Get("code_verifier"))
		s.codes++
		s.mu.Unlock()
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

// consentPage asks the person to allow or deny; the form posts the
// authorization request back with their answer.
var consentPage = template.Must(template.New("consent").Parse(`<!doctype html>
<html><head><title>Consent</title></head><body>
<h1>Allow credgate to act for you?</h1>
<form method="post" action="/authorize?{{.}}">
<button id="allow" name="consent" value="allow">Allow</button>
<button id="deny" name="consent" value="deny">Deny</button>
</form></body></html>`))

// authorize is the authorization endpoint: a GET shows the consent page,
// its POST answers the request: a code (Allow) or access_denied (Deny).
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		s.mu.Lock()
		s.challenges = append(s.challenges, r.URL.Query().Get("code_challenge"))
		s.mu.Unlock()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = consentPage.Execute(w, template.URL(r.URL.RawQuery))
		return
	}
	if r.FormValue("consent") != "allow" {
		u, err := url.Parse(r.URL.Query().Get("redirect_uri"))
		if err != nil {
			http.Error(w, "bad redirect_uri", http.StatusBadRequest)
			return
		}
		q := u.Query()
		q.Set("error", "access_denied")
		q.Set("state", r.URL.Query().Get("state"))
		u.RawQuery = q.Encode()
		http.Redirect(w, r, u.String(), http.StatusFound)
		return
	}
	// go-oauth2 reads the request from the form: the query's fields.
	for k, v := range r.URL.Query() {
		r.Form[k] = v
	}
	if err := s.srv.HandleAuthorizeRequest(w, r); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
	}
}

// PKCE returns the code challenges the authorization endpoint saw and the
// code verifiers the token endpoint saw, in order.
func (s *Server) PKCE() (challenges, verifiers []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.challenges...), append([]string(nil), s.verifiers...)
}

// CodesExchanged counts the authorization-code grants asked for.
func (s *Server) CodesExchanged() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.codes
}

// ClientGrants counts the client-credentials grants by how the client
// authenticated: basic (client_secret_basic) and post (client_secret_post).
func (s *Server) ClientGrants() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for k, v := range s.clientGrants {
		out[k] = v
	}
	return out
}

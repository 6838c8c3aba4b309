package httpapi_test

import (
	"crypto/x509"
	"testing"

	"github.com/go-oauth2/oauth2/v4/manage"
	"golang.org/x/oauth2"

	"github.com/credgate/credgate/tokenrefresh/oauthtest"
)

// tokenServer is a real OAuth2 authorization server (tokenrefresh/oauthtest)
// whose client secret and tokens are registered as secrets the logs must
// never hold. Refresh tokens are single-use, as most providers make them: a
// second grant with the same one is refused.
type tokenServer struct{ *oauthtest.Server }

// startTokenServer starts a server whose refresh tokens are single use.
func startTokenServer(t *testing.T) *tokenServer {
	return startTokenServerWith(t, manage.DefaultRefreshTokenCfg)
}

// startTokenServerWith starts a server with the given refresh behaviour.
func startTokenServerWith(t *testing.T, refreshCfg *manage.RefreshingConfig) *tokenServer {
	t.Helper()
	return &tokenServer{oauthtest.Start(t, secret("client-secret-"+randHex(8)), oauthtest.Options{Refresh: refreshCfg})}
}

// startTokenServerNamed starts a server that credgate reaches by name
// (https://name:port), as a provider on the internet is reached, and
// returns the CAs that trust its certificate. The name resolves nowhere
// but where a test makes it (an egress proxy's table).
func startTokenServerNamed(t *testing.T, name string) (*tokenServer, *x509.CertPool) {
	t.Helper()
	ts := &tokenServer{oauthtest.Start(t, secret("client-secret-"+randHex(8)), oauthtest.Options{Name: name})}
	return ts, ts.CAs
}

// login gets a first access and refresh token with the password grant.
func (ts *tokenServer) login(t *testing.T) *oauth2.Token {
	t.Helper()
	tok := ts.Login(t)
	secret(tok.AccessToken)
	secret(tok.RefreshToken)
	return tok
}

// accepts reports whether the server takes accessToken.
func (ts *tokenServer) accepts(t *testing.T, accessToken string) bool {
	return ts.Accepts(t, accessToken)
}

func (ts *tokenServer) grantCounts() map[string]int { return ts.GrantCounts() }

package tokenrefresh_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-oauth2/oauth2/v4/manage"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/outbound"
	"github.com/credgate/credgate/tokenrefresh"
	"github.com/credgate/credgate/tokenrefresh/oauthtest"
)

const clientSecret = "client-secret-for-tests"

func startProvider(t *testing.T, refresh *manage.RefreshingConfig) *oauthtest.Server {
	t.Helper()
	return oauthtest.Start(t, clientSecret, oauthtest.Options{Refresh: refresh})
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

func credential(p *oauthtest.Server, endpoint, refresh string) *credgate.Credential {
	return &credgate.Credential{ID: "cred-1", AuthType: credgate.AuthOAuth2Bearer, TokenEndpoint: endpoint,
		Secrets: credgate.Secrets{"accessToken": "old", "refreshToken": refresh, "clientId": p.ClientID, "clientSecret": p.ClientSecret}}
}

// TestGrantRefreshesAgainstARealServer: the grant is a refresh-token
// grant with HTTP Basic client authentication; the new tokens are the
// server's and the expiry is the one it gave.
func TestGrantRefreshesAgainstARealServer(t *testing.T) {
	p := startProvider(t, manage.DefaultRefreshTokenCfg)
	first := p.Login(t)
	before := time.Now()
	got, exp, err := tokenrefresh.Grant(client(t, "127.0.0.1/32"))(context.Background(), credential(p, p.URL+"/token", first.RefreshToken))
	if err != nil {
		t.Fatal(err)
	}
	if got["accessToken"] == "" || got["accessToken"] == first.AccessToken || !p.Accepts(t, got["accessToken"]) {
		t.Fatalf("new access token %q is not one the server issued", got["accessToken"])
	}
	if got["refreshToken"] == "" || got["refreshToken"] == first.RefreshToken {
		t.Fatalf("refresh token %q: want the server's new one", got["refreshToken"])
	}
	if exp == nil || exp.Before(before.Add(2*time.Hour-time.Minute)) || exp.After(time.Now().Add(2*time.Hour+time.Minute)) {
		t.Fatalf("expiry %v; want about two hours from now (go-oauth2's expires_in)", exp)
	}
	if basic := p.BasicAuth(); len(basic) != 1 || !basic[0] {
		t.Fatalf("HTTP Basic per grant: %v; want one grant, with Basic", basic)
	}
}

// TestGrantKeepsARefreshTokenTheServerDoesNotReplace: a server that sends
// no new refresh token leaves the old one in place.
func TestGrantKeepsARefreshTokenTheServerDoesNotReplace(t *testing.T) {
	p := startProvider(t, &manage.RefreshingConfig{IsGenerateRefresh: false, IsRemoveAccess: true})
	first := p.Login(t)
	got, _, err := tokenrefresh.Grant(client(t, "127.0.0.1/32"))(context.Background(), credential(p, p.URL+"/token", first.RefreshToken))
	if err != nil {
		t.Fatal(err)
	}
	if got["refreshToken"] != first.RefreshToken || !p.Accepts(t, got["accessToken"]) {
		t.Fatalf("refresh token %q (want the old one kept), access accepted %v", got["refreshToken"], p.Accepts(t, got["accessToken"]))
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
			before := len(p.BasicAuth())
			_, _, err := tokenrefresh.Grant(client(t, tt.allow...))(context.Background(), credential(p, tt.endpoint, "rt-unknown"))
			var ce *credgate.Error
			if !errors.As(err, &ce) || ce.Code != tt.code || ce.UpstreamError != tt.upstream {
				t.Fatalf("%v; want %s with upstream error %q", err, tt.code, tt.upstream)
			}
			said := ce.Message + " " + ce.Fields.Sentence()
			if !strings.Contains(said, tt.say) || strings.Contains(said+ce.Error(), "secret-detail-42") {
				t.Fatalf("says %q (cause %v); want %q and nothing the server said", said, ce.Err, tt.say)
			}
			if after := len(p.BasicAuth()); tt.code == credgate.EValidationFailed && after != before {
				t.Fatal("a refused address was called")
			}
		})
	}
}

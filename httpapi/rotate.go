package httpapi

import (
	"context"
	"errors"
	"net/http"
	"time"

	"golang.org/x/oauth2"

	"github.com/credgate/credgate"
)

// NewTokenEndpointClient returns the HTTP client for refresh-token grants:
// bounded in time and not following redirects, so a token endpoint cannot
// bounce credgate's requests elsewhere.
func NewTokenEndpointClient() *http.Client {
	return &http.Client{
		Timeout:       15 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// refreshGrant performs an RFC 6749 refresh-token grant against the
// credential's tokenEndpoint with golang.org/x/oauth2. The client
// authenticates with HTTP Basic when it has a secret (RFC 6749 2.3.1), else
// sends its id in the form; the style is fixed because auto-detection would
// send a refused refresh token a second time. A server that returns no new
// refresh token leaves the old one in place.
func refreshGrant(client *http.Client) credgate.RefreshGrant {
	return func(ctx context.Context, c *credgate.Credential) (map[string]string, *time.Time, error) {
		style := oauth2.AuthStyleInParams
		if c.Secrets["clientSecret"] != "" {
			style = oauth2.AuthStyleInHeader
		}
		conf := &oauth2.Config{
			ClientID:     c.Secrets["clientId"],
			ClientSecret: c.Secrets["clientSecret"],
			Endpoint:     oauth2.Endpoint{TokenURL: c.TokenEndpoint, AuthStyle: style},
			Scopes:       c.Scopes,
		}
		ctx = context.WithValue(ctx, oauth2.HTTPClient, client)
		tok, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: c.Secrets["refreshToken"]}).Token()
		if err != nil {
			e := &credgate.Error{Code: credgate.EUpstreamError, Message: "the token endpoint refused the refresh; nothing was changed", Err: errors.New("refresh grant failed")}
			var re *oauth2.RetrieveError
			if errors.As(err, &re) {
				// Only the OAuth2 error code: the body could hold anything.
				e.Details = map[string]any{"upstream_status": re.Response.StatusCode, "upstream_error": re.ErrorCode}
			} else {
				e.Message = "the token endpoint could not be reached; nothing was changed"
			}
			return nil, nil, e
		}
		got := map[string]string{"accessToken": tok.AccessToken, "refreshToken": tok.RefreshToken}
		var exp *time.Time
		if !tok.Expiry.IsZero() {
			t := tok.Expiry.UTC().Truncate(time.Second)
			exp = &t
		}
		return got, exp, nil
	}
}

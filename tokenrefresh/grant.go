package tokenrefresh

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/outbound"
)

// Timeout bounds one grant, connection and answer included.
const Timeout = 15 * time.Second

// errorCode is an OAuth2 error code as RFC 6749 5.2 allows it, shortened;
// anything else an endpoint sends is not repeated.
var errorCode = regexp.MustCompile(`^[\x20\x21\x23-\x5B\x5D-\x7E]{1,64}$`)

// Grant returns a credgate.RefreshGrant that performs the grant against the
// credential's tokenEndpoint with golang.org/x/oauth2 through client, which
// should be an outbound.Guard's (bounded in time, no redirects, no
// non-public addresses unless allowed): a refresh-token grant, or for a
// client-credentials credential without a refresh token a
// client-credentials grant (RFC 6749 4.4). The client authenticates as the
// credential's tokenEndpointAuthMethod says: HTTP Basic
// (client_secret_basic, the default when it has a secret; RFC 6749 2.3.1)
// or in the form (client_secret_post, and always without a secret); the
// style is fixed because auto-detection would send a refused refresh token
// a second time. A server that returns no new refresh token leaves the old
// one in place.
//
// A refused or failed grant is UPSTREAM_ERROR; the client is told only the
// OAuth2 error code, never what else the endpoint answered.
func Grant(client *http.Client) credgate.RefreshGrant {
	return func(ctx context.Context, c *credgate.Credential) (credgate.Secrets, *time.Time, error) {
		style := oauth2.AuthStyleInParams
		if c.Secrets["clientSecret"] != "" && c.TokenEndpointAuthMethod != credgate.ClientSecretPost {
			style = oauth2.AuthStyleInHeader
		}
		ctx = context.WithValue(ctx, oauth2.HTTPClient, client)
		var tok *oauth2.Token
		var err error
		if c.AuthType == credgate.AuthOAuth2ClientCredentials && c.Secrets["refreshToken"] == "" {
			conf := &clientcredentials.Config{
				ClientID: c.Secrets["clientId"], ClientSecret: c.Secrets["clientSecret"],
				TokenURL: c.TokenEndpoint, Scopes: c.Scopes, AuthStyle: style,
			}
			tok, err = conf.Token(ctx)
		} else {
			conf := &oauth2.Config{
				ClientID:     c.Secrets["clientId"],
				ClientSecret: c.Secrets["clientSecret"],
				Endpoint:     oauth2.Endpoint{TokenURL: c.TokenEndpoint, AuthStyle: style},
				Scopes:       c.Scopes,
			}
			tok, err = conf.TokenSource(ctx, &oauth2.Token{RefreshToken: c.Secrets["refreshToken"]}).Token()
		}
		var refused *outbound.RefusedError
		endpoint, _ := url.Parse(c.TokenEndpoint)
		why := outbound.Explain(endpoint, err)
		if errors.As(err, &refused) {
			// Nothing was sent: the endpoint's address is not one
			// credgate calls.
			return nil, nil, credgate.FieldErrors{"tokenEndpoint": why}.Err()
		}
		if err != nil {
			e := &credgate.Error{Code: credgate.EUpstreamError, Message: "the token endpoint refused the refresh; nothing was changed", Err: err}
			var re *oauth2.RetrieveError
			var ue *url.Error
			switch {
			case errors.As(err, &re):
				e.UpstreamError = "invalid_response"
				if errorCode.MatchString(re.ErrorCode) {
					e.UpstreamError = re.ErrorCode
				}
				e.Err = errors.New("refresh grant refused") // the answer's body stays out of the log
			case why != "":
				e.Message = "the token endpoint " + why + "; nothing was changed"
			case errors.As(err, &ue):
				e.Message = "the token endpoint could not be reached; nothing was changed"
			default:
				// It answered 2xx with something that is not a token.
				e.Message, e.UpstreamError = "the token endpoint answered no usable token; nothing was changed", "invalid_response"
				e.Err = errors.New("refresh grant answered no token")
			}
			return nil, nil, e
		}
		got := credgate.Secrets{"accessToken": tok.AccessToken}
		if tok.RefreshToken != "" {
			got["refreshToken"] = tok.RefreshToken
		}
		var exp *time.Time
		if !tok.Expiry.IsZero() {
			t := tok.Expiry.UTC().Truncate(time.Second)
			exp = &t
		}
		return got, exp, nil
	}
}

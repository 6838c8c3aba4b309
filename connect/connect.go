// Package connect obtains an OAuth2 credential's tokens through the
// provider's consent screen: the authorization-code flow (RFC 6749 4.1)
// with PKCE (RFC 7636, S256). Start answers the URL a person opens; the
// provider sends their browser back to credgate's callback with a code and
// the state, and Callback exchanges the code (with the PKCE verifier,
// through the outbound guard) and stores the tokens as the credential's
// next version.
//
// The state is "<tenant>.<secret>": the secret is 32 random bytes, and
// what it stands for (the credential, the caller, the verifier, until when)
// is kept in the tenant's records under a hash of it, taken once.
package connect

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"
	"golang.org/x/oauth2"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/outbound"
)

// Store is what connects need of the store (vaultstore.Store).
type Store interface {
	LocateCredential(ctx context.Context, cred string) (string, error)
	DescribeCredential(ctx context.Context, service, cred string) (*credgate.Credential, error)
	CredentialAsCredgate(ctx context.Context, tenant, service, cred string, version int) (*credgate.Credential, error)
	SaveConnectState(ctx context.Context, tenant, key string, st *credgate.ConnectState) error
	TakeConnectState(ctx context.Context, tenant, key string) (*credgate.ConnectState, error)
	RotateCredential(ctx context.Context, cred string, ifMatch int, fn func(*credgate.Credential) error, repeatable bool) (*credgate.Credential, error)
}

// Publisher records the events of a change before it is made
// (webhook.Dispatcher).
type Publisher interface {
	Intend(ctx context.Context, events ...credgate.Event) (credgate.Intent, error)
}

// Guard checks the endpoints a connect sends a browser and credgate to
// (outbound.Guard).
type Guard interface {
	CheckURL(ctx context.Context, raw string) (warning string, err error)
}

// Options configures a Connector.
type Options struct {
	Store  Store
	Events Publisher
	Guard  Guard
	// Client makes the code exchange (outbound.Guard.Client).
	Client *http.Client
	// PublicURL is where browsers reach credgate; the redirect URI is
	// PublicURL + CallbackPath.
	PublicURL string
	// RedirectAllow are the URL prefixes a connect may send the browser
	// to afterwards (redirectAfter); none by default.
	RedirectAllow []string
	// TTL bounds how long a state waits (default credgate.DefaultConnectTTL).
	TTL    time.Duration
	Logger *zap.Logger
	Now    func() time.Time
}

// CallbackPath is the route of the providers' redirect.
const CallbackPath = "/oauth/callback"

// Connector runs connects.
type Connector struct{ o Options }

// New returns a Connector.
func New(o Options) (*Connector, error) {
	if o.Store == nil || o.Events == nil || o.Guard == nil || o.Client == nil || o.Logger == nil {
		return nil, errors.New("connect: Store, Events, Guard, Client and Logger are required")
	}
	u, err := url.Parse(o.PublicURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, errors.New("connect: PublicURL must be an absolute http(s) URL")
	}
	o.PublicURL = strings.TrimSuffix(o.PublicURL, "/")
	if o.TTL <= 0 {
		o.TTL = credgate.DefaultConnectTTL
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Connector{o: o}, nil
}

// RedirectURI is the redirect URI credgate registers with providers.
func (c *Connector) RedirectURI() string { return c.o.PublicURL + CallbackPath }

// Start begins a connect of credential cred for the caller in ctx (who
// must be able to read its description; the route checks they may write
// it) and answers the authorization URL, with a state and a PKCE
// challenge, and redirectAfter, when set, where the browser goes after.
// Errors: CREDENTIAL_NOT_FOUND, VALIDATION_FAILED (not connectable, an
// endpoint credgate does not call, redirectAfter not allowed),
// INSUFFICIENT_PERMISSIONS, BACKEND_UNAVAILABLE.
func (c *Connector) Start(ctx context.Context, cred, redirectAfter string) (*credgate.ConnectStart, error) {
	p := credgate.PrincipalFrom(ctx)
	service, err := c.o.Store.LocateCredential(ctx, cred)
	if err != nil {
		return nil, err
	}
	if _, err := c.o.Store.DescribeCredential(ctx, service, cred); err != nil {
		return nil, err
	}
	sys := credgate.WithPrincipal(ctx, credgate.SystemPrincipal(p.Tenant))
	cr, err := c.o.Store.CredentialAsCredgate(sys, p.Tenant, service, cred, 0)
	if err != nil {
		return nil, err
	}
	fe := credgate.FieldErrors{}
	switch {
	case !cr.Connectable():
		fe.Add("credential", "an OAuth2 credential with authorizationEndpoint, tokenEndpoint and clientId is connected; set them first")
	case cr.EffectiveStatus(c.o.Now()) == credgate.CredRevoked:
		fe.Add("credential", "is revoked; store a new credential to connect")
	}
	if redirectAfter != "" && !c.allowed(redirectAfter) {
		fe.Add("redirectAfter", "is not an allowed URL (oauth.redirect_allow)")
	}
	if err := fe.Err(); err != nil {
		return nil, err
	}
	// Both endpoints must be where credgate may send a browser and itself
	// (the error says which rule refused, never what a name resolved to).
	for _, ep := range []struct{ field, url string }{{"authorizationEndpoint", cr.AuthorizationEndpoint}, {"tokenEndpoint", cr.TokenEndpoint}} {
		if _, err := c.o.Guard.CheckURL(ctx, ep.url); err != nil {
			return nil, credgate.FieldErrors{ep.field: err.Error()}.Err()
		}
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	token := base64.RawURLEncoding.EncodeToString(secret)
	now := c.o.Now().UTC().Truncate(time.Second)
	st := &credgate.ConnectState{
		Service: service, Credential: cred, Subject: p.Subject, Email: p.Email, RequestID: credgate.RequestIDFrom(ctx),
		Verifier: oauth2.GenerateVerifier(), RedirectURI: c.RedirectURI(), RedirectAfter: redirectAfter, ExpiresAt: now.Add(c.o.TTL),
	}
	if err := c.o.Store.SaveConnectState(sys, p.Tenant, key(token), st); err != nil {
		return nil, err
	}
	conf := c.config(cr)
	authURL := conf.AuthCodeURL(p.Tenant+"."+token, oauth2.S256ChallengeOption(st.Verifier), oauth2.AccessTypeOffline)
	return &credgate.ConnectStart{AuthorizationURL: authURL, RedirectURI: st.RedirectURI, ExpiresAt: st.ExpiresAt}, nil
}

func mustParse(raw string) *url.URL {
	u, _ := url.Parse(raw)
	if u == nil {
		u = &url.URL{}
	}
	return u
}

// key is the record key of a state's secret part.
func key(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func (c *Connector) allowed(u string) bool {
	parsed, err := url.Parse(u)
	if err != nil || parsed.User != nil || (parsed.Scheme != "https" && parsed.Scheme != "http") {
		return false
	}
	return slices.ContainsFunc(c.o.RedirectAllow, func(prefix string) bool { return prefix != "" && strings.HasPrefix(u, prefix) })
}

func (c *Connector) config(cr *credgate.Credential) *oauth2.Config {
	style := oauth2.AuthStyleInParams
	if cr.Secrets["clientSecret"] != "" && cr.TokenEndpointAuthMethod != credgate.ClientSecretPost {
		style = oauth2.AuthStyleInHeader
	}
	return &oauth2.Config{
		ClientID: cr.Secrets["clientId"], ClientSecret: cr.Secrets["clientSecret"], Scopes: cr.Scopes, RedirectURL: c.RedirectURI(),
		Endpoint: oauth2.Endpoint{AuthURL: cr.AuthorizationEndpoint, TokenURL: cr.TokenEndpoint, AuthStyle: style},
	}
}

// Callback finishes the connect that query's state names: the provider's
// error, or the code exchanged at the token endpoint with the verifier,
// the tokens stored as the credential's next version. A state unknown,
// used, expired or altered stores nothing; neither does a refusal.
func (c *Connector) Callback(ctx context.Context, query url.Values) credgate.ConnectResult {
	tenant, token, ok := strings.Cut(query.Get("state"), ".")
	if !ok || !credgate.ValidID(tenant) || len(token) != 43 {
		return credgate.ConnectResult{Err: credgate.Errorf(credgate.EInvalidRequest, "this connect link is unknown; start the connect again")}
	}
	sys := credgate.WithPrincipal(ctx, credgate.SystemPrincipal(tenant))
	st, err := c.o.Store.TakeConnectState(sys, tenant, key(token))
	if err != nil {
		return credgate.ConnectResult{Err: err}
	}
	res := credgate.ConnectResult{RedirectAfter: st.RedirectAfter}
	if e := query.Get("error"); e != "" {
		res.Err = &credgate.Error{Code: credgate.EUpstreamError, Message: "the provider did not grant access (" + oauthCode(e) + "); nothing was stored", UpstreamError: oauthCode(e)}
		return res
	}
	code := query.Get("code")
	if code == "" {
		res.Err = credgate.Errorf(credgate.EInvalidRequest, "the provider sent no code; nothing was stored")
		return res
	}
	// The tokens are stored in the name of who started the connect, by
	// credgate's system principal (the browser carries no credgate token).
	actor := credgate.SystemPrincipal(tenant)
	actor.Subject, actor.Email, actor.Name = st.Subject, st.Email, st.Subject
	ctx = credgate.WithRequestID(credgate.WithPrincipal(ctx, actor), st.RequestID)
	cr, err := c.o.Store.CredentialAsCredgate(sys, tenant, st.Service, st.Credential, 0)
	if err != nil {
		res.Err = err
		return res
	}
	tok, err := c.config(cr).Exchange(context.WithValue(ctx, oauth2.HTTPClient, c.o.Client), code, oauth2.VerifierOption(st.Verifier))
	if err != nil {
		res.Err = exchangeError(cr, err)
		return res
	}
	var expiry *time.Time
	if !tok.Expiry.IsZero() {
		t := tok.Expiry.UTC().Truncate(time.Second)
		expiry = &t
	}
	may := []credgate.Event{credgate.NewEvent(ctx, credgate.EventConnected, cr)}
	if cr.Connection != nil && cr.Connection.State == credgate.ConnectionBroken {
		may = append(may, credgate.NewEvent(ctx, credgate.EventConnectionRestored, cr))
	}
	in, err := c.o.Events.Intend(ctx, may...)
	if err != nil {
		res.Err = err
		return res
	}
	var events []string
	out, err := c.o.Store.RotateCredential(in.Context(ctx), st.Credential, 0, func(x *credgate.Credential) error {
		events = x.Connected(tok.AccessToken, tok.RefreshToken, expiry, c.o.Now())
		return nil
	}, false)
	if err != nil {
		if code := credgate.ErrorCode(err); code != credgate.EBackendUnavailable && code != credgate.EInternal {
			in.Withdraw(ctx)
		}
		res.Err = err
		return res
	}
	for _, typ := range events {
		in.Confirm(ctx, credgate.NewEvent(ctx, typ, out))
	}
	in.Withdraw(ctx) // restored, when it was broken no more
	res.Credential = out
	return res
}

// oauthCode is an OAuth2 error code fit to repeat, or invalid_response.
func oauthCode(s string) string {
	if len(s) == 0 || len(s) > 64 {
		return "invalid_response"
	}
	for _, r := range s {
		if !(r == '_' || r == '-' || r == '.' || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9')) {
			return "invalid_response"
		}
	}
	return s
}

// exchangeError says why the code exchange failed, never what else the
// endpoint answered.
func exchangeError(cr *credgate.Credential, err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		return &credgate.Error{Code: credgate.EUpstreamError, Message: "the token endpoint refused the code (" + oauthCode(re.ErrorCode) + "); nothing was stored", UpstreamError: oauthCode(re.ErrorCode), Err: errors.New("code exchange refused")}
	}
	if why := outbound.Explain(mustParse(cr.TokenEndpoint), err); why != "" {
		return &credgate.Error{Code: credgate.EUpstreamError, Message: "the token endpoint " + why + "; nothing was stored", Err: err}
	}
	return &credgate.Error{Code: credgate.EUpstreamError, Message: "the token endpoint could not be reached or answered no token; nothing was stored", Err: err}
}

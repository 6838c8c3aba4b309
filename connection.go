package credgate

import (
	"encoding/json"
	"slices"
	"strings"
	"time"
)

// The rules of an OAuth2 credential's link with its provider: a credential
// made to be connected (authorization code with PKCE) awaits its first
// tokens; a refresh the provider refuses with invalid_grant (consent
// revoked, a refresh token lost) breaks the connection until a connect or
// a refresh succeeds; a client-credentials credential mints its access
// token when a read needs one.

// Connection states.
const (
	ConnectionPending   = "pending_connection" // awaits its first tokens (POST …/connect)
	ConnectionConnected = "connected"
	ConnectionBroken    = "reconnect_required" // the provider refused a refresh: connect again
)

// ConnectionStates lists the connection states.
var ConnectionStates = []string{ConnectionPending, ConnectionConnected, ConnectionBroken}

// Connection is where an OAuth2 credential's link with its provider
// stands; credgate sets it, a client reads it.
type Connection struct {
	State string    `json:"state"`
	Since time.Time `json:"since"`
	// Reason is the OAuth2 error code that broke it.
	Reason string `json:"reason,omitempty"`
}

// Events of connections.
const (
	EventConnected          = "credential.connected"
	EventConnectionBroken   = "credential.connection_broken"
	EventConnectionRestored = "credential.connection_restored"
)

// Token endpoint client authentication (RFC 6749 2.3.1; OAuth 2.0 client
// registration's token_endpoint_auth_method names).
const (
	ClientSecretBasic = "client_secret_basic"
	ClientSecretPost  = "client_secret_post"
)

// Connectable reports whether c may be connected through the
// authorization-code flow: an OAuth2 credential with an
// authorizationEndpoint, a tokenEndpoint and a clientId.
func (c *Credential) Connectable() bool {
	return authRules[c.AuthType].oauth2 && c.AuthorizationEndpoint != "" && c.TokenEndpoint != "" && c.Secrets["clientId"] != ""
}

// awaitsConnection reports whether c is an oauth2_bearer credential made to
// be connected that has no access token yet.
func (c *Credential) awaitsConnection() bool {
	return c.AuthType == AuthOAuth2Bearer && c.Secrets["accessToken"] == "" && c.Connectable()
}

// Pending reports whether c awaits its first tokens: its values are not
// served until a connect stores them.
func (c *Credential) Pending() bool {
	return c.Connection != nil && c.Connection.State == ConnectionPending
}

// ConnectionAfterRefresh is the rule of what a refresh does to c's
// connection at now: a refresh-token grant refused with invalid_grant
// breaks it (the connection is lost until connected again; event
// credential.connection_broken); a grant that succeeds on a broken one
// restores it (credential.connection_restored). It returns the new state
// and its event, or nil and "" when nothing changes.
func (c *Credential) ConnectionAfterRefresh(upstreamError string, ok bool, now time.Time) (*Connection, string) {
	now = now.UTC().Truncate(time.Second)
	broken := c.Connection != nil && c.Connection.State == ConnectionBroken
	switch {
	case ok && broken:
		return &Connection{State: ConnectionConnected, Since: now}, EventConnectionRestored
	case !ok && !broken && upstreamError == "invalid_grant" && c.Secrets["refreshToken"] != "":
		return &Connection{State: ConnectionBroken, Since: now, Reason: upstreamError}, EventConnectionBroken
	}
	return nil, ""
}

// brokenMark is how a broken connection is kept: bookkeeping in the
// credential's metadata, not a version (a refused refresh changes nothing
// of the record), for the version it was found at. A version written
// since (a refresh or a connect that succeeded, new values) is past it.
type brokenMark struct {
	Version int       `json:"v"`
	Since   time.Time `json:"since"`
	Reason  string    `json:"reason"`
}

// BrokenMark renders the mark of c's connection broken at its current
// version as next says (ConnectionAfterRefresh), for the metadata.
func (c *Credential) BrokenMark(next *Connection) string {
	b, _ := json.Marshal(brokenMark{Version: c.Version, Since: next.Since, Reason: next.Reason})
	return string(b)
}

// ApplyBrokenMark sets on c, read at its version, the broken connection
// the stored mark s records, if it is for that version.
func (c *Credential) ApplyBrokenMark(s string) {
	if s == "" { // most credentials: nothing to decode, nothing allocated
		return
	}
	var m brokenMark
	if json.Unmarshal([]byte(s), &m) != nil || m.Version != c.Version || c.Version == 0 {
		return
	}
	c.Connection = &Connection{State: ConnectionBroken, Since: m.Since, Reason: m.Reason}
}

// Connected records on c the first tokens (or new ones) a connect stored
// at now, and says which events that makes: credential.connected, and
// credential.connection_restored when it was broken.
func (c *Credential) Connected(accessToken, refreshToken string, expiresAt *time.Time, now time.Time) []string {
	events := []string{EventConnected}
	if c.Connection != nil && c.Connection.State == ConnectionBroken {
		events = append(events, EventConnectionRestored)
	}
	c.Secrets["accessToken"] = accessToken
	if refreshToken != "" {
		c.Secrets["refreshToken"] = refreshToken
	}
	c.ExpiresAt = expiresAt
	c.Connection = &Connection{State: ConnectionConnected, Since: now.UTC().Truncate(time.Second)}
	return events
}

// TokenDue reports whether a read of c's values is to mint a new access
// token first (client credentials, RFC 6749 4.4): c has none, or it ends
// within its lead time (refreshLeadTime, default DefaultRefreshLead; at
// most half the token's life, so a short-lived token is still reused).
func (c *Credential) TokenDue(now time.Time) bool {
	if c.AuthType != AuthOAuth2ClientCredentials || c.TokenEndpoint == "" || c.Secrets["refreshToken"] != "" || c.Status != CredActive {
		return false
	}
	if c.Secrets["accessToken"] == "" || c.ExpiresAt == nil {
		return c.Secrets["accessToken"] == ""
	}
	lead := DefaultRefreshLead
	if d, err := ParseWithin(c.RefreshLeadTime); err == nil {
		lead = d
	}
	if life := c.ExpiresAt.Sub(c.UpdatedAt); life > 0 && life/2 < lead {
		lead = life / 2
	}
	return !now.Before(c.ExpiresAt.Add(-lead))
}

// checkConnection names what is wrong with c's token endpoint
// authentication.
func (c *Credential) checkConnection(fe FieldErrors) {
	if m := c.TokenEndpointAuthMethod; m != "" && !slices.Contains([]string{ClientSecretBasic, ClientSecretPost}, m) {
		fe.Add("tokenEndpointAuthMethod", "must be "+strings.Join([]string{ClientSecretBasic, ClientSecretPost}, " or "))
	}
}

// ConnectState is what credgate keeps of a connect it started, until the
// provider's redirect comes back with its state (single use, short-lived):
// which credential, who asked, and the PKCE code verifier (RFC 7636).
type ConnectState struct {
	Service    string `json:"service"`
	Credential string `json:"credential"`
	// Subject and Email are the caller who started the connect; the
	// tokens are stored in their name.
	Subject   string `json:"subject"`
	Email     string `json:"email,omitempty"`
	RequestID string `json:"requestId,omitempty"`
	// Verifier is the PKCE code verifier: a secret, sent only to the
	// token endpoint.
	Verifier      string    `json:"verifier"`
	RedirectURI   string    `json:"redirectUri"`
	RedirectAfter string    `json:"redirectAfter,omitempty"`
	ExpiresAt     time.Time `json:"expiresAt"`
	Used          bool      `json:"used,omitempty"`
}

// DefaultConnectTTL is how long a connect's state waits for the
// provider's redirect.
const DefaultConnectTTL = 10 * time.Minute

// Take uses s at now: a state used before, or past its time, is refused
// (and stays used). Errors: INVALID_REQUEST saying which.
func (s *ConnectState) Take(now time.Time) error {
	switch {
	case s.Used:
		return Errorf(EInvalidRequest, "this connect link was used already; start the connect again")
	case !now.Before(s.ExpiresAt):
		s.Used = true
		return Errorf(EInvalidRequest, "this connect link expired; start the connect again")
	}
	s.Used = true
	return nil
}

// ConnectStart is what starting a connect answers: the URL a person opens
// (the provider's consent screen) and the redirect URI it comes back to.
type ConnectStart struct {
	AuthorizationURL string    `json:"authorizationUrl"`
	RedirectURI      string    `json:"redirectUri"`
	ExpiresAt        time.Time `json:"expiresAt"`
}

// ConnectResult is how a connect's callback ended.
type ConnectResult struct {
	// Credential is the credential connected (nil when nothing was
	// stored); RedirectAfter where the browser goes now, when the connect
	// named it; Err why nothing was stored.
	Credential    *Credential
	RedirectAfter string
	Err           error
}

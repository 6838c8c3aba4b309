package credgate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Credential is a set of secret values a tenant uses to call a service,
// with the non-secret fields that describe it. Secret values live only in
// Secrets; everything else may be shown to a viewer.
//
// The rules of a credential (which secret fields exist, what each auth type
// requires and may generate, the limits, which status is served) are here,
// beside the type; both API families and the store apply them.
type Credential struct {
	ID                    string         `json:"id"`
	IntegrationID         string         `json:"integrationId"`
	CredentialName        string         `json:"credentialName"`
	Description           string         `json:"description"`
	AuthType              string         `json:"authType"`
	Scopes                []string       `json:"scopes"`
	TokenEndpoint         string         `json:"tokenEndpoint"`
	AuthorizationEndpoint string         `json:"authorizationEndpoint"`
	Metadata              map[string]any `json:"metadata"`
	// Status is the stored status; see EffectiveStatus for what readers see.
	Status         string     `json:"status"`
	ExpiresAt      *time.Time `json:"expiresAt,omitempty"`
	CreatedAt      time.Time  `json:"createdAt"`
	UpdatedAt      time.Time  `json:"updatedAt"`
	CreatedBy      Actor      `json:"createdBy"`
	LastRotatedAt  *time.Time `json:"lastRotatedAt,omitempty"`
	LastAccessedAt *time.Time `json:"lastAccessedAt,omitempty"`
	// Version is the Vault KV version of the record: every change is one.
	Version int `json:"version"`

	// AutoRefresh asks credgate to refresh an OAuth2 credential by itself,
	// RefreshLeadTime (30m, 1h; default DefaultRefreshLead) before
	// ExpiresAt. Refresh says how refreshing has gone when it failed.
	AutoRefresh     bool          `json:"autoRefresh,omitempty"`
	RefreshLeadTime string        `json:"refreshLeadTime,omitempty"`
	Refresh         *RefreshState `json:"refresh,omitempty"`
	// RevokeAt schedules the credential's revocation: from then on it
	// reads as revoked and credgate stores it so.
	RevokeAt *time.Time `json:"revokeAt,omitempty"`
	// PreviousVersion, after a rotation that asked for it, is the version
	// whose values stay servable, beside the current ones, until
	// PreviousRevokeAt: a gradual migration from the old values.
	PreviousVersion  int        `json:"previousVersion,omitempty"`
	PreviousRevokeAt *time.Time `json:"previousRevokeAt,omitempty"`
	// RevokeWhenMigrated ends the previous version before its
	// PreviousRevokeAt, as soon as every recent reader of it has read the
	// current one (Migration).
	RevokeWhenMigrated bool `json:"revokeWhenMigrated,omitempty"`
	// RotationPolicy says how often the values are to be rotated, and
	// Rotator the tenant's rotator that rotates them (when due, or on
	// request). RotationDueAt is derived from the policy (or the tenant's
	// default) and the last rotation; Rotation is the latest rotation
	// through a rotator. Neither is stored with the record.
	RotationPolicy *RotationPolicy `json:"rotationPolicy,omitempty"`
	Rotator        string          `json:"rotator,omitempty"`
	RotationDueAt  *time.Time      `json:"rotationDueAt,omitempty"`
	Rotation       *RotationStatus `json:"rotation,omitempty"`
	// Notices are the expiry notices sent for the credential,
	// PreviousRevoked the previous version whose end was announced and
	// StalledNotice the one whose stalled migration was (bookkeeping of
	// the monitor, never shown).
	Notices         ExpiryNotices   `json:"-"`
	PreviousRevoked int             `json:"-"`
	StalledNotice   int             `json:"-"`
	RotationSent    RotationNotices `json:"-"`
	// Connection is where an OAuth2 credential's link with its provider
	// stands (credgate sets it); TokenEndpointAuthMethod is how credgate
	// authenticates at the token endpoint (client_secret_basic, the
	// default, or client_secret_post).
	Connection              *Connection `json:"connection,omitempty"`
	TokenEndpointAuthMethod string      `json:"tokenEndpointAuthMethod,omitempty"`

	// Secrets holds the secret values; nil when the reader may not see them.
	Secrets Secrets `json:"-"`
	// ReadAt is when the store read the credential: what it reads as
	// (EffectiveStatus) is judged at that instant by every layer that
	// shows or serves it, so they cannot disagree.
	ReadAt time.Time `json:"-"`
	// Behind is set on a description whose projection is older than the
	// credential's newest version (a write cut after its data): what it
	// says may be stale until the next write or the monitor finishes it.
	Behind bool `json:"-"`
}

// Auth types (API.md).
const (
	AuthAPIKey                  = "api_key"
	AuthBasic                   = "basic"
	AuthBearer                  = "bearer"
	AuthOAuth2Bearer            = "oauth2_bearer"
	AuthOAuth2ClientCredentials = "oauth2_client_credentials"
	AuthCustom                  = "custom"
)

// AuthTypes lists the auth types.
var AuthTypes = []string{AuthAPIKey, AuthBasic, AuthBearer, AuthOAuth2Bearer, AuthOAuth2ClientCredentials, AuthCustom}

// authRule is what an auth type asks of a credential.
type authRule struct {
	required []string // secret fields that must be set
	// generatable are the fields rotate {"generate":true} replaces when
	// they are set. Identifiers (username, clientId) are kept, and values an
	// OAuth2 provider issues are never made up.
	generatable    []string
	generateCustom bool // custom fields are generatable too
	// tokenEndpoint: "always" or "with refreshToken".
	tokenEndpoint string
	oauth2        bool // rotation may be a refresh-token grant
}

var authRules = map[string]authRule{
	AuthAPIKey:                  {required: []string{"apiKey"}, generatable: []string{"apiKey", "apiSecret", "webhookSecret"}},
	AuthBasic:                   {required: []string{"username", "password"}, generatable: []string{"password", "webhookSecret"}},
	AuthBearer:                  {required: []string{"accessToken"}, generatable: []string{"accessToken", "webhookSecret"}},
	AuthOAuth2Bearer:            {required: []string{"accessToken"}, generatable: []string{"webhookSecret"}, tokenEndpoint: "with refreshToken", oauth2: true},
	AuthOAuth2ClientCredentials: {required: []string{"clientId", "clientSecret"}, generatable: []string{"webhookSecret"}, tokenEndpoint: "always", oauth2: true},
	AuthCustom:                  {generatable: []string{"apiKey", "apiSecret", "clientSecret", "password", "accessToken", "refreshToken", "webhookSecret"}, generateCustom: true},
}

// Credential statuses. Expired is never stored: it is what an active
// credential past its expiresAt reads as.
const (
	CredActive   = "active"
	CredInactive = "inactive"
	CredExpired  = "expired"
	CredRevoked  = "revoked"
)

// StoredStatuses are the statuses a client may set.
var StoredStatuses = []string{CredActive, CredInactive, CredRevoked}

// CredentialStatuses are the statuses a reader may see.
var CredentialStatuses = []string{CredActive, CredInactive, CredExpired, CredRevoked}

// Limits of a credential's descriptive fields (secret values: MaxSecretBytes,
// MaxCustomFields; metadata: CredentialMetadataLimits).
const (
	MaxScopes     = 32
	MaxScopeBytes = 128
)

// Validate reports every field of c that breaks the rules of a credential
// and of its auth type (VALIDATION_FAILED), or nil. It trims the spaces
// around the name and the endpoints first.
func (c *Credential) Validate() error {
	c.CredentialName = strings.TrimSpace(c.CredentialName)
	c.Description = strings.TrimSpace(c.Description)
	c.TokenEndpoint = strings.TrimSpace(c.TokenEndpoint)
	c.AuthorizationEndpoint = strings.TrimSpace(c.AuthorizationEndpoint)
	fe := FieldErrors{}
	if c.CredentialName == "" {
		fe.Add("credentialName", "is required")
	}
	checkText(fe, "credentialName", c.CredentialName, MaxNameBytes)
	checkText(fe, "description", c.Description, MaxDescriptionBytes)
	if !slices.Contains(StoredStatuses, c.Status) {
		fe.Add("status", "must be active, inactive or revoked")
	}
	if len(c.Scopes) > MaxScopes {
		fe.Add("scopes", fmt.Sprintf("at most %d", MaxScopes))
	}
	for _, s := range c.Scopes {
		if s == "" || len(s) > MaxScopeBytes || strings.ContainsAny(s, " \t\r\n") {
			fe.Add("scopes", fmt.Sprintf("each scope is 1 to %d bytes without spaces", MaxScopeBytes))
		}
	}
	checkURL(fe, "tokenEndpoint", c.TokenEndpoint)
	checkURL(fe, "authorizationEndpoint", c.AuthorizationEndpoint)
	CredentialMetadataLimits.check(fe, "metadata", c.Metadata)
	c.Secrets.check(fe)
	if c.RefreshLeadTime != "" {
		if _, err := ParseWithin(c.RefreshLeadTime); err != nil {
			fe.Add("refreshLeadTime", "must be "+err.Error())
		}
	}
	rule, ok := authRules[c.AuthType]
	if !ok {
		fe.Add("authType", "must be one of "+strings.Join(AuthTypes, ", "))
		return fe.Err()
	}
	c.checkConnection(fe)
	awaits := c.awaitsConnection()
	for _, f := range rule.required {
		if c.Secrets[f] == "" && !(f == "accessToken" && awaits) {
			fe.Add(f, "is required for authType "+c.AuthType+" (an oauth2_bearer credential with authorizationEndpoint, tokenEndpoint and clientId may instead await its connection)")
		}
	}
	switch pending := c.Pending(); {
	case awaits && !pending:
		c.Connection = &Connection{State: ConnectionPending, Since: time.Now().UTC().Truncate(time.Second)}
	case !awaits && pending: // its tokens were stored by hand
		c.Connection = &Connection{State: ConnectionConnected, Since: time.Now().UTC().Truncate(time.Second)}
	}
	switch {
	case c.TokenEndpoint != "":
	case rule.tokenEndpoint == "always":
		fe.Add("tokenEndpoint", "is required for authType "+c.AuthType)
	case rule.tokenEndpoint == "with refreshToken" && c.Secrets["refreshToken"] != "":
		fe.Add("tokenEndpoint", "is required with a refreshToken")
	}
	if c.AutoRefresh && !c.CanRefresh() {
		fe.Add("autoRefresh", "needs an OAuth2 credential with a tokenEndpoint and a refreshToken (or a client-credentials one)")
	}
	c.RotationPolicy.Check(fe, "rotationPolicy")
	if c.Rotator != "" && !ValidRotatorID(c.Rotator) {
		fe.Add("rotator", "must be a rotator id (rot_<uuid>)")
	}
	if c.AuthType == AuthCustom && len(c.Secrets) == 0 {
		fe.Add("customFields", "a custom credential needs at least one secret value")
	}
	return fe.Err()
}

// CanRefresh reports whether rotation is an OAuth2 grant: a refresh-token
// grant, or for a client-credentials credential without a refresh token, a
// client-credentials grant.
func (c *Credential) CanRefresh() bool {
	return authRules[c.AuthType].oauth2 && c.TokenEndpoint != "" && (c.Secrets["refreshToken"] != "" || c.AuthType == AuthOAuth2ClientCredentials)
}

// Generate replaces the secret values credgate may generate for c (the auth
// type's generatable fields that are set) with values from random.
// Errors: VALIDATION_FAILED when c has none; random's.
func (c *Credential) Generate(random func() (string, error)) error {
	rule := authRules[c.AuthType]
	var keys []string
	for _, f := range rule.generatable {
		if c.Secrets[f] != "" {
			keys = append(keys, f)
		}
	}
	if rule.generateCustom {
		for key := range c.Secrets.Custom() {
			keys = append(keys, CustomKey(key))
		}
	}
	if len(keys) == 0 {
		return FieldErrors{"generate": "this credential has no value credgate can generate; send new values"}.Err()
	}
	for _, k := range keys {
		v, err := random()
		if err != nil {
			return err
		}
		c.Secrets[k] = v
	}
	return nil
}

// EffectiveStatus is the status a reader sees at now: a credential past its
// revokeAt is revoked, an active credential past its expiresAt is expired.
func (c *Credential) EffectiveStatus(now time.Time) string {
	if c.RevokeAt != nil && !now.Before(*c.RevokeAt) {
		return CredRevoked
	}
	if c.Status == CredActive && c.ExpiresAt != nil && !now.Before(*c.ExpiresAt) {
		return CredExpired
	}
	return c.Status
}

// RevocationDue reports whether c reads as revoked at now (its revokeAt
// has come) while it is not stored so: credgate is to store it revoked.
func (c *Credential) RevocationDue(now time.Time) bool {
	return c.Status != CredRevoked && c.EffectiveStatus(now) == CredRevoked
}

// CheckSuccessor is the rule of what a change may make of old (c is what
// it makes) at now:
// revoked is final. A credential that reads as revoked (stored so, or past
// its revokeAt) stays revoked: no change sets it active or inactive again
// or moves its revokeAt; new values are a new credential. Its descriptive
// fields may still change. Errors: VALIDATION_FAILED naming status.
func (c *Credential) CheckSuccessor(old *Credential, now time.Time) error {
	if old.EffectiveStatus(now) == CredRevoked && c.EffectiveStatus(now) != CredRevoked {
		return FieldErrors{"status": "stays revoked: revoked is final; store a new credential for new values"}.Err()
	}
	return nil
}

// Servable is the rule of which values are served: an active or expired
// credential's (expired ones so a client can see it and rotate), never a
// revoked or inactive one's, whichever version is asked for.
// Errors: CREDENTIAL_NOT_FOUND naming the status.
func (c *Credential) Servable(now time.Time) error {
	switch st := c.EffectiveStatus(now); st {
	case CredActive, CredExpired:
		if c.Pending() {
			return &Error{Code: ECredentialNotFound, Message: "the credential awaits its OAuth2 connection (POST /api/v1/credentials/" + c.ID + "/connect); it has no tokens yet"}
		}
		return nil
	default:
		return &Error{Code: ECredentialNotFound, Message: "the credential is " + st + "; its values are not served", Status: st}
	}
}

// ServesVersion reports whether version v of c may be read by a reader
// (not only by who may write it, which reads any version of its history):
// the current one, or the previous one until its PreviousRevokeAt.
func (c *Credential) ServesVersion(v int, now time.Time) bool {
	return v == c.Version || (v == c.PreviousVersion && c.PreviousRevokeAt != nil && now.Before(*c.PreviousRevokeAt))
}

// CredentialRead names the credential a read of values is for (GET
// /api/v1/credentials/{integrationId}?credentialId=…&version=…).
type CredentialRead struct {
	Service string
	ID      string // "" for the one the service serves (PickServable)
	Version int    // 0: the current one
	// History lets the read reach the earlier versions kept (the caller
	// may write the credential: its history is theirs); without it, only
	// the current one and the previous one a migration keeps servable.
	History bool
}

// MayRead is the rule of which versions of c (read at c.ReadAt) r may
// reach: the current one; the previous one a rotation keeps servable until
// its PreviousRevokeAt, and never after, whoever asks (revoked is final);
// with History, the other earlier versions kept.
// Errors: CREDENTIAL_NOT_FOUND naming the revoked status, for the previous
// version after its PreviousRevokeAt; INSUFFICIENT_PERMISSIONS.
func (r CredentialRead) MayRead(c *Credential) error {
	switch {
	case r.Version == 0 || r.Version == c.Version || c.ServesVersion(r.Version, c.ReadAt):
		return nil
	case r.Version == c.PreviousVersion && c.PreviousRevokeAt != nil:
		return &Error{Code: ECredentialNotFound, Message: fmt.Sprintf("version %d of credential %s was revoked at its previousRevokeAt; read the current one", r.Version, c.ID), Status: CredRevoked}
	case r.History:
		return nil
	}
	return Errorf(EInsufficientPermissions, "reading an earlier version of credential %s needs the credentials:write permission", c.ID)
}

// KeepPrevious makes a rotation of c keep its current values servable
// until (nil: the rotation ends them at once), or until every recent
// reader of them has moved to the new ones when whenMigrated.
func (c *Credential) KeepPrevious(until *time.Time, whenMigrated bool) {
	c.PreviousVersion, c.PreviousRevokeAt, c.RevokeWhenMigrated = 0, nil, false
	if until != nil {
		c.PreviousVersion, c.PreviousRevokeAt, c.RevokeWhenMigrated = c.Version, until, whenMigrated
	}
}

// PickServable returns the credential a read without a credential id
// serves: the newest active one of list, else the newest expired one, else
// nil. Revoked and inactive credentials are never picked.
func PickServable(list []*Credential, now time.Time) *Credential {
	var best, bestExpired *Credential
	for _, c := range list {
		if c.Pending() {
			continue // nothing to serve yet
		}
		switch c.EffectiveStatus(now) {
		case CredActive:
			if best == nil || c.CreatedAt.After(best.CreatedAt) {
				best = c
			}
		case CredExpired:
			if bestExpired == nil || c.CreatedAt.After(bestExpired.CreatedAt) {
				bestExpired = c
			}
		}
	}
	if best != nil {
		return best
	}
	return bestExpired
}

// CredentialIDPattern is the rule of credential ids, in any case.
const CredentialIDPattern = `^(cred-)?[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`

// CanonicalCredentialID returns the one form, cred-<uuid> in lower case, of
// a credential id given as cred-<uuid> or as the bare UUID (either case);
// ok is false for anything else. Generated ids are already canonical.
// (CredentialIDPattern by hand; a fuzz target holds the two to each other.)
func CanonicalCredentialID(id string) (canonical string, ok bool) {
	id = strings.ToLower(id)
	uuid := strings.TrimPrefix(id, "cred-")
	if len(uuid) != 36 {
		return "", false
	}
	for i := 0; i < len(uuid); i++ {
		switch c := uuid[i]; {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return "", false
			}
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f':
		default:
			return "", false
		}
	}
	return "cred-" + uuid, true
}

// CredentialVersion is one entry of a credential's history. It never holds
// a secret value.
type CredentialVersion struct {
	Version   int        `json:"version"`
	CreatedAt time.Time  `json:"createdAt"`
	Change    string     `json:"change"` // created, updated, rotated; "" when unknown
	ChangedBy string     `json:"changedBy,omitempty"`
	DeletedAt *time.Time `json:"deletedAt,omitempty"`
	Destroyed bool       `json:"destroyed,omitempty"`
	Current   bool       `json:"current"`
}

// Changes recorded in a credential's history.
const (
	ChangeCreated = "created"
	ChangeUpdated = "updated" // descriptive fields only
	ChangeRotated = "rotated" // secret values changed
)

// ChangeOf says what turning old into new changed: rotated when any secret
// value differs, else updated.
func ChangeOf(old, new Secrets) string {
	if len(old) != len(new) {
		return ChangeRotated
	}
	for k, v := range old {
		if w, ok := new[k]; !ok || w != v {
			return ChangeRotated
		}
	}
	return ChangeUpdated
}

// DefaultRefreshLead is how long before expiresAt an autoRefresh credential
// is refreshed when it names no lead time.
const DefaultRefreshLead = 5 * time.Minute

// RefreshState is the record of an autoRefresh credential whose refreshes
// failed: a client sees it on the credential, and credgate backs off.
type RefreshState struct {
	Failures      int        `json:"failures"`
	FailingSince  time.Time  `json:"failingSince"`
	LastError     string     `json:"lastError"` // an error code, never a value
	NextAttemptAt *time.Time `json:"nextAttemptAt,omitempty"`
}

// RefreshAt is when an autoRefresh credential is due for refresh; ok is
// false when it is not refreshed by credgate (no autoRefresh, no expiry,
// not active).
func (c *Credential) RefreshAt() (at time.Time, ok bool) {
	if !c.AutoRefresh || c.ExpiresAt == nil || c.Status != CredActive {
		return time.Time{}, false
	}
	lead := DefaultRefreshLead
	if d, err := ParseWithin(c.RefreshLeadTime); err == nil {
		lead = d
	}
	at = c.ExpiresAt.Add(-lead)
	if r := c.Refresh; r != nil && r.NextAttemptAt != nil && r.NextAttemptAt.After(at) {
		at = *r.NextAttemptAt
	}
	return at, true
}

// RefreshGrant performs an OAuth2 refresh-token grant for c and returns the
// secret values to set (accessToken, refreshToken) and the new expiry.
type RefreshGrant func(ctx context.Context, c *Credential) (Secrets, *time.Time, error)

// PrimaryUpdate is what the services family sets on a service's primary
// credential (the one a read without a credential id serves): all its secret
// values, and its expiry when SetExpiry. When the service has no servable
// credential, a custom one named "default" is made.
type PrimaryUpdate struct {
	Secrets   Secrets
	ExpiresAt *time.Time
	SetExpiry bool
	// CredentialID, when set, must name the current primary credential: a
	// client that sends back what it read writes to what it read.
	CredentialID string
	// NewID, when set, is the id of the credential made when the service
	// has none to update, and the service must have none (its creation
	// was announced under that id before the write: Intent).
	NewID string
	// Written, when set, is told what the write was: the credential as
	// written and its event (created, rotated, or "" for a change of
	// expiry only).
	Written func(c *Credential, event string)
}

// NewPrimary returns the credential made for u on service when the service
// has none to update.
func (u PrimaryUpdate) NewPrimary(service string) *Credential {
	return &Credential{
		ID: u.NewID, IntegrationID: service, CredentialName: "default", AuthType: AuthCustom, Status: CredActive,
		Metadata: map[string]any{}, Secrets: u.Secrets.Clone(), ExpiresAt: u.ExpiresAt,
	}
}

// Apply sets u on c, the current primary credential.
func (u PrimaryUpdate) Apply(c *Credential) {
	c.Secrets = u.Secrets.Clone()
	if u.SetExpiry {
		c.ExpiresAt = u.ExpiresAt
	}
}

// maxWithin bounds lead times: ten years.
const maxWithin = 3650 * 24 * time.Hour

// ParseWithin reads a lead time such as 30d, 12h or 90m (days, hours,
// minutes; a whole positive number, at most 3650 days).
func ParseWithin(s string) (time.Duration, error) {
	if len(s) < 2 {
		return 0, errors.New("a whole number of days, hours or minutes: 30d, 12h, 90m")
	}
	n, err := strconv.Atoi(s[:len(s)-1])
	unit := map[byte]time.Duration{'d': 24 * time.Hour, 'h': time.Hour, 'm': time.Minute}[s[len(s)-1]]
	// n is compared before it is multiplied: a huge n would overflow.
	if err != nil || n < 1 || unit == 0 || int64(n) > int64(maxWithin/unit) {
		return 0, errors.New("a whole number of days, hours or minutes: 30d, 12h, 90m")
	}
	return time.Duration(n) * unit, nil
}

// ExpiryBucket is how soon c expires at now: expired, lt_1d, lt_7d,
// lt_30d, or "" (later, or never).
func (c *Credential) ExpiryBucket(now time.Time) string {
	if c.ExpiresAt == nil {
		return ""
	}
	switch left := c.ExpiresAt.Sub(now); {
	case left <= 0:
		return "expired"
	case left < 24*time.Hour:
		return "lt_1d"
	case left < 7*24*time.Hour:
		return "lt_7d"
	case left < 30*24*time.Hour:
		return "lt_30d"
	}
	return ""
}

// UnusedSince reports whether nobody read c's values since t: its last
// read was before t, or it was never read and existed before t.
func (c *Credential) UnusedSince(t time.Time) bool {
	if c.LastAccessedAt != nil {
		return c.LastAccessedAt.Before(t)
	}
	return c.CreatedAt.Before(t)
}

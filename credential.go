package credgate

import (
	"context"
	"regexp"
	"strings"
	"time"
)

// Credential is a set of secret values a tenant uses to call a service,
// with the non-secret fields that describe it. Secret values live only in
// Secrets; everything else may be shown to a viewer.
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
	ExpiresAt      *time.Time `json:"expiresAt"`
	CreatedAt      time.Time  `json:"createdAt"`
	UpdatedAt      time.Time  `json:"updatedAt"`
	CreatedBy      Actor      `json:"createdBy"`
	LastRotatedAt  *time.Time `json:"lastRotatedAt,omitempty"`
	LastAccessedAt *time.Time `json:"lastAccessedAt"`
	// Version is the Vault KV version of the record: every change is one.
	Version int `json:"version"`

	// Secrets holds the secret values by their field name (apiKey,
	// accessToken, ...); nil when the reader may not see them.
	Secrets map[string]string `json:"-"`
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

// Credential statuses. Expired is never stored: it is what an active
// credential past its expiresAt reads as.
const (
	CredActive   = "active"
	CredInactive = "inactive"
	CredExpired  = "expired"
	CredRevoked  = "revoked"
)

// SecretFields are the credentials family's secret fields, in the order
// they are documented.
var SecretFields = []string{"apiKey", "apiSecret", "clientId", "clientSecret", "username", "password", "webhookSecret", "accessToken", "refreshToken"}

// IsSecretField reports whether name is one of SecretFields.
func IsSecretField(name string) bool {
	for _, f := range SecretFields {
		if f == name {
			return true
		}
	}
	return false
}

// EffectiveStatus is the status a reader sees at now: an active credential
// past its expiresAt is expired.
func (c *Credential) EffectiveStatus(now time.Time) string {
	if c.Status == CredActive && c.ExpiresAt != nil && !now.Before(*c.ExpiresAt) {
		return CredExpired
	}
	return c.Status
}

// CanRefresh reports whether rotation is an OAuth2 refresh-token grant.
func (c *Credential) CanRefresh() bool {
	return (c.AuthType == AuthOAuth2Bearer || c.AuthType == AuthOAuth2ClientCredentials) &&
		c.TokenEndpoint != "" && c.Secrets["refreshToken"] != ""
}

var credIDPattern = regexp.MustCompile(`^(cred-)?[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// ValidCredentialID reports whether id may name a credential: cred-<uuid>
// or a bare UUID, lower-case hex.
func ValidCredentialID(id string) bool { return credIDPattern.MatchString(id) }

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

// RefreshGrant performs an OAuth2 refresh-token grant for c and returns the
// secret values to set (accessToken, refreshToken) and the new expiry.
type RefreshGrant func(ctx context.Context, c *Credential) (map[string]string, *time.Time, error)

// PickServable returns the id of the newest active credential of list, else
// of the newest expired one, else "". Revoked and inactive credentials are
// never picked.
func PickServable(list []*Credential, now time.Time) string {
	best, bestExpired := "", ""
	var bt, bet time.Time
	for _, c := range list {
		switch c.EffectiveStatus(now) {
		case CredActive:
			if best == "" || c.CreatedAt.After(bt) {
				best, bt = c.ID, c.CreatedAt
			}
		case CredExpired:
			if bestExpired == "" || c.CreatedAt.After(bet) {
				bestExpired, bet = c.ID, c.CreatedAt
			}
		}
	}
	if best != "" {
		return best
	}
	return bestExpired
}

// NormalizeCredentialID lower-cases the hex of a credential id.
func NormalizeCredentialID(id string) string { return strings.ToLower(id) }

package httpapi

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/credgate/credgate"
)

// The services family sees a service's credentials as one string map: the
// service's primary credential (its newest active one, as the credentials
// family's default read). Known keys map to the credentials family's secret
// fields (api_key <-> apiKey); any other key (environment, ...) is kept as
// a custom field of that credential.
var snakeToField = map[string]string{
	"api_key": "apiKey", "api_secret": "apiSecret", "client_id": "clientId", "client_secret": "clientSecret",
	"access_token": "accessToken", "refresh_token": "refreshToken", "webhook_secret": "webhookSecret",
	"username": "username", "password": "password",
}

// fieldToSnake is snakeToField the other way round.
var fieldToSnake = func() map[string]string {
	m := make(map[string]string, len(snakeToField))
	for snake, field := range snakeToField {
		m[field] = snake
	}
	return m
}()

func toSecrets(in map[string]string) map[string]string {
	out := make(map[string]string, len(in))
	for k, v := range in {
		if f, ok := snakeToField[k]; ok {
			out[f] = v
		} else {
			out[customPrefix+k] = v
		}
	}
	return out
}

func fromSecrets(secrets map[string]string, mask bool) map[string]string {
	out := make(map[string]string, len(secrets))
	for f, v := range secrets {
		if mask {
			v = masked
		}
		if k, ok := strings.CutPrefix(f, customPrefix); ok {
			out[k] = v
		} else if snake, ok := fieldToSnake[f]; ok {
			out[snake] = v
		}
	}
	return out
}

type serviceCredentials struct {
	ServiceID    string            `json:"service_id"`
	CredentialID string            `json:"credential_id"`
	Credentials  map[string]string `json:"credentials"`
	Metadata     struct {
		LastRotated *time.Time `json:"last_rotated"`
		ExpiresAt   *time.Time `json:"expires_at"`
	} `json:"metadata"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	Version   int       `json:"version"`
}

func serviceCredentialsOf(c *credgate.Credential, mask bool) *serviceCredentials {
	out := &serviceCredentials{ServiceID: c.IntegrationID, CredentialID: c.ID, Credentials: fromSecrets(c.Secrets, mask), CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt, Version: c.Version}
	out.Metadata.LastRotated = c.LastRotatedAt
	if out.Metadata.LastRotated == nil {
		out.Metadata.LastRotated = &c.CreatedAt
	}
	out.Metadata.ExpiresAt = c.ExpiresAt
	return out
}

// noCredentials turns "no credential" into the services family's code.
func noCredentials(err error) error {
	if credgate.ErrorCode(err) == credgate.ECredentialNotFound {
		return &credgate.Error{Code: credgate.ECredentialsNotFound, Message: "the service has no credentials", Details: map[string]any{}, Err: err}
	}
	return err
}

func (h *handlers) getServiceCredentials(c *gin.Context) {
	id, err := serviceID(c)
	if err != nil {
		fail(c, err)
		return
	}
	ctx := c.Request.Context()
	if _, err := h.store.GetService(ctx, id); err != nil {
		fail(c, err)
		return
	}
	cred, err := h.creds.GetCredential(ctx, id, "", 0)
	if err != nil {
		fail(c, noCredentials(err))
		return
	}
	if h.access != nil {
		h.access.RecordAccess(ctx, id, cred.ID)
	}
	c.Header("ETag", etag(cred.Version))
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, serviceCredentialsOf(cred, false))
}

type putServiceCredentialsInput struct {
	Credentials map[string]string `json:"credentials"`
	Metadata    *struct {
		ExpiresAt *time.Time `json:"expires_at"`
	} `json:"metadata"`
}

func (h *handlers) putServiceCredentials(c *gin.Context) {
	id, ifMatch, err := writeTarget(c)
	if err != nil {
		fail(c, err)
		return
	}
	var in putServiceCredentialsInput
	if err := decodeJSON(c.Request.Body, &in); err != nil {
		fail(c, err)
		return
	}
	var expires *time.Time
	if in.Metadata != nil {
		expires = in.Metadata.ExpiresAt
	}
	out, err := h.setServiceCredentials(c, id, in.Credentials, expires, ifMatch)
	if err != nil {
		fail(c, err)
		return
	}
	c.Header("ETag", etag(out.Version))
	c.JSON(http.StatusOK, serviceCredentialsOf(out, true))
}

// setServiceCredentials replaces the values of the service's primary
// credential with creds, as a new version, or creates that credential
// (authType custom) when the service has none.
func (h *handlers) setServiceCredentials(c *gin.Context, service string, creds map[string]string, expires *time.Time, ifMatch int) (*credgate.Credential, error) {
	if len(creds) == 0 {
		return nil, validationFailed(map[string]string{"credentials": "is required: an object of string values"})
	}
	bad := map[string]string{}
	for k, v := range creds {
		switch {
		case !customKey.MatchString(k):
			bad["credentials"] = "keys match " + customKey.String()
		case v == "":
			bad["credentials."+k] = "must not be empty"
		case len(v) > maxSecretBytes:
			bad["credentials."+k] = "is too long"
		}
	}
	if len(creds) > maxCustomFields {
		bad["credentials"] = "too many keys"
	}
	if len(bad) > 0 {
		return nil, validationFailed(bad)
	}
	ctx := c.Request.Context()
	if _, err := h.store.GetService(ctx, service); err != nil {
		return nil, err
	}
	if expires != nil {
		t := expires.UTC()
		expires = &t
	}
	cur, err := h.creds.GetCredential(ctx, service, "", 0)
	// No servable credential (none, or only revoked or inactive ones): a new
	// active one is made.
	if credgate.ErrorCode(err) == credgate.ECredentialNotFound {
		if ifMatch > 0 {
			return nil, noCredentials(err)
		}
		return h.creds.CreateCredential(ctx, &credgate.Credential{
			IntegrationID: service, CredentialName: "default", AuthType: credgate.AuthCustom,
			Status: credgate.CredActive, Metadata: map[string]any{}, Secrets: toSecrets(creds), ExpiresAt: expires,
		})
	}
	if err != nil {
		return nil, err
	}
	return h.creds.UpdateCredential(ctx, cur.ID, func(cr *credgate.Credential) (string, error) {
		if ifMatch > 0 && cr.Version != ifMatch {
			return "", versionConflict(cr.Version, ifMatch)
		}
		cr.Secrets = toSecrets(creds)
		cr.ExpiresAt = expires
		return credgate.ChangeRotated, nil
	})
}

type serviceCredentialVersions struct {
	ServiceID    string                       `json:"service_id"`
	CredentialID string                       `json:"credential_id"`
	Versions     []serviceCredentialVersionV1 `json:"versions"`
}

type serviceCredentialVersionV1 struct {
	Version   int        `json:"version"`
	CreatedAt time.Time  `json:"created_at"`
	Change    string     `json:"change"`
	ChangedBy string     `json:"changed_by,omitempty"`
	DeletedAt *time.Time `json:"deleted_at,omitempty"`
	Destroyed bool       `json:"destroyed,omitempty"`
	Current   bool       `json:"current"`
}

func (h *handlers) serviceCredentialVersions(c *gin.Context) {
	id, err := serviceID(c)
	if err != nil {
		fail(c, err)
		return
	}
	ctx := c.Request.Context()
	list, err := h.creds.ListCredentials(ctx, id)
	if err != nil {
		fail(c, err)
		return
	}
	primary := credgate.PickServable(list, time.Now())
	if primary == "" {
		fail(c, noCredentials(credgate.Errorf(credgate.ECredentialNotFound, "no credential")))
		return
	}
	versions, err := h.creds.CredentialVersions(ctx, primary)
	if err != nil {
		fail(c, noCredentials(err))
		return
	}
	out := serviceCredentialVersions{ServiceID: id, CredentialID: primary, Versions: make([]serviceCredentialVersionV1, len(versions))}
	for i, v := range versions {
		out.Versions[i] = serviceCredentialVersionV1(v)
	}
	c.JSON(http.StatusOK, out)
}

// decodeCredentialsField reads the optional credentials of a service PUT.
func decodeCredentialsField(raw json.RawMessage) (map[string]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var m map[string]string
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, validationFailed(map[string]string{"credentials": "must be an object of string values"})
	}
	if m == nil {
		m = map[string]string{}
	}
	return m, nil
}

package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/credgate/credgate"
)

// The services family sees a service's credentials as one string map: the
// values of its primary credential (the one the credentials family reads
// without a credentialId), keyed as credgate.Secrets.ServiceKeys says.

type serviceCredentials struct {
	ServiceID    string                 `json:"service_id"`
	CredentialID string                 `json:"credential_id"`
	Credentials  map[string]string      `json:"credentials"`
	Metadata     serviceCredentialsMeta `json:"metadata"`
	CreatedAt    time.Time              `json:"created_at"`
	UpdatedAt    time.Time              `json:"updated_at"`
	Version      int                    `json:"version"`
}

// serviceCredentialsMeta: optional fields are left out when unset.
type serviceCredentialsMeta struct {
	LastRotated *time.Time `json:"last_rotated,omitempty"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
}

func serviceCredentialsOf(c *credgate.Credential, r reveal) *serviceCredentials {
	out := &serviceCredentials{ServiceID: c.IntegrationID, CredentialID: c.ID, Credentials: c.Secrets.ServiceKeys(), CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt, Version: c.Version}
	if r == maskSecrets {
		for k := range out.Credentials {
			out.Credentials[k] = masked
		}
	}
	out.Metadata.LastRotated = c.LastRotatedAt
	if out.Metadata.LastRotated == nil {
		out.Metadata.LastRotated = &c.CreatedAt
	}
	out.Metadata.ExpiresAt = c.ExpiresAt
	return out
}

// inServiceTerms says a credential's problems in the services family's
// words: its codes (CREDENTIALS_NOT_FOUND) and field names
// (credentials.api_key).
func inServiceTerms(err error) error {
	var e *credgate.Error
	if !errors.As(err, &e) {
		return err
	}
	switch {
	case e.Code == credgate.ECredentialNotFound:
		return &credgate.Error{Code: credgate.ECredentialsNotFound, Message: "the service has no credentials", Err: fmt.Errorf("%w: %w", credgate.ErrUnnamed, err)}
	case len(e.Fields) > 0:
		return e.Fields.InServiceTerms().Err()
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
	cred, err := h.creds.GetCredential(ctx, credgate.CredentialRead{Service: id})
	if err != nil {
		if credgate.ErrorCode(err) == credgate.EInsufficientPermissions {
			h.denied(ctx, id, "", credgate.ErrorMessage(err))
		}
		fail(c, inServiceTerms(err))
		return
	}
	if h.access != nil {
		h.access.RecordAccess(ctx, id, cred.ID)
		h.access.RecordRead(ctx, id, cred.ID, cred.Version, grantOf(ctx, id))
	}
	c.Header("ETag", etag(cred.Version))
	c.Header("Cache-Control", "no-store")
	writeJSON(c, http.StatusOK, serviceCredentialsOf(cred, showSecrets))
}

// putServiceCredentialsInput is the body of PUT .../credentials. The
// read-only fields of what GET answers are accepted, so a client can send
// back what it read: service_id must name the service, and credential_id,
// when sent, must still be the service's primary credential.
type putServiceCredentialsInput struct {
	Credentials json.RawMessage `json:"credentials"`
	Metadata    *struct {
		ExpiresAt   json.RawMessage `json:"expires_at"`
		LastRotated json.RawMessage `json:"last_rotated"`
	} `json:"metadata"`

	ServiceID    *string         `json:"service_id"`
	CredentialID *string         `json:"credential_id"`
	CreatedAt    json.RawMessage `json:"created_at"`
	UpdatedAt    json.RawMessage `json:"updated_at"`
	Version      json.RawMessage `json:"version"`
}

// putServiceCredentials replaces the values of the service's primary
// credential as a new version; metadata.expires_at sets its expiry (null
// clears it; absent keeps it). A service with no servable credential gets
// a new one.
func (h *handlers) putServiceCredentials(c *gin.Context) {
	id, version, err := writeTarget(c)
	if err != nil {
		fail(c, err)
		return
	}
	var in putServiceCredentialsInput
	if err := decodeJSON(c.Request.Body, &in); err != nil {
		fail(c, err)
		return
	}
	fe := credgate.FieldErrors{}
	u := serviceCredentialsValues(fe, "credentials", in.Credentials)
	if in.ServiceID != nil && *in.ServiceID != id {
		fe.Add("service_id", "must match the id in the path")
	}
	if in.CredentialID != nil {
		if cid, ok := credgate.CanonicalCredentialID(*in.CredentialID); ok {
			u.CredentialID = cid
		} else {
			fe.Add("credential_id", "must be cred-<uuid> or a UUID")
		}
	}
	if in.Metadata != nil && in.Metadata.ExpiresAt != nil {
		u.ExpiresAt, u.SetExpiry = timeOrNull(fe, "metadata.expires_at", in.Metadata.ExpiresAt), true
	}
	if err := fe.Err(); err != nil {
		fail(c, err)
		return
	}
	ctx, ann, err := h.intendPrimary(c.Request.Context(), id, u)
	if err != nil {
		fail(c, inServiceTerms(err))
		return
	}
	out, event, err := h.primary.SetPrimaryCredential(ctx, id, version, *u)
	if err == nil && event != "" {
		ann.happened(ctx, event, out)
	}
	ann.done(ctx, err)
	if err != nil {
		fail(c, inServiceTerms(err))
		return
	}
	c.Header("ETag", etag(out.Version))
	writeJSON(c, http.StatusOK, serviceCredentialsOf(out, maskSecrets))
}

// serviceCredentialsValues reads the services family's credentials map:
// an object of string values, at least one. Keys name a secret field
// (api_key) or a custom field.
func serviceCredentialsValues(fe credgate.FieldErrors, field string, raw json.RawMessage) *credgate.PrimaryUpdate {
	var m map[string]string
	if len(raw) == 0 || json.Unmarshal(raw, &m) != nil || m == nil {
		fe.Add(field, "is required: an object of string values")
		return &credgate.PrimaryUpdate{}
	}
	if len(m) == 0 {
		fe.Add(field, "must hold at least one value")
	}
	for k, v := range m {
		if !credgate.ValidCustomKey(k) {
			fe.Add(field, "keys match "+credgate.CustomKeyPattern)
		}
		if v == masked {
			fe.Add(field+"."+k, maskRefused)
		}
	}
	return &credgate.PrimaryUpdate{Secrets: credgate.SecretsFromServiceKeys(m)}
}

// timeOrNull reads an RFC 3339 time or null.
func timeOrNull(fe credgate.FieldErrors, field string, raw json.RawMessage) *time.Time {
	var s *string
	if err := json.Unmarshal(raw, &s); err != nil {
		fe.Add(field, "must be an RFC 3339 time or null")
		return nil
	}
	if s == nil {
		return nil
	}
	t, err := time.Parse(time.RFC3339, *s)
	if err != nil {
		fe.Add(field, "must be an RFC 3339 time or null")
		return nil
	}
	t = t.UTC()
	return &t
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
	primary, err := h.primary.DescribePrimary(ctx, id)
	if err != nil {
		fail(c, inServiceTerms(err))
		return
	}
	versions, err := h.creds.CredentialVersions(ctx, primary.ID)
	if err != nil {
		fail(c, inServiceTerms(err))
		return
	}
	out := serviceCredentialVersions{ServiceID: id, CredentialID: primary.ID, Versions: make([]serviceCredentialVersionV1, len(versions))}
	for i, v := range versions {
		out.Versions[i] = serviceCredentialVersionV1(v)
	}
	writeJSON(c, http.StatusOK, out)
}

// intendPrimary records, before a write of service's primary credential by
// u, the event the write will be (credgate.Intent): rotated, for the
// credential the service serves now (u then names it: a write that would
// reach another is a conflict), or created, for a credential named now
// (u.NewID). u.Written is for the caller to set.
func (h *handlers) intendPrimary(ctx context.Context, service string, u *credgate.PrimaryUpdate) (context.Context, *announcing, error) {
	if h.events == nil {
		return ctx, &announcing{}, nil
	}
	typ, target := credgate.EventRotated, &credgate.Credential{ID: u.CredentialID, IntegrationID: service}
	if target.ID == "" {
		cur, err := h.primary.DescribePrimary(ctx, service)
		switch {
		case err == nil:
			target.ID, u.CredentialID = cur.ID, cur.ID
		case credgate.ErrorCode(err) == credgate.ECredentialNotFound:
			typ, u.NewID = credgate.EventCreated, "cred-"+uuid.NewString()
			target.ID = u.NewID
		default:
			return ctx, nil, err
		}
	}
	return h.intend(ctx, target, typ)
}

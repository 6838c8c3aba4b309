package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	gojson "github.com/goccy/go-json"

	"github.com/credgate/credgate"
)

// masked stands in for a secret value in answers that must not carry one.
// A client that sends an answer back must not store it as the value.
const (
	masked      = "********"
	maskRefused = "is the mask credgate answers instead of a value; send the value, or leave the field out"
)

// reveal says how secret values appear in an answer.
type reveal int

const (
	omitSecrets reveal = iota // lists, versions: absent
	maskSecrets               // writes: present as ********
	showSecrets               // the explicit GET: the values
)

type tenantRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// credentialView is a credential as the credentials family answers it.
// Optional fields are left out when unset, never null. The secret fields
// (credgate.SecretFields) are added by MarshalJSON, so that the one list of
// them decides what an answer may carry.
type credentialView struct {
	ID                    string                 `json:"id"`
	IntegrationID         string                 `json:"integrationId"`
	CredentialName        string                 `json:"credentialName"`
	Description           string                 `json:"description"`
	AuthType              string                 `json:"authType"`
	Scopes                []string               `json:"scopes"`
	TokenEndpoint         string                 `json:"tokenEndpoint"`
	AuthorizationEndpoint string                 `json:"authorizationEndpoint"`
	CustomFields          map[string]string      `json:"customFields,omitempty"`
	Metadata              map[string]any         `json:"metadata"`
	Status                string                 `json:"status"`
	ExpiresAt             *time.Time             `json:"expiresAt,omitempty"`
	CreatedAt             time.Time              `json:"createdAt"`
	UpdatedAt             time.Time              `json:"updatedAt"`
	CreatedBy             credgate.Actor         `json:"createdBy"`
	LastAccessedAt        *time.Time             `json:"lastAccessedAt,omitempty"`
	LastRotatedAt         *time.Time             `json:"lastRotatedAt,omitempty"`
	Tenant                tenantRef              `json:"tenant"`
	Version               int                    `json:"version"`
	AutoRefresh           bool                   `json:"autoRefresh,omitempty"`
	RefreshLeadTime       string                 `json:"refreshLeadTime,omitempty"`
	Refresh               *credgate.RefreshState `json:"refresh,omitempty"`
	RevokeAt              *time.Time             `json:"revokeAt,omitempty"`
	PreviousVersion       int                    `json:"previousVersion,omitempty"`
	PreviousRevokeAt      *time.Time             `json:"previousRevokeAt,omitempty"`

	secrets credgate.Secrets // rendered by MarshalJSON
	reveal  reveal
}

func viewOf(c *gin.Context, cr *credgate.Credential, r reveal) *credentialView {
	p := credgate.PrincipalFrom(c.Request.Context())
	v := &credentialView{
		ID: cr.ID, IntegrationID: cr.IntegrationID, CredentialName: cr.CredentialName, Description: cr.Description,
		AuthType: cr.AuthType, Scopes: cr.Scopes, TokenEndpoint: cr.TokenEndpoint, AuthorizationEndpoint: cr.AuthorizationEndpoint,
		Metadata: cr.Metadata, Status: cr.EffectiveStatus(time.Now()), ExpiresAt: cr.ExpiresAt,
		CreatedAt: cr.CreatedAt, UpdatedAt: cr.UpdatedAt, CreatedBy: cr.CreatedBy,
		LastAccessedAt: cr.LastAccessedAt, LastRotatedAt: cr.LastRotatedAt,
		Tenant: tenantRef{ID: p.Tenant, Name: p.TenantName}, Version: cr.Version, reveal: r,
		AutoRefresh: cr.AutoRefresh, RefreshLeadTime: cr.RefreshLeadTime, Refresh: cr.Refresh, RevokeAt: cr.RevokeAt,
		PreviousVersion: cr.PreviousVersion, PreviousRevokeAt: cr.PreviousRevokeAt,
	}
	if v.Scopes == nil {
		v.Scopes = []string{}
	}
	if v.Metadata == nil {
		v.Metadata = map[string]any{}
	}
	if r != omitSecrets {
		v.secrets = cr.Secrets
		v.CustomFields = cr.Secrets.Custom()
		if r == maskSecrets {
			for k := range v.CustomFields {
				v.CustomFields[k] = masked
			}
		}
	}
	return v
}

// MarshalJSON writes the view's fields, then each secret field that is set,
// in credgate.SecretFields order.
func (v *credentialView) MarshalJSON() ([]byte, error) {
	type fields credentialView // without this method
	b, err := gojson.Marshal((*fields)(v))
	if err != nil || len(v.secrets) == 0 {
		return b, err
	}
	var buf bytes.Buffer
	buf.Write(b[:len(b)-1])
	for _, f := range credgate.SecretFields() {
		val, ok := v.secrets[f.Name]
		if !ok {
			continue
		}
		if v.reveal == maskSecrets {
			val = masked
		}
		s, err := gojson.Marshal(val)
		if err != nil {
			return nil, err
		}
		buf.WriteString(`,"`) // field names are plain identifiers
		buf.WriteString(f.Name)
		buf.WriteString(`":`)
		buf.Write(s)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// credentialInput is what a client may send for a credential: descriptive
// fields, the secret fields (credgate.SecretFields) and customFields, whose
// values are strings or, in a PATCH, null to remove them. The read-only
// fields of a credential are accepted and ignored, so that a client can
// send back what it read.
type credentialInput struct {
	ID                    *string // on create: a client-chosen id; else the path's
	IntegrationID         *string
	CredentialName        *string
	Description           *string
	AuthType              *string
	Scopes                *[]string
	TokenEndpoint         *string
	AuthorizationEndpoint *string
	Metadata              json.RawMessage
	Status                *string
	ExpiresAt             json.RawMessage
	AutoRefresh           *bool
	RefreshLeadTime       *string
	RevokeAt              json.RawMessage
	Secrets               map[string]*string // by field name
	CustomFields          map[string]*string
	Generate              *bool           // rotate only
	PreviousRevokeAt      json.RawMessage // rotate only
}

var credentialReadOnly = map[string]bool{
	"createdAt": true, "updatedAt": true, "createdBy": true, "lastAccessedAt": true,
	"lastRotatedAt": true, "tenant": true, "version": true, "refresh": true, "previousVersion": true,
}

// UnmarshalJSON reads the input strictly: every unknown field and every
// value of the wrong JSON type is named in one VALIDATION_FAILED.
func (in *credentialInput) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil || raw == nil {
		return badRequest("the body must be a JSON object")
	}
	descriptive := map[string]any{
		"id": &in.ID, "integrationId": &in.IntegrationID, "credentialName": &in.CredentialName, "description": &in.Description,
		"authType": &in.AuthType, "scopes": &in.Scopes, "tokenEndpoint": &in.TokenEndpoint,
		"authorizationEndpoint": &in.AuthorizationEndpoint, "metadata": &in.Metadata, "status": &in.Status,
		"expiresAt": &in.ExpiresAt, "customFields": &in.CustomFields, "generate": &in.Generate,
		"autoRefresh": &in.AutoRefresh, "refreshLeadTime": &in.RefreshLeadTime, "revokeAt": &in.RevokeAt,
		"previousRevokeAt": &in.PreviousRevokeAt,
	}
	fe := credgate.FieldErrors{}
	for name, v := range raw {
		switch dst, ok := descriptive[name]; {
		case ok:
			if err := json.Unmarshal(v, dst); err != nil {
				fe.Add(name, "must be a JSON "+kindOf(dst))
			}
		case credgate.IsSecretField(name):
			var s *string
			if err := json.Unmarshal(v, &s); err != nil {
				fe.Add(name, "must be a string or null")
				continue
			}
			if in.Secrets == nil {
				in.Secrets = map[string]*string{}
			}
			in.Secrets[name] = s
		case credentialReadOnly[name]:
		default:
			fe.Add(name, "is not a field of this resource")
		}
	}
	if len(fe) > 0 {
		return &decodeError{fe}
	}
	return nil
}

func kindOf(dst any) string {
	switch dst.(type) {
	case **[]string:
		return "array of strings"
	case *json.RawMessage, *map[string]*string:
		return "object"
	case **bool:
		return "boolean"
	}
	return "string"
}

// sameID refuses an id in the body of a write to another credential than
// the path names (a client sending back what it read sends the same id).
func (in *credentialInput) sameID(path string) error {
	if in.ID == nil {
		return nil
	}
	if id, _ := credgate.CanonicalCredentialID(*in.ID); id != path {
		return credgate.FieldErrors{"id": "must name the credential in the path"}.Err()
	}
	return nil
}

// hasSecrets reports whether the input sets or removes any secret value.
func (in *credentialInput) hasSecrets() bool { return len(in.Secrets)+len(in.CustomFields) > 0 }

// descriptive reports whether the input names a non-secret field.
func (in *credentialInput) descriptive() bool {
	return in.IntegrationID != nil || in.CredentialName != nil || in.Description != nil || in.AuthType != nil ||
		in.Scopes != nil || in.TokenEndpoint != nil || in.AuthorizationEndpoint != nil || in.Metadata != nil ||
		in.Status != nil || in.ExpiresAt != nil || in.AutoRefresh != nil || in.RefreshLeadTime != nil || in.RevokeAt != nil
}

// apply sets what the input carries on c. Whether the result is a valid
// credential is the credential's rule (credgate.Credential.Validate),
// checked by the store before it writes.
func (in *credentialInput) apply(c *credgate.Credential) error {
	fe := credgate.FieldErrors{}
	for _, f := range []struct {
		dst *string
		src *string
	}{{&c.CredentialName, in.CredentialName}, {&c.Description, in.Description}, {&c.AuthType, in.AuthType}, {&c.Status, in.Status}, {&c.TokenEndpoint, in.TokenEndpoint}, {&c.AuthorizationEndpoint, in.AuthorizationEndpoint}, {&c.RefreshLeadTime, in.RefreshLeadTime}} {
		if f.src != nil {
			*f.dst = *f.src
		}
	}
	if in.Scopes != nil {
		c.Scopes = *in.Scopes
	}
	object(fe, "metadata", in.Metadata, &c.Metadata)
	if in.ExpiresAt != nil {
		c.ExpiresAt = timeOrNull(fe, "expiresAt", in.ExpiresAt)
	}
	if in.RevokeAt != nil {
		c.RevokeAt = timeOrNull(fe, "revokeAt", in.RevokeAt)
	}
	if in.AutoRefresh != nil {
		c.AutoRefresh = *in.AutoRefresh
	}
	if c.Secrets == nil {
		c.Secrets = credgate.Secrets{}
	}
	set := func(key, field string, v *string) {
		switch {
		case v == nil:
			delete(c.Secrets, key)
		case *v == masked:
			fe.Add(field, maskRefused)
		default:
			c.Secrets[key] = *v
		}
	}
	for name, v := range in.Secrets {
		set(name, name, v)
	}
	for key, v := range in.CustomFields {
		set(credgate.CustomKey(key), "customFields."+key, v)
	}
	return fe.Err()
}

func (h *handlers) createCredential(c *gin.Context) {
	var in credentialInput
	if err := decodeJSON(c.Request.Body, &in); err != nil {
		fail(c, err)
		return
	}
	switch {
	case in.IntegrationID == nil || !credgate.ValidID(*in.IntegrationID):
		fail(c, credgate.FieldErrors{"integrationId": "is required and must be a valid service id"}.Err())
		return
	case in.Generate != nil:
		fail(c, credgate.FieldErrors{"generate": "goes with rotate; send the values to store"}.Err())
		return
	case in.PreviousRevokeAt != nil:
		fail(c, credgate.FieldErrors{"previousRevokeAt": "goes with rotate"}.Err())
		return
	}
	cred := &credgate.Credential{IntegrationID: *in.IntegrationID, Status: credgate.CredActive, Metadata: map[string]any{}}
	if in.ID != nil {
		id, ok := credgate.CanonicalCredentialID(*in.ID)
		if !ok {
			fail(c, credgate.FieldErrors{"id": "must be cred-<uuid> or a UUID"}.Err())
			return
		}
		cred.ID = id // migrated credentials keep their ids
	}
	if err := in.apply(cred); err != nil {
		fail(c, err)
		return
	}
	if err := h.checkTokenEndpoint(c, in.TokenEndpoint); err != nil {
		fail(c, err)
		return
	}
	out, err := h.creds.CreateCredential(c.Request.Context(), cred)
	if err != nil {
		fail(c, err)
		return
	}
	h.publish(c, credgate.EventCreated, out)
	c.Header("Location", "/api/v1/credentials/"+out.IntegrationID+"?credentialId="+out.ID)
	c.Header("ETag", etag(out.Version))
	respond(c, http.StatusCreated, "credential created", viewOf(c, out, maskSecrets))
}

// getCredential answers the decrypted credential of an integration.
func (h *handlers) getCredential(c *gin.Context) {
	service := c.Param("id")
	if !credgate.ValidID(service) {
		fail(c, invalidParam("integrationId "+idRule))
		return
	}
	cred := ""
	if v, ok := c.GetQuery("credentialId"); ok {
		id, ok := credgate.CanonicalCredentialID(v)
		if !ok {
			fail(c, invalidParam("credentialId must be cred-<uuid> or a UUID"))
			return
		}
		cred = id
	}
	version := 0
	if v, ok := c.GetQuery("version"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || cred == "" {
			fail(c, invalidParam("version must be a positive number and goes with credentialId"))
			return
		}
		version = n // which versions a reader may read is the store's rule (credgate.Credential.ServesVersion)
	}
	out, err := h.creds.GetCredential(c.Request.Context(), service, cred, version)
	if credgate.ErrorCode(err) == credgate.EInsufficientPermissions {
		h.denied(c, service, cred, credgate.ErrorMessage(err))
	}
	if credgate.ErrorCode(err) == credgate.EServiceNotFound {
		err = &credgate.Error{Code: credgate.ECredentialNotFound, Message: "credential not found", Err: err}
	}
	if err != nil {
		fail(c, err)
		return
	}
	// lastAccessedAt in the answer is the access before this one; this
	// one is recorded for the next reader.
	if h.access != nil && version == 0 {
		h.access.RecordAccess(c.Request.Context(), service, out.ID)
	}
	c.Header("ETag", etag(out.Version))
	c.Header("Cache-Control", "no-store")
	respond(c, http.StatusOK, "credential retrieved", viewOf(c, out, showSecrets))
}

// listCredentials is the tenant's inventory, metadata only, paged.
func (h *handlers) listCredentials(c *gin.Context) {
	f, err := inventoryFilter(c, time.Now())
	if err != nil {
		fail(c, err)
		return
	}
	page, err := h.creds.ListCredentials(c.Request.Context(), f)
	if err != nil {
		fail(c, err)
		return
	}
	views := make([]*credentialView, len(page.Credentials))
	for i, cr := range page.Credentials {
		views[i] = viewOf(c, cr, omitSecrets)
	}
	next := ""
	if page.Next != nil {
		next = encodeCursor(page.Next.String())
	}
	respondPage(c, fmt.Sprintf("%d credentials", len(views)), views, next)
}

// inventoryFilter reads the inventory's query: integrationId, status,
// authType, expiresBefore (RFC 3339), expiringWithin (30d, 12h, 90m: an
// expiresAt before now plus that, expired ones included), limit, cursor.
func inventoryFilter(c *gin.Context, now time.Time) (credgate.CredentialFilter, error) {
	f := credgate.CredentialFilter{IntegrationID: c.Query("integrationId"), Status: c.Query("status"), AuthType: c.Query("authType"), Limit: defaultListLimit}
	if _, ok := c.GetQuery("integrationId"); ok && f.IntegrationID == "" {
		return f, invalidParam("integrationId must be a valid service id")
	}
	if fe := f.Check(); len(fe) > 0 {
		return f, invalidParam("%s", fe.Sentence())
	}
	if v := c.Query("expiresBefore"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return f, invalidParam("expiresBefore must be an RFC 3339 time")
		}
		f.ExpiresBefore = t
	}
	if v := c.Query("expiringWithin"); v != "" {
		d, err := credgate.ParseWithin(v)
		if err != nil {
			return f, invalidParam("expiringWithin must be %s", err)
		}
		if t := now.Add(d); f.ExpiresBefore.IsZero() || t.Before(f.ExpiresBefore) {
			f.ExpiresBefore = t
		}
	}
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxListLimit {
			return f, invalidParam("limit must be a whole number from 1 to %d", maxListLimit)
		}
		f.Limit = n
	}
	if v := c.Query("cursor"); v != "" {
		after, err := decodeCursor(v)
		var pos *credgate.CredentialPosition
		if err == nil {
			pos, err = credgate.ParseCredentialPosition(after)
		}
		if err != nil || (f.IntegrationID != "" && pos.IntegrationID != f.IntegrationID) {
			return f, invalidParam("cursor is not one this API returned for this query")
		}
		f.After = pos
	}
	return f, nil
}

// checkTokenEndpoint refuses a token endpoint credgate would not call (a
// loopback, private or link-local address not allowed by configuration)
// when it is written, saying which rule refused it, and warns of one it
// cannot call now. The same rule holds again when it is called.
func (h *handlers) checkTokenEndpoint(c *gin.Context, endpoint *string) error {
	if endpoint == nil {
		return nil
	}
	return h.checkOutbound(c, "tokenEndpoint", strings.TrimSpace(*endpoint))
}

// checkOutbound applies the outbound guard to field's URL when it is
// written: a refusal is that field's VALIDATION_FAILED; a warning (a name
// that does not resolve now) goes with the answer.
func (h *handlers) checkOutbound(c *gin.Context, field, url string) error {
	if url == "" || credgate.URLProblem(url) != "" {
		return nil // nothing to call, or refused by the record's own rule
	}
	w, err := h.endpoints.CheckURL(c.Request.Context(), url)
	if err != nil {
		return credgate.FieldErrors{field: err.Error()}.Err()
	}
	if w != "" {
		warn(c, field+" "+w)
	}
	return nil
}

// credentialWrite reads the id of the credential a write is for and the
// version it expects (If-Match; 0 when absent).
func credentialWrite(c *gin.Context) (string, int, error) {
	id, err := credentialID(c)
	if err != nil {
		return "", 0, err
	}
	v, err := ifMatch(c)
	return id, v, err
}

func (h *handlers) patchCredential(c *gin.Context) {
	id, version, err := credentialWrite(c)
	if err != nil {
		fail(c, err)
		return
	}
	var in credentialInput
	if err := decodeJSON(c.Request.Body, &in); err != nil {
		fail(c, err)
		return
	}
	if in.Generate != nil || in.PreviousRevokeAt != nil {
		fail(c, credgate.FieldErrors{"body": "generate and previousRevokeAt go with rotate"}.Err())
		return
	}
	if err := in.sameID(id); err != nil {
		fail(c, err)
		return
	}
	if err := h.checkTokenEndpoint(c, in.TokenEndpoint); err != nil {
		fail(c, err)
		return
	}
	var before credgate.Credential // what the change was made to
	out, err := h.creds.UpdateCredential(c.Request.Context(), id, version, func(cr *credgate.Credential) error {
		if in.IntegrationID != nil && *in.IntegrationID != cr.IntegrationID {
			return credgate.FieldErrors{"integrationId": "cannot be changed"}.Err()
		}
		before = *cr
		before.Secrets = cr.Secrets.Clone()
		return in.apply(cr)
	})
	if err != nil {
		fail(c, err)
		return
	}
	if out.Version != before.Version { // written, not found in the record already
		if credgate.ChangeOf(before.Secrets, out.Secrets) == credgate.ChangeRotated {
			h.publish(c, credgate.EventRotated, out)
		}
		if out.Status == credgate.CredRevoked && before.Status != credgate.CredRevoked {
			h.publish(c, credgate.EventRevoked, out)
		}
	}
	c.Header("ETag", etag(out.Version))
	respond(c, http.StatusOK, "credential updated", viewOf(c, out, maskSecrets))
}

func (h *handlers) deleteCredential(c *gin.Context) {
	id, version, err := credentialWrite(c)
	if err != nil {
		fail(c, err)
		return
	}
	service, err := h.creds.DeleteCredential(c.Request.Context(), id, version)
	if err != nil {
		fail(c, err)
		return
	}
	h.publish(c, credgate.EventDeleted, &credgate.Credential{ID: id, IntegrationID: service})
	respond(c, http.StatusOK, "credential deleted", gin.H{"id": id})
}

func (h *handlers) credentialVersions(c *gin.Context) {
	id, err := credentialID(c)
	if err != nil {
		fail(c, err)
		return
	}
	versions, err := h.creds.CredentialVersions(c.Request.Context(), id)
	if err != nil {
		fail(c, err)
		return
	}
	respond(c, http.StatusOK, fmt.Sprintf("%d versions", len(versions)), gin.H{"credentialId": id, "versions": versions})
}

package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/policy"
)

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
	case in.PreviousRevokeAt != nil || in.RevokeWhenMigrated != nil:
		fail(c, credgate.FieldErrors{"previousRevokeAt": "goes with rotate, and so does revokeWhenMigrated"}.Err())
		return
	case in.Via != nil:
		fail(c, credgate.FieldErrors{"via": "goes with rotate"}.Err())
		return
	}
	if err := h.checkRotator(c.Request.Context(), &in); err != nil {
		fail(c, err)
		return
	}
	if !may(c.Request.Context(), policy.CredentialsWrite, *in.IntegrationID) {
		fail(c, refused(policy.CredentialsWrite, *in.IntegrationID))
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
	derived := false
	if key := c.GetHeader(IdempotencyHeader); cred.ID == "" && key != "" {
		// The key names the credential, so that a retry whose first try
		// stopped after Vault took the write finds it rather than making
		// a second one.
		cred.ID, derived = idempotentCredentialID(c.Request.Context(), key), true
	}
	if err := in.apply(cred); err != nil {
		fail(c, err)
		return
	}
	w, err := h.checkTokenEndpoint(c.Request.Context(), in.endpoint())
	if err != nil {
		fail(c, err)
		return
	}
	warn(c, w)
	if cred.ID == "" {
		cred.ID = "cred-" + uuid.NewString() // named now: its event is recorded first
	}
	ctx, ann, err := h.intend(c.Request.Context(), cred, credgate.EventCreated)
	if err != nil {
		fail(c, err)
		return
	}
	out, err := h.creds.CreateCredential(ctx, cred)
	again := false
	if credgate.ErrorCode(err) == credgate.ECredentialAlreadyExists && derived {
		// This caller's earlier try with the key made it: that is the
		// answer (and that try's event its announcement).
		if got, gerr := h.creds.GetCredential(ctx, credgate.CredentialRead{Service: cred.IntegrationID, ID: cred.ID}); gerr == nil && got.CreatedBy.ID == credgate.PrincipalFrom(ctx).Subject {
			out, err, again = got, nil, true
		}
	}
	if err == nil && !again {
		ann.happened(ctx, credgate.EventCreated, out)
	}
	ann.done(ctx, err)
	if err != nil {
		fail(c, err)
		return
	}
	c.Header("Location", "/api/v1/credentials/"+out.IntegrationID+"?credentialId="+out.ID)
	c.Header("ETag", etag(out.Version))
	respond(c, http.StatusCreated, "Credentials stored successfully", viewOf(ctx, out, maskSecrets))
}

// getCredential answers the decrypted credential of an integration.
func (h *handlers) getCredential(c *gin.Context) {
	service := c.Param("id")
	if !credgate.ValidID(service) {
		fail(c, invalidParam("integrationId "+idRule))
		return
	}
	ctx := c.Request.Context()
	read := credgate.CredentialRead{Service: service, History: may(ctx, policy.CredentialsWrite, service)}
	if v, ok := c.GetQuery("credentialId"); ok {
		id, ok := credgate.CanonicalCredentialID(v)
		if !ok {
			fail(c, invalidParam("credentialId must be cred-<uuid> or a UUID"))
			return
		}
		read.ID = id
	}
	if v, ok := c.GetQuery("version"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || read.ID == "" {
			fail(c, invalidParam("version must be a positive number and goes with credentialId"))
			return
		}
		read.Version = n // which versions a read may reach is credgate.CredentialRead.MayRead
	}
	out, err := h.creds.GetCredential(ctx, read)
	if credgate.ErrorCode(err) == credgate.EInsufficientPermissions {
		h.denied(ctx, service, read.ID, credgate.ErrorMessage(err))
	}
	if err != nil {
		h.revokedRead(ctx, service, read.ID, err)
		fail(c, inCredentialTerms(err, service))
		return
	}
	if h.tokens != nil && read.Version == 0 && out.TokenDue(time.Now()) {
		// A client-credentials credential without a current token: one is
		// minted (one token request however many readers find it due),
		// written as credgate; the reader may read it, not write it.
		sys := credgate.WithPrincipal(ctx, credgate.SystemPrincipal(credgate.PrincipalFrom(ctx).Tenant))
		if out, err = h.tokens.EnsureToken(sys, out.ID, h.refresh); err != nil {
			fail(c, err)
			return
		}
	}
	// lastAccessedAt in the answer is the access before this one; this
	// one is recorded for the next reader.
	if h.access != nil {
		if read.Version == 0 {
			h.access.RecordAccess(ctx, service, out.ID)
		}
		// The ledger counts every read of values, of whichever version.
		h.access.RecordRead(ctx, service, out.ID, out.Version, grantOf(ctx, service))
	}
	c.Header("ETag", etag(out.Version))
	c.Header("Cache-Control", "no-store")
	respond(c, http.StatusOK, "Credentials retrieved successfully", viewOf(ctx, out, showSecrets))
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
		views[i] = viewOf(c.Request.Context(), cr, omitSecrets)
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
	f := credgate.CredentialFilter{IntegrationID: c.Query("integrationId"), Status: c.Query("status"), AuthType: c.Query("authType"), Connection: c.Query("connection"), Limit: defaultListLimit,
		Visible: visible(c.Request.Context(), policy.CredentialsMetaRead)}
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
	if v := c.Query("unusedFor"); v != "" {
		d, err := credgate.ParseWithin(v)
		if err != nil {
			return f, invalidParam("unusedFor must be %s", err)
		}
		f.UnusedSince = now.Add(-d)
	}
	if v, ok := c.GetQuery("rotationDue"); ok {
		switch v {
		case "true":
			f.RotationDue = true
		case "false", "":
		default:
			return f, invalidParam("rotationDue must be true or false")
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

// checkTokenEndpoint is checkOutbound for the token endpoint a write sets,
// if any.
func (h *handlers) checkTokenEndpoint(ctx context.Context, endpoint *string) (warning string, err error) {
	if endpoint == nil {
		return "", nil
	}
	return h.checkOutbound(ctx, "tokenEndpoint", strings.TrimSpace(*endpoint))
}

// checkOutbound applies the outbound guard to field's URL when it is
// written: a URL credgate would not call (a loopback, private or
// link-local address not allowed by configuration) is that field's
// VALIDATION_FAILED, saying which rule refused it; a URL kept that cannot
// be called now (a name that does not resolve) is a warning for the
// answer, naming the field. The same rule holds again when it is called.
func (h *handlers) checkOutbound(ctx context.Context, field, url string) (warning string, err error) {
	if url == "" || credgate.URLProblem(url) != "" {
		return "", nil // nothing to call, or refused by the record's own rule
	}
	w, err := h.endpoints.CheckURL(ctx, url)
	switch {
	case err != nil:
		return "", credgate.FieldErrors{field: err.Error()}.Err()
	case w != "":
		return field + " " + w, nil
	}
	return "", nil
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
	if in.Generate != nil || in.PreviousRevokeAt != nil || in.RevokeWhenMigrated != nil || in.Via != nil {
		fail(c, credgate.FieldErrors{credgate.WholeBody: "generate, via, previousRevokeAt and revokeWhenMigrated go with rotate"}.Err())
		return
	}
	if err := h.checkRotator(c.Request.Context(), &in); err != nil {
		fail(c, err)
		return
	}
	if err := in.sameID(id); err != nil {
		fail(c, err)
		return
	}
	w, err := h.checkTokenEndpoint(c.Request.Context(), in.endpoint())
	if err != nil {
		fail(c, err)
		return
	}
	warn(c, w)
	// What the change may announce: new values, a revocation.
	var may []string
	if in.hasSecrets() {
		may = append(may, credgate.EventRotated)
	}
	if st, ok := in.fields["status"]; ok && strings.TrimSpace(string(st)) == `"`+credgate.CredRevoked+`"` {
		may = append(may, credgate.EventRevoked)
	}
	ctx, ann, err := h.intend(c.Request.Context(), &credgate.Credential{ID: id}, may...)
	if err != nil {
		fail(c, err)
		return
	}
	var before credgate.Credential // what the change was made to
	out, err := h.creds.UpdateCredential(ctx, id, version, func(cr *credgate.Credential) error {
		if in.IntegrationID != nil && *in.IntegrationID != cr.IntegrationID {
			return credgate.FieldErrors{"integrationId": "cannot be changed"}.Err()
		}
		before = *cr
		before.Secrets = cr.Secrets.Clone()
		return in.apply(cr)
	})
	if err == nil && out.Version != before.Version { // written, not found in the record already
		if credgate.ChangeOf(before.Secrets, out.Secrets) == credgate.ChangeRotated {
			ann.happened(ctx, credgate.EventRotated, out)
		}
		if out.Status == credgate.CredRevoked && before.Status != credgate.CredRevoked {
			ann.happened(ctx, credgate.EventRevoked, out)
		}
	}
	ann.done(ctx, err)
	if err != nil {
		fail(c, err)
		return
	}
	c.Header("ETag", etag(out.Version))
	respond(c, http.StatusOK, "Credential updated successfully", viewOf(ctx, out, maskSecrets))
}

func (h *handlers) deleteCredential(c *gin.Context) {
	id, version, err := credentialWrite(c)
	if err != nil {
		fail(c, err)
		return
	}
	ctx, ann, err := h.intend(c.Request.Context(), &credgate.Credential{ID: id}, credgate.EventDeleted)
	if err != nil {
		fail(c, err)
		return
	}
	service, err := h.creds.DeleteCredential(ctx, id, version)
	if err == nil {
		ann.happened(ctx, credgate.EventDeleted, &credgate.Credential{ID: id, IntegrationID: service})
	}
	ann.done(ctx, err)
	if err != nil {
		fail(c, err)
		return
	}
	respond(c, http.StatusOK, "Credential deleted successfully", gin.H{"id": id})
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
	respond(c, http.StatusOK, fmt.Sprintf("%d versions of credential %s", len(versions), id), gin.H{"credentialId": id, "versions": versions})
}

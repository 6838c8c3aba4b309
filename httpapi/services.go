package httpapi

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/gin-gonic/gin"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/policy"
)

// Listing limits (API.md).
const (
	defaultListLimit = 50
	maxListLimit     = 500
)

// serviceInput is what a client may send for a service. The read-only fields
// are accepted so that a client can PUT back what it read; they are ignored,
// except id, which must agree with the path.
type serviceInput struct {
	ID          *string         `json:"id"`
	Name        *string         `json:"name"`
	Description *string         `json:"description"`
	Type        *string         `json:"type"`
	Status      *string         `json:"status"`
	BaseURL     *string         `json:"base_url"`
	APIVersion  *string         `json:"api_version"`
	Metadata    json.RawMessage `json:"metadata"`
	// Credentials, on PUT only, sets the service's credentials too.
	Credentials json.RawMessage `json:"credentials"`

	TenantID  json.RawMessage `json:"tenant_id"`
	CreatedAt json.RawMessage `json:"created_at"`
	UpdatedAt json.RawMessage `json:"updated_at"`
	CreatedBy json.RawMessage `json:"created_by"`
	Version   json.RawMessage `json:"version"`
}

// apply sets the fields the input carries on svc. What they must be is
// the service's rule (credgate.Service.Validate), checked by the store.
func (in *serviceInput) apply(svc *credgate.Service) error {
	fe := credgate.FieldErrors{}
	for _, f := range []struct {
		dst *string
		src *string
	}{{&svc.Name, in.Name}, {&svc.Description, in.Description}, {&svc.Type, in.Type}, {&svc.Status, in.Status}, {&svc.BaseURL, in.BaseURL}, {&svc.APIVersion, in.APIVersion}} {
		if f.src != nil {
			*f.dst = *f.src
		}
	}
	object(fe, "metadata", in.Metadata, &svc.Metadata)
	return fe.Err()
}

type listServicesResponse struct {
	Services   []*credgate.Service `json:"services"`
	NextCursor string              `json:"next_cursor"`
}

func (h *handlers) listServices(c *gin.Context) {
	f := credgate.ServiceFilter{Type: c.Query("type"), Status: c.Query("status"), Limit: defaultListLimit, Visible: visible(c.Request.Context(), policy.ServicesRead)}
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxListLimit {
			fail(c, badRequest("limit must be a whole number from 1 to %d", maxListLimit))
			return
		}
		f.Limit = n
	}
	if f.Status != "" && f.Status != credgate.StatusActive && f.Status != credgate.StatusInactive {
		fail(c, badRequest("status must be active or inactive"))
		return
	}
	if len(f.Type) > credgate.MaxServiceTypeBytes {
		fail(c, badRequest("type is at most %d characters", credgate.MaxServiceTypeBytes))
		return
	}
	if cur := c.Query("cursor"); cur != "" {
		after, err := decodeCursor(cur)
		if err != nil || !credgate.ValidID(after) {
			fail(c, badRequest("cursor is not one this API returned"))
			return
		}
		f.After = after
	}
	page, err := h.services.ListServices(c.Request.Context(), f)
	if err != nil {
		fail(c, err)
		return
	}
	resp := listServicesResponse{Services: page.Services}
	if page.Next != "" {
		resp.NextCursor = encodeCursor(page.Next)
	}
	writeJSON(c, http.StatusOK, resp)
}

// Cursors are opaque to clients; today they carry where a page ended: the
// last id of a services page, the last credential's position of an
// inventory page.
func encodeCursor(id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte("after:" + id))
}

// decodeCursor returns what encodeCursor carried; the caller checks it is
// what its listing puts there.
func decodeCursor(s string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return "", err
	}
	v, ok := strings.CutPrefix(string(b), "after:")
	if !ok {
		return "", errors.New("bad cursor")
	}
	return v, nil
}

func (h *handlers) createService(c *gin.Context) {
	var in serviceInput
	if err := decodeJSON(c.Request.Body, &in); err != nil {
		fail(c, err)
		return
	}
	if len(in.Credentials) > 0 {
		fail(c, credgate.FieldErrors{"credentials": "set credentials with PUT /api/v1/services/{id}/credentials or PUT /api/v1/services/{id}"}.Err())
		return
	}
	p := credgate.PrincipalFrom(c.Request.Context())
	svc := &credgate.Service{Status: credgate.StatusActive, Metadata: map[string]any{}, CreatedBy: p.Actor()}
	if in.ID != nil {
		if !credgate.ValidID(*in.ID) {
			fail(c, credgate.FieldErrors{"id": idRule}.Err())
			return
		}
		svc.ID = *in.ID
	} else {
		svc.ID = newServiceID()
	}
	if !may(c.Request.Context(), policy.ServicesWrite, svc.ID) {
		fail(c, refused(policy.ServicesWrite, svc.ID))
		return
	}
	if err := in.apply(svc); err != nil {
		fail(c, err)
		return
	}
	out, err := h.services.CreateService(c.Request.Context(), svc)
	if err != nil {
		fail(c, err)
		return
	}
	c.Header("Location", "/api/v1/services/"+out.ID)
	writeService(c, http.StatusCreated, out)
}

func writeService(c *gin.Context, status int, svc *credgate.Service) {
	c.Header("ETag", etag(svc.Version))
	writeJSON(c, status, svc)
}

// newServiceID returns svc_ and 20 random base32 characters (100 bits).
func newServiceID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	b := make([]byte, 20)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[b[i]&31]
	}
	return "svc_" + string(b)
}

func (h *handlers) getService(c *gin.Context) {
	id, err := serviceID(c)
	if err != nil {
		fail(c, err)
		return
	}
	svc, err := h.services.GetService(c.Request.Context(), id)
	if err != nil {
		fail(c, err)
		return
	}
	writeService(c, http.StatusOK, svc)
}

// writeTarget reads the id of the service a write is for and the version
// it expects (If-Match; 0 when absent).
func writeTarget(c *gin.Context) (string, int, error) {
	id, err := serviceID(c)
	if err != nil {
		return "", 0, err
	}
	v, err := ifMatch(c)
	return id, v, err
}

// putService replaces the mutable fields of a service and, with
// "credentials", its credentials in the same request: all is validated
// before anything is written, and If-Match (the service's version) covers
// both.
func (h *handlers) putService(c *gin.Context) {
	id, version, err := writeTarget(c)
	if err != nil {
		fail(c, err)
		return
	}
	var in serviceInput
	if err := decodeJSON(c.Request.Body, &in); err != nil {
		fail(c, err)
		return
	}
	if in.ID != nil && *in.ID != id {
		fail(c, credgate.FieldErrors{"id": "must match the id in the path"}.Err())
		return
	}
	fe := credgate.FieldErrors{}
	probe := credgate.Service{}
	object(fe, "metadata", in.Metadata, &probe.Metadata)
	var creds *credgate.PrimaryUpdate
	if len(in.Credentials) > 0 && string(in.Credentials) != "null" {
		creds = serviceCredentialsValues(fe, "credentials", in.Credentials)
	}
	if err := fe.Err(); err != nil {
		fail(c, err)
		return
	}
	if creds != nil && !may(c.Request.Context(), policy.CredentialsWrite, id) {
		fail(c, refused(policy.CredentialsWrite, id))
		return
	}
	ctx, ann := c.Request.Context(), &announcing{}
	var written *credgate.Credential
	var event string
	if creds != nil {
		if ctx, ann, err = h.intendPrimary(ctx, id, creds); err != nil {
			fail(c, inServiceTerms(err))
			return
		}
		creds.Written = func(cr *credgate.Credential, ev string) { written, event = cr, ev }
	}
	out, err := h.services.UpdateService(ctx, id, version, func(svc *credgate.Service) error {
		// PUT replaces every mutable field: what is not sent is reset.
		*svc = credgate.Service{ID: svc.ID, Status: credgate.StatusActive, Metadata: map[string]any{}, Version: svc.Version}
		return in.apply(svc)
	}, creds)
	if err == nil && event != "" {
		ann.happened(ctx, event, written)
	}
	ann.done(ctx, err)
	if err != nil {
		fail(c, inServiceTerms(err))
		return
	}
	writeService(c, http.StatusOK, out)
}

func (h *handlers) patchService(c *gin.Context) {
	id, version, err := writeTarget(c)
	if err != nil {
		fail(c, err)
		return
	}
	patch, err := io.ReadAll(c.Request.Body)
	if err != nil {
		fail(c, bodyError(err))
		return
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(patch, &obj); err != nil || obj == nil {
		fail(c, badRequest("the body must be a JSON object (a JSON merge patch)"))
		return
	}
	out, err := h.services.UpdateService(c.Request.Context(), id, version, func(svc *credgate.Service) error {
		cur, err := json.Marshal(mutableView(svc))
		if err != nil {
			return err
		}
		merged, err := jsonpatch.MergePatch(cur, patch)
		if err != nil {
			return badRequest("the body is not a valid JSON merge patch")
		}
		var in serviceInput
		if err := decodeJSON(bytes.NewReader(merged), &in); err != nil {
			return err
		}
		if in.ID != nil && *in.ID != svc.ID {
			return credgate.FieldErrors{"id": "cannot be changed"}.Err()
		}
		if len(in.Credentials) > 0 {
			return credgate.FieldErrors{"credentials": "set credentials with PUT"}.Err()
		}
		// RFC 7386: null removes a member. An optional field is cleared;
		// a required one cannot be.
		fe := credgate.FieldErrors{}
		for k, v := range obj {
			if string(bytes.TrimSpace(v)) != "null" {
				continue
			}
			switch k {
			case "description":
				svc.Description = ""
			case "type":
				svc.Type = ""
			case "base_url":
				svc.BaseURL = ""
			case "api_version":
				svc.APIVersion = ""
			case "metadata":
				svc.Metadata = map[string]any{}
			case "name", "status":
				fe.Add(k, "is required: null cannot clear it")
			}
		}
		if err := fe.Err(); err != nil {
			return err
		}
		return in.apply(svc)
	}, nil)
	if err != nil {
		fail(c, err)
		return
	}
	writeService(c, http.StatusOK, out)
}

// mutableView is the part of a service a merge patch applies to.
func mutableView(s *credgate.Service) map[string]any {
	return map[string]any{
		"name": s.Name, "description": s.Description, "type": s.Type, "status": s.Status,
		"base_url": s.BaseURL, "api_version": s.APIVersion, "metadata": s.Metadata,
	}
}

func (h *handlers) deleteService(c *gin.Context) {
	id, version, err := writeTarget(c)
	if err != nil {
		fail(c, err)
		return
	}
	// Its credentials go with it: each is a credential.deleted event, so
	// they are listed first (only when someone may be told).
	var gone []*credgate.Credential
	for f := (credgate.CredentialFilter{IntegrationID: id, Limit: maxListLimit}); h.events != nil; {
		page, err := h.creds.ListCredentials(c.Request.Context(), f)
		if err != nil {
			break // the DELETE answers for itself
		}
		gone = append(gone, page.Credentials...)
		if f.After = page.Next; f.After == nil {
			break
		}
	}
	// One change per credential, each recorded before the delete.
	type gone1 struct {
		cr  *credgate.Credential
		ann *announcing
	}
	ctx := c.Request.Context()
	var anns []gone1
	for _, cr := range gone {
		_, ann, err := h.intend(ctx, &credgate.Credential{ID: cr.ID, IntegrationID: id}, credgate.EventDeleted)
		if err != nil {
			for _, g := range anns {
				g.ann.done(ctx, nil)
			}
			fail(c, err)
			return
		}
		anns = append(anns, gone1{cr, ann})
	}
	err = h.services.DeleteService(ctx, id, version)
	for _, g := range anns {
		if err == nil {
			g.ann.happened(ctx, credgate.EventDeleted, &credgate.Credential{ID: g.cr.ID, IntegrationID: id})
		}
		g.ann.done(ctx, err)
	}
	if err != nil {
		fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

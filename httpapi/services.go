package httpapi

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode"

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

type listServicesResponse struct {
	Services   []*credgate.Service `json:"services"`
	NextCursor string              `json:"next_cursor"`
}

func badRequest(format string, args ...any) error {
	return credgate.Errorf(credgate.EInvalidRequest, format, args...)
}

// serviceID reads and validates the :id path parameter.
func serviceID(c *gin.Context) (string, error) {
	id := c.Param("id")
	if !credgate.ValidID(id) {
		return "", badRequest("service id must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$ and must not contain '..'")
	}
	return id, nil
}

func (h *handlers) listServices(c *gin.Context) {
	f := credgate.ServiceFilter{Type: c.Query("type"), Status: c.Query("status"), Limit: defaultListLimit}
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
	if len(f.Type) > 64 {
		fail(c, badRequest("type is at most 64 characters"))
		return
	}
	if cur := c.Query("cursor"); cur != "" {
		after, err := decodeCursor(cur)
		if err != nil {
			fail(c, badRequest("cursor is not one this API returned"))
			return
		}
		f.After = after
	}
	page, err := h.store.ListServices(c.Request.Context(), f)
	if err != nil {
		fail(c, err)
		return
	}
	resp := listServicesResponse{Services: page.Services}
	if page.Next != "" {
		resp.NextCursor = encodeCursor(page.Next)
	}
	c.JSON(http.StatusOK, resp)
}

// Cursors are opaque to clients; today they carry the last id of a page.
func encodeCursor(id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte("after:" + id))
}

func decodeCursor(s string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return "", err
	}
	id, ok := strings.CutPrefix(string(b), "after:")
	if !ok || !credgate.ValidID(id) {
		return "", errors.New("bad cursor")
	}
	return id, nil
}

func (h *handlers) createService(c *gin.Context) {
	var in serviceInput
	if err := decodeJSON(c.Request.Body, &in); err != nil {
		fail(c, err)
		return
	}
	if len(in.Credentials) > 0 {
		fail(c, validationFailed(map[string]string{"credentials": "set credentials with PUT /api/v1/services/{id}/credentials or PUT /api/v1/services/{id}"}))
		return
	}
	p := credgate.PrincipalFrom(c.Request.Context())
	svc := &credgate.Service{Status: credgate.StatusActive, Metadata: map[string]any{}, CreatedBy: p.Actor()}
	if in.ID != nil {
		if !credgate.ValidID(*in.ID) {
			fail(c, validationFailed(map[string]string{"id": "must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$ and must not contain '..'"}))
			return
		}
		svc.ID = *in.ID
	} else {
		svc.ID = newServiceID()
	}
	if err := in.apply(svc, true); err != nil {
		fail(c, err)
		return
	}
	out, err := h.store.CreateService(c.Request.Context(), svc)
	if err != nil {
		fail(c, err)
		return
	}
	c.Header("Location", "/api/v1/services/"+out.ID)
	writeService(c, http.StatusCreated, out)
}

func writeService(c *gin.Context, status int, svc *credgate.Service) {
	c.Header("ETag", etag(svc.Version))
	c.JSON(status, svc)
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
	svc, err := h.store.GetService(c.Request.Context(), id)
	if err != nil {
		fail(c, err)
		return
	}
	writeService(c, http.StatusOK, svc)
}

func (h *handlers) putService(c *gin.Context) {
	id, ifMatch, err := writeTarget(c)
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
		fail(c, validationFailed(map[string]string{"id": "must match the id in the path"}))
		return
	}
	creds, err := decodeCredentialsField(in.Credentials)
	if err != nil {
		fail(c, err)
		return
	}
	if creds != nil && !policy.Allowed(credgate.PrincipalFrom(c.Request.Context()).Roles, policy.CredentialsWrite) {
		fail(c, credgate.Errorf(credgate.EInsufficientPermissions, "setting credentials needs the %s permission", policy.CredentialsWrite))
		return
	}
	// The service is written first: PUT is idempotent, so when the
	// credentials then fail (503), the client's retry finishes the job.
	out, err := h.store.UpdateService(c.Request.Context(), id, func(svc *credgate.Service) error {
		if err := checkVersion(svc, ifMatch); err != nil {
			return err
		}
		// PUT replaces every mutable field: what is not sent is reset.
		*svc = credgate.Service{ID: svc.ID, Status: credgate.StatusActive, Metadata: map[string]any{}, Version: svc.Version}
		return in.apply(svc, true)
	})
	if err != nil {
		fail(c, err)
		return
	}
	if creds != nil {
		if _, err := h.setServiceCredentials(c, id, creds, nil, 0); err != nil {
			fail(c, err)
			return
		}
	}
	writeService(c, http.StatusOK, out)
}

func (h *handlers) patchService(c *gin.Context) {
	id, ifMatch, err := writeTarget(c)
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
	out, err := h.store.UpdateService(c.Request.Context(), id, func(svc *credgate.Service) error {
		if err := checkVersion(svc, ifMatch); err != nil {
			return err
		}
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
			return validationFailed(map[string]string{"id": "cannot be changed"})
		}
		if len(in.Credentials) > 0 {
			return validationFailed(map[string]string{"credentials": "set credentials with PUT"})
		}
		return in.apply(svc, false)
	})
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
	id, ifMatch, err := writeTarget(c)
	if err != nil {
		fail(c, err)
		return
	}
	if err := h.store.DeleteService(c.Request.Context(), id, ifMatch); err != nil {
		fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// writeTarget reads the id of the service a write is for and the version
// it expects (If-Match; 0 when absent).
func writeTarget(c *gin.Context) (string, int, error) {
	id, err := serviceID(c)
	if err != nil {
		return "", 0, err
	}
	ifMatch, err := parseIfMatch(c)
	return id, ifMatch, err
}

// parseIfMatch reads If-Match: "<version>" (0 when absent).
func parseIfMatch(c *gin.Context) (int, error) {
	v := strings.TrimSpace(c.GetHeader("If-Match"))
	if v == "" {
		return 0, nil
	}
	v = strings.TrimPrefix(v, "W/")
	if uq, err := strconv.Unquote(v); err == nil {
		v = uq
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, badRequest(`If-Match must be a version as returned in ETag, such as "3"`)
	}
	return n, nil
}

func checkVersion(svc *credgate.Service, ifMatch int) error {
	if ifMatch > 0 && svc.Version != ifMatch {
		return versionConflict(svc.Version, ifMatch)
	}
	return nil
}

func validationFailed(fields map[string]string) error {
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	slices.Sort(names)
	return &credgate.Error{
		Code:    credgate.EValidationFailed,
		Message: "invalid fields: " + strings.Join(names, ", "),
		Details: map[string]any{"fields": fields},
	}
}

// decodeJSON decodes one JSON object strictly: unknown fields and trailing
// data are refused, and the error says which field was wrong.
func decodeJSON(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if dec.More() {
		return badRequest("the body must hold exactly one JSON object")
	}
	return nil
}

func jsonError(err error) error {
	var te *json.UnmarshalTypeError
	switch {
	case asTooLarge(err):
		return bodyError(err)
	case errors.Is(err, io.EOF):
		// Err keeps io.EOF so a handler may accept an empty body.
		return &credgate.Error{Code: credgate.EInvalidRequest, Message: "the body is empty; a JSON object is expected", Err: io.EOF}
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			return badRequest("the body must be a JSON object")
		}
		return validationFailed(map[string]string{field: "must be a JSON " + jsonKind(te.Type.Kind().String())})
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return validationFailed(map[string]string{name: "is not a field of this resource"})
	}
	return badRequest("the body is not valid JSON")
}

func jsonKind(k string) string {
	switch k {
	case "string", "ptr":
		return "string"
	case "map", "struct":
		return "object"
	case "slice":
		return "array"
	}
	return "value"
}

func bodyError(err error) error {
	if asTooLarge(err) {
		return credgate.Errorf(credgate.EPayloadTooLarge, "the request body is too large")
	}
	return badRequest("the body could not be read")
}

// apply validates the input and sets the fields it carries on svc; with
// requireName, a missing name is an error (create and replace).
func (in *serviceInput) apply(svc *credgate.Service, requireName bool) error {
	bad := map[string]string{}
	if in.Name != nil {
		svc.Name = strings.TrimSpace(*in.Name)
	}
	if (in.Name != nil || requireName) && svc.Name == "" {
		bad["name"] = "is required"
	}
	checkText(bad, "name", svc.Name, 200)
	set := func(dst *string, src *string, field string, max int) {
		if src != nil {
			*dst = *src
			checkText(bad, field, *src, max)
		}
	}
	set(&svc.Description, in.Description, "description", 2000)
	set(&svc.Type, in.Type, "type", 64)
	set(&svc.APIVersion, in.APIVersion, "api_version", 64)
	if in.Status != nil {
		svc.Status = *in.Status
		if svc.Status != credgate.StatusActive && svc.Status != credgate.StatusInactive {
			bad["status"] = "must be active or inactive"
		}
	}
	if in.BaseURL != nil {
		svc.BaseURL = strings.TrimSpace(*in.BaseURL)
		if msg := checkBaseURL(svc.BaseURL); msg != "" {
			bad["base_url"] = msg
		}
	}
	if len(in.Metadata) > 0 && string(in.Metadata) != "null" {
		var m map[string]any
		if err := json.Unmarshal(in.Metadata, &m); err != nil || m == nil {
			bad["metadata"] = "must be a JSON object"
		} else {
			svc.Metadata = m
		}
	} else if string(in.Metadata) == "null" {
		svc.Metadata = map[string]any{}
	}
	if len(bad) > 0 {
		return validationFailed(bad)
	}
	return nil
}

func checkText(bad map[string]string, field, s string, max int) {
	if len(s) > max {
		bad[field] = fmt.Sprintf("is at most %d bytes", max)
		return
	}
	for _, r := range s {
		if unicode.IsControl(r) && r != '\n' && r != '\t' {
			bad[field] = "must not contain control characters"
			return
		}
	}
}

// checkBaseURL allows https, and http only to a loopback host. A URL with
// user info is refused: it would put a secret into a non-secret record.
func checkBaseURL(s string) string {
	if s == "" {
		return ""
	}
	if len(s) > 2048 {
		return "is at most 2048 bytes"
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return "must be an absolute URL"
	}
	if u.User != nil {
		return "must not carry user information; store credentials as credentials"
	}
	switch u.Scheme {
	case "https":
		return ""
	case "http":
		if isLoopback(u.Hostname()) {
			return ""
		}
		return "must use https (http is allowed only for loopback hosts)"
	}
	return "must use https"
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

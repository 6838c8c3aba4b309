package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/credgate/credgate"
)

// errorKind is what an error code means over HTTP: its status, and the
// short title the credentials family gives as its message.
type errorKind struct {
	status int
	title  string
}

// errorKinds is the one table from error code to HTTP status.
var errorKinds = map[string]errorKind{
	credgate.EInvalidRequest:          {http.StatusBadRequest, "Invalid request"},
	credgate.EInvalidParameter:        {http.StatusBadRequest, "Invalid parameter"},
	credgate.EValidationFailed:        {http.StatusBadRequest, "Validation failed"},
	credgate.EMethodNotAllowed:        {http.StatusMethodNotAllowed, "Method not allowed"},
	credgate.EUnauthorized:            {http.StatusUnauthorized, "Unauthorized"},
	credgate.EInsufficientPermissions: {http.StatusForbidden, "Insufficient permissions"},
	credgate.ETenantMismatch:          {http.StatusForbidden, "Tenant mismatch"},
	credgate.EServiceNotFound:         {http.StatusNotFound, "Service not found"},
	credgate.ECredentialsNotFound:     {http.StatusNotFound, "Credentials not found"},
	credgate.ECredentialNotFound:      {http.StatusNotFound, "Credential not found"},
	credgate.ENotFound:                {http.StatusNotFound, "Not found"},
	credgate.EServiceAlreadyExists:    {http.StatusConflict, "Service already exists"},
	credgate.ECredentialAlreadyExists: {http.StatusConflict, "Credential already exists"},
	credgate.EVersionConflict:         {http.StatusConflict, "Version conflict"},
	credgate.EIdempotencyKeyInUse:     {http.StatusConflict, "Idempotency key in use"},
	credgate.EIdempotencyKeyReused:    {http.StatusUnprocessableEntity, "Idempotency key reused"},
	credgate.EPayloadTooLarge:         {http.StatusRequestEntityTooLarge, "Payload too large"},
	credgate.EUnsupportedMediaType:    {http.StatusUnsupportedMediaType, "Unsupported media type"},
	credgate.ERateLimited:             {http.StatusTooManyRequests, "Rate limited"},
	credgate.EUpstreamError:           {http.StatusBadGateway, "Upstream error"},
	credgate.EBackendUnavailable:      {http.StatusServiceUnavailable, "Backend unavailable"},
	credgate.EInternal:                {http.StatusInternalServerError, "Internal error"},
}

// retryAfterBackend is the Retry-After, in seconds, sent with
// BACKEND_UNAVAILABLE.
const retryAfterBackend = "5"

// serviceErrorBody is an error of the services family:
// {"error": {"code", "message", "details": {...}}}, where details holds the
// structured facts (fields, status, current_version, upstream_error).
type serviceErrorBody struct {
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Details map[string]any `json:"details"`
}

// envelopeErrorBody is an error of the credentials family: details is a
// sentence a person reads (as in the seed clients), and the structured facts
// are siblings of it.
type envelopeErrorBody struct {
	Code           string               `json:"code"`
	Message        string               `json:"message"`
	Details        string               `json:"details"`
	Fields         credgate.FieldErrors `json:"fields,omitempty"`
	Status         string               `json:"status,omitempty"`
	CurrentVersion int                  `json:"currentVersion,omitempty"`
	UpstreamError  string               `json:"upstreamError,omitempty"`
}

// routeFamily is what the routes under a prefix share: the response family
// they answer in (API.md), how a malformed id in their paths is refused,
// and what their :id names in the access log.
type routeFamily struct {
	prefix   string
	envelope bool // the credentials family's envelope
	badID    *credgate.Error
	// logs is what :id names: "integration" or "credential" ("" nothing).
	logs string
}

// routeFamilies is the one table of route families; the webhooks, the
// grants and the rotators answer as the credentials do. Every other path answers in the services
// family's shape.
var routeFamilies = []routeFamily{
	{"/api/v1/services", false, credgate.Errorf(credgate.EInvalidRequest, "malformed service id in the path"), "integration"},
	{"/api/v1/credentials", true, credgate.Errorf(credgate.EInvalidParameter, "malformed id in the path"), "credential"},
	{"/api/v1/webhooks", true, credgate.Errorf(credgate.EInvalidParameter, "malformed id in the path"), ""},
	{"/api/v1/grants", true, credgate.Errorf(credgate.EInvalidParameter, "malformed id in the path"), ""},
	{"/api/v1/rotators", true, credgate.Errorf(credgate.EInvalidParameter, "malformed id in the path"), ""},
}

// familyOf is the family of a request path.
func familyOf(path string) routeFamily {
	for _, f := range routeFamilies {
		if path == f.prefix || strings.HasPrefix(path, f.prefix+"/") {
			return f
		}
	}
	return routeFamily{badID: credgate.Errorf(credgate.EInvalidRequest, "malformed id in the path")}
}

// inCredentialTerms says a read's error in the credentials family's words:
// through GET /api/v1/credentials/{integrationId}, a missing integration
// is a credential that does not exist (seed 002).
func inCredentialTerms(err error, integration string) error {
	if credgate.ErrorCode(err) == credgate.EServiceNotFound {
		return &credgate.Error{Code: credgate.ECredentialNotFound, Message: "No credential exists for integration ID: " + integration, Err: err}
	}
	return err
}

// notFoundText names what a request looked for and did not find, for a
// not-found error the storage layer could not name (credgate.ErrUnnamed):
// the path's id, and the credentialId a read asked for. "" when the route
// names nothing of that kind.
func notFoundText(c *gin.Context, code string) string {
	id := c.Param("id")
	if id == "" {
		return ""
	}
	switch code {
	case credgate.EServiceNotFound:
		return fmt.Sprintf("Service with ID '%s' not found", id)
	case credgate.ECredentialsNotFound:
		return fmt.Sprintf("Service '%s' has no credentials", id)
	case credgate.ECredentialNotFound:
		if cid := c.Query("credentialId"); cid != "" {
			return fmt.Sprintf("No credential %s exists for integration ID: %s", cid, id)
		}
		if _, ok := credgate.CanonicalCredentialID(id); ok {
			return "No credential exists with ID: " + id
		}
		return "No credential exists for integration ID: " + id
	case credgate.ENotFound:
		for _, kind := range []string{"webhook", "grant", "rotator"} {
			if strings.HasPrefix(c.Request.URL.Path, "/api/v1/"+kind+"s/") {
				return fmt.Sprintf("No %s exists with ID: %s", kind, id)
			}
		}
	}
	return ""
}

// writeError renders err in the family of the request's path. Only what a
// *credgate.Error says for clients reaches them; anything else becomes
// INTERNAL_ERROR with a generic message.
func writeError(c *gin.Context, err error) {
	code := credgate.ErrorCode(err)
	kind, ok := errorKinds[code]
	if !ok {
		code, kind = credgate.EInternal, errorKinds[credgate.EInternal]
	}
	e := &credgate.Error{Code: code, Message: "internal error"}
	var ce *credgate.Error
	if code != credgate.EInternal && errors.As(err, &ce) {
		e = ce
	}
	if errors.Is(err, credgate.ErrUnnamed) {
		if msg := notFoundText(c, code); msg != "" {
			named := *e
			named.Message = msg
			e = &named
		}
	}
	switch code {
	case credgate.EUnauthorized:
		c.Header("WWW-Authenticate", bearerChallenge(c, e.Message))
	case credgate.EInsufficientPermissions:
		c.Header("WWW-Authenticate", `Bearer realm="credgate", error="insufficient_scope"`)
	case credgate.EBackendUnavailable:
		c.Header("Retry-After", retryAfterBackend)
	}
	if familyOf(c.Request.URL.Path).envelope {
		details := e.Message
		if len(e.Fields) > 0 {
			details = e.Fields.Sentence()
		}
		writeJSON(c, kind.status, envelope{Success: false, Error: &envelopeErrorBody{
			Code: code, Message: kind.title, Details: details, Fields: e.Fields,
			Status: e.Status, CurrentVersion: e.CurrentVersion, UpstreamError: e.UpstreamError,
		}, Timestamp: timestamp()})
		return
	}
	details := map[string]any{}
	if len(e.Fields) > 0 {
		details["fields"] = e.Fields
	}
	if e.Status != "" {
		details["status"] = e.Status
	}
	if e.CurrentVersion > 0 {
		details["current_version"] = e.CurrentVersion
	}
	if e.UpstreamError != "" {
		details["upstream_error"] = e.UpstreamError
	}
	writeJSON(c, kind.status, gin.H{"error": serviceErrorBody{Code: code, Message: e.Message, Details: details}})
}

// bearerChallenge is the WWW-Authenticate of a 401 (RFC 6750 3): no error
// code when the request carried no bearer token, else the code
// authenticate chose (invalid_token by default) and what was wrong.
func bearerChallenge(c *gin.Context, description string) string {
	code := "invalid_token"
	if v, ok := c.Get(bearerError); ok {
		code, _ = v.(string)
	}
	if code == "" {
		return `Bearer realm="credgate"`
	}
	description = strings.Map(func(r rune) rune {
		if r == '"' || r == '\\' || r < 0x20 || r > 0x7e {
			return ' '
		}
		return r
	}, description)
	return `Bearer realm="credgate", error="` + code + `", error_description="` + description + `"`
}

// fail records err for the error middleware and stops the handler chain.
func fail(c *gin.Context, err error) {
	_ = c.Error(err)
	c.Abort()
}

package httpapi

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/credgate/credgate"
)

// statusOf is the one table from error code to HTTP status.
var statusOf = map[string]int{
	credgate.EInvalidRequest:          http.StatusBadRequest,
	credgate.EInvalidParameter:        http.StatusBadRequest,
	credgate.EValidationFailed:        http.StatusBadRequest,
	credgate.EUnauthorized:            http.StatusUnauthorized,
	credgate.EInsufficientPermissions: http.StatusForbidden,
	credgate.ETenantMismatch:          http.StatusForbidden,
	credgate.EServiceNotFound:         http.StatusNotFound,
	credgate.ECredentialsNotFound:     http.StatusNotFound,
	credgate.ECredentialNotFound:      http.StatusNotFound,
	credgate.ENotFound:                http.StatusNotFound,
	credgate.EServiceAlreadyExists:    http.StatusConflict,
	credgate.EVersionConflict:         http.StatusConflict,
	credgate.EPayloadTooLarge:         http.StatusRequestEntityTooLarge,
	credgate.ERateLimited:             http.StatusTooManyRequests,
	credgate.EUpstreamError:           http.StatusBadGateway,
	credgate.EBackendUnavailable:      http.StatusServiceUnavailable,
	credgate.EInternal:                http.StatusInternalServerError,
}

// retryAfterBackend is the Retry-After, in seconds, sent with
// BACKEND_UNAVAILABLE.
const retryAfterBackend = "5"

type errorBody struct {
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Details map[string]any `json:"details"`
}

// envelope is the credentials family's answer shape.
type envelope struct {
	Success   bool       `json:"success"`
	Message   string     `json:"message,omitempty"`
	Data      any        `json:"data,omitempty"`
	Error     *errorBody `json:"error,omitempty"`
	Timestamp string     `json:"timestamp"`
}

// isCredentialsFamily tells which response family a path belongs to.
func isCredentialsFamily(path string) bool {
	return path == "/api/v1/credentials" || strings.HasPrefix(path, "/api/v1/credentials/")
}

// writeError renders err in the family of the request's path. Only the
// code, message and details of a *credgate.Error reach the client; anything
// else becomes INTERNAL_ERROR with a generic message.
func writeError(c *gin.Context, err error) {
	code := credgate.ErrorCode(err)
	body := &errorBody{Code: code, Message: credgate.ErrorMessage(err), Details: map[string]any{}}
	var ce *credgate.Error
	if errors.As(err, &ce) && ce.Details != nil && code != credgate.EInternal {
		body.Details = ce.Details
	}
	if code == credgate.EInternal {
		body.Message = "internal error"
	}
	status, ok := statusOf[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	switch code {
	case credgate.EUnauthorized:
		c.Header("WWW-Authenticate", `Bearer realm="credgate", error="invalid_token"`)
	case credgate.EBackendUnavailable:
		c.Header("Retry-After", retryAfterBackend)
	}
	if isCredentialsFamily(c.Request.URL.Path) {
		c.JSON(status, envelope{Success: false, Error: body, Timestamp: now()})
		return
	}
	c.JSON(status, gin.H{"error": body})
}

func now() string { return time.Now().UTC().Format(time.RFC3339) }

// fail records err for the error middleware and stops the handler chain.
func fail(c *gin.Context, err error) {
	_ = c.Error(err)
	c.Abort()
}

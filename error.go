package credgate

import (
	"errors"
	"fmt"
)

// Error codes of the HTTP API (API.md). They are the only codes a client sees;
// httpapi maps each to its status in one table.
const (
	EInvalidRequest          = "INVALID_REQUEST"
	EInvalidParameter        = "INVALID_PARAMETER"
	EValidationFailed        = "VALIDATION_FAILED"
	EUnauthorized            = "UNAUTHORIZED"
	EInsufficientPermissions = "INSUFFICIENT_PERMISSIONS"
	ETenantMismatch          = "TENANT_MISMATCH"
	EServiceNotFound         = "SERVICE_NOT_FOUND"
	ECredentialsNotFound     = "CREDENTIALS_NOT_FOUND"
	ECredentialNotFound      = "CREDENTIAL_NOT_FOUND"
	ENotFound                = "NOT_FOUND"
	EServiceAlreadyExists    = "SERVICE_ALREADY_EXISTS"
	EVersionConflict         = "VERSION_CONFLICT"
	EPayloadTooLarge         = "PAYLOAD_TOO_LARGE"
	ERateLimited             = "RATE_LIMITED"
	EUpstreamError           = "UPSTREAM_ERROR"
	EBackendUnavailable      = "BACKEND_UNAVAILABLE"
	EInternal                = "INTERNAL_ERROR"
)

// Error is an error a client may see. Message and Details must never carry a
// secret value, a token, a Vault path or an internal cause; the cause, if any,
// is kept in Err for the log only.
type Error struct {
	Code    string
	Message string
	Details map[string]any
	Err     error // internal cause: logged, never rendered
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, or
// EInternal when there is none: an error nobody classified is a bug, never
// something to show a client.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	if err == nil {
		return ""
	}
	return EInternal
}

// ErrorMessage returns the client-safe message of err.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

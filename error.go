package credgate

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Error codes of the HTTP API (API.md). They are the only codes a client sees;
// httpapi maps each to its status in one table.
const (
	EInvalidRequest          = "INVALID_REQUEST"
	EInvalidParameter        = "INVALID_PARAMETER"
	EValidationFailed        = "VALIDATION_FAILED"
	EMethodNotAllowed        = "METHOD_NOT_ALLOWED"
	EUnauthorized            = "UNAUTHORIZED"
	EInsufficientPermissions = "INSUFFICIENT_PERMISSIONS"
	ETenantMismatch          = "TENANT_MISMATCH"
	EServiceNotFound         = "SERVICE_NOT_FOUND"
	ECredentialsNotFound     = "CREDENTIALS_NOT_FOUND"
	ECredentialNotFound      = "CREDENTIAL_NOT_FOUND"
	ENotFound                = "NOT_FOUND"
	EServiceAlreadyExists    = "SERVICE_ALREADY_EXISTS"
	ECredentialAlreadyExists = "CREDENTIAL_ALREADY_EXISTS"
	EVersionConflict         = "VERSION_CONFLICT"
	EIdempotencyKeyInUse     = "IDEMPOTENCY_KEY_IN_USE"
	EIdempotencyKeyReused    = "IDEMPOTENCY_KEY_REUSED"
	EPayloadTooLarge         = "PAYLOAD_TOO_LARGE"
	// EUnsupportedMediaType: a body declared as something other than
	// JSON.
	EUnsupportedMediaType = "UNSUPPORTED_MEDIA_TYPE"
	ERateLimited          = "RATE_LIMITED"
	EUpstreamError        = "UPSTREAM_ERROR"
	EBackendUnavailable   = "BACKEND_UNAVAILABLE"
	EInternal             = "INTERNAL_ERROR"
)

// Error is an error a client may see. Message and the structured facts must
// never carry a secret value, a token, a Vault path or an internal cause; the
// cause, if any, is kept in Err for the log only.
type Error struct {
	Code    string
	Message string
	// Fields names the fields a VALIDATION_FAILED refused and what is wrong
	// with each; never their values.
	Fields FieldErrors
	// Status is a credential's status when it is the reason (a revoked or
	// inactive credential is not served).
	Status string
	// CurrentVersion is the record's version in a VERSION_CONFLICT for a
	// stale If-Match.
	CurrentVersion int
	// UpstreamError is the OAuth2 error code a token endpoint answered.
	UpstreamError string
	Err           error // internal cause: logged, never rendered
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// ErrUnnamed is the cause of a not-found error whose message does not name
// what was looked for (the storage layer knows a path, not the request):
// the API names it from the request it answers.
var ErrUnnamed = errors.New("not found; the request names what")

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

// FieldErrors maps a field name (dotted for nested ones, such as
// customFields.region) to what is wrong with it, phrased to follow the name:
// "is required". It never holds a value.
type FieldErrors map[string]string

// Add records what is wrong with field, keeping the first complaint.
func (fe FieldErrors) Add(field, problem string) {
	if _, ok := fe[field]; !ok {
		fe[field] = problem
	}
}

// Names returns the refused fields, sorted.
func (fe FieldErrors) Names() []string {
	out := make([]string, 0, len(fe))
	for k := range fe {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// WholeBody is the field name of a problem with a body as a whole (a
// limit, or fields that do not go together) rather than with one field.
const WholeBody = "body"

// Sentence says every problem in one line: "apiKey is required; name is at
// most 200 bytes". A problem with the whole body is said as it is.
func (fe FieldErrors) Sentence() string {
	parts := make([]string, 0, len(fe))
	for _, k := range fe.Names() {
		if k == WholeBody {
			parts = append(parts, fe[k])
			continue
		}
		parts = append(parts, k+" "+fe[k])
	}
	return strings.Join(parts, "; ")
}

// Err returns nil when nothing is wrong, else a VALIDATION_FAILED naming
// the fields.
func (fe FieldErrors) Err() error {
	if len(fe) == 0 {
		return nil
	}
	return &Error{Code: EValidationFailed, Message: "invalid fields: " + strings.Join(fe.Names(), ", "), Fields: fe}
}

// CheckVersion is the rule of conditional writes (If-Match): a write that
// names the version it expects (want > 0) goes ahead only while the record
// is at that version. Errors: VERSION_CONFLICT with the current version.
func CheckVersion(have, want int) error {
	if want > 0 && have != want {
		return &Error{Code: EVersionConflict, Message: fmt.Sprintf("the record is at version %d, not %d", have, want), CurrentVersion: have}
	}
	return nil
}

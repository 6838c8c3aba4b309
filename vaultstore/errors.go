package vaultstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"

	"github.com/hashicorp/vault/api"

	"github.com/credgate/credgate"
)

// errConflict marks a check-and-set write that lost against another writer.
// It stays inside vaultstore: callers retry or turn it into a conflict code.
var errConflict = errors.New("check-and-set mismatch")

// errNotFound marks a path that holds no live record.
var errNotFound = errors.New("not found")

// translate maps an error of a Vault call to a client-safe *credgate.Error.
// notFound is the code to use when Vault has no such record. A stale
// check-and-set version is errConflict already (session.write). Vault's
// message (which names paths) is kept only as the internal cause.
func translate(err error, notFound string) error {
	if err == nil {
		return nil
	}
	var ce *credgate.Error
	if errors.As(err, &ce) {
		return err
	}
	if errors.Is(err, errNotFound) || errors.Is(err, api.ErrSecretNotFound) {
		return &credgate.Error{Code: notFound, Message: notFoundMessage(notFound), Err: fmt.Errorf("%w: %w", credgate.ErrUnnamed, err)}
	}
	if errors.Is(err, errConflict) {
		return &credgate.Error{Code: credgate.EVersionConflict, Message: "the record was changed by another request", Err: err}
	}
	var failed *failedWhileUp
	if errors.As(err, &failed) {
		// Vault is up and failed this request: nothing a retry would fix.
		return &credgate.Error{Code: credgate.EInternal, Message: "internal error", Err: err}
	}
	var re *api.ResponseError
	if errors.As(err, &re) {
		switch {
		case re.StatusCode == http.StatusNotFound:
			return &credgate.Error{Code: notFound, Message: notFoundMessage(notFound), Err: fmt.Errorf("%w: %w", credgate.ErrUnnamed, err)}
		case re.StatusCode == http.StatusForbidden:
			return &credgate.Error{Code: credgate.EInsufficientPermissions, Message: "Vault refused this operation for the caller", Err: err}
		case re.StatusCode == http.StatusBadRequest:
			// credgate validates what it sends; what Vault still refuses
			// is the request's content, not an outage.
			return &credgate.Error{Code: credgate.EInvalidRequest, Message: "the secrets backend refused the request's content", Err: err}
		case re.StatusCode == http.StatusRequestEntityTooLarge:
			return &credgate.Error{Code: credgate.EPayloadTooLarge, Message: "the record is too large for the secrets backend", Err: err}
		case outage(re.StatusCode):
			return unavailable(err)
		}
		return &credgate.Error{Code: credgate.EInternal, Message: "internal error", Err: err}
	}
	if isUnreachable(err) {
		return unavailable(err)
	}
	return &credgate.Error{Code: credgate.EInternal, Message: "internal error", Err: err}
}

// outage reports whether Vault's status says it cannot serve now: sealed,
// standby without an active node, rate limited, behind a failing proxy, or
// any 5xx (whose cause session.call has checked, see failedWhileUp).
func outage(status int) bool {
	return status == http.StatusTooManyRequests || status == http.StatusPreconditionFailed || status >= 500
}

// failedWhileUp is a Vault 5xx answered while Vault reports itself
// healthy: the failure belongs to the request, so it is a 500 with the
// cause logged, never a 503 telling the client to retry what cannot work.
type failedWhileUp struct{ err error }

func (e *failedWhileUp) Error() string {
	return "vault failed the request while healthy: " + e.err.Error()
}
func (e *failedWhileUp) Unwrap() error { return e.err }

func unavailable(err error) error {
	return &credgate.Error{Code: credgate.EBackendUnavailable, Message: "the secrets backend is unavailable; retry later", Err: err}
}

func isUnreachable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ue *url.Error
	var ne net.Error
	var oe *net.OpError
	return errors.As(err, &ue) || errors.As(err, &ne) || errors.As(err, &oe)
}

func notFoundMessage(code string) string {
	switch code {
	case credgate.EServiceNotFound:
		return "service not found"
	case credgate.ECredentialsNotFound:
		return "the service has no credentials"
	case credgate.ECredentialNotFound:
		return "credential not found"
	}
	return "not found"
}

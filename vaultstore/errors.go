package vaultstore

import (
	"context"
	"errors"
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
		return &credgate.Error{Code: notFound, Message: notFoundMessage(notFound), Err: err}
	}
	if errors.Is(err, errConflict) {
		return &credgate.Error{Code: credgate.EVersionConflict, Message: "the record was changed by another request", Err: err}
	}
	var re *api.ResponseError
	if errors.As(err, &re) {
		switch {
		case re.StatusCode == http.StatusNotFound:
			return &credgate.Error{Code: notFound, Message: notFoundMessage(notFound), Err: err}
		case re.StatusCode == http.StatusForbidden:
			return &credgate.Error{Code: credgate.EInsufficientPermissions, Message: "Vault refused this operation for the caller", Err: err}
		case re.StatusCode == http.StatusTooManyRequests || re.StatusCode >= 500:
			return unavailable(err)
		}
		return &credgate.Error{Code: credgate.EInternal, Message: "internal error", Err: err}
	}
	if isUnreachable(err) {
		return unavailable(err)
	}
	return &credgate.Error{Code: credgate.EInternal, Message: "internal error", Err: err}
}

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

// isCASMismatch reports whether err is Vault's answer to a stale
// check-and-set version: a 400 to a write that carried cas.
func isCASMismatch(err error) bool {
	var re *api.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusBadRequest
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

package vaultstore

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/policy"
)

// Rotation lock. A rotation that calls a token endpoint must happen once
// per refresh token across all replicas, so rotations of a credential take
// turns through a lease (lease.go) at credential-locks/<credential>.

// Default lock timing (Options.LockLease, Options.LockWait): a holder that
// dies (its request failed while Vault was unreachable) frees the lock after
// the lease; a rotation waits for the lock at most LockWait, then answers
// VERSION_CONFLICT. The lease outlives the longest rotation: a refresh
// grant's 15 s and the Vault writes around it.
const (
	DefaultLockLease = 30 * time.Second
	DefaultLockWait  = 20 * time.Second
)

// lock waits for the rotation lock of cred and returns how to release it.
// Errors: VERSION_CONFLICT when it is not had within LockWait, or the
// store's, translated.
func (k *session) lock(ctx context.Context, cred string) (release func(), err error) {
	r := leaseRecord(k, "credential_lock", policy.Path(k.tenant, policy.FolderCredLocks, cred))
	holder := uuid.NewString()
	deadline := k.s.opts.Now().Add(k.s.opts.LockWait)
	for {
		_, _, err := takeLease(ctx, r, holder, k.s.opts.Now, k.s.opts.LockLease, nil)
		switch {
		case err == nil:
			return func() { _ = releaseLease(context.WithoutCancel(ctx), r, holder) }, nil
		case !errors.Is(err, errHeld) && credgate.ErrorCode(err) != credgate.EVersionConflict:
			return nil, translate(err, credgate.ECredentialNotFound)
		}
		if k.s.opts.Now().After(deadline) {
			return nil, credgate.Errorf(credgate.EVersionConflict, "the credential is being rotated by another request; retry")
		}
		if !sleep(ctx, time.Duration(20+rand.IntN(40))*time.Millisecond) {
			return nil, unavailable(ctx.Err())
		}
	}
}

// RotateCredential applies fn, which sets new secret values, to cred while
// holding its rotation lock, so concurrent rotations take turns instead of
// racing on check-and-set; each one becomes its own version. With
// ifMatch > 0 the credential must be at that version.
// Errors: CREDENTIAL_NOT_FOUND, VERSION_CONFLICT (stale If-Match, or the
// lock not had in time), VALIDATION_FAILED, INSUFFICIENT_PERMISSIONS,
// BACKEND_UNAVAILABLE, or fn's.
func (s *Store) RotateCredential(ctx context.Context, cred string, ifMatch int, fn func(*credgate.Credential) error) (*credgate.Credential, error) {
	k, svc, err := s.locate(ctx, cred)
	if err != nil {
		return nil, err
	}
	release, err := k.lock(ctx, cred)
	if err != nil {
		return nil, err
	}
	defer release()
	return k.updateCred(ctx, svc, cred, ifMatch, func(c *credgate.Credential) error {
		// A rotation always changes the values, so a stale version is a
		// conflict before anything is generated or granted.
		if err := credgate.CheckVersion(c.Version, ifMatch); err != nil {
			return err
		}
		return fn(c)
	})
}

// RefreshCredential rotates cred through grant while holding its rotation
// lock, so the token endpoint is called once per refresh token however many
// replicas rotate at once, and stores the result as one new version. With
// ifMatch > 0 the credential must be at that version before the grant is
// made (RotateCredential checks it). When the grant fails nothing is written.
// Errors: CREDENTIAL_NOT_FOUND, VALIDATION_FAILED (not refreshable),
// VERSION_CONFLICT, INSUFFICIENT_PERMISSIONS, BACKEND_UNAVAILABLE, or
// grant's.
func (s *Store) RefreshCredential(ctx context.Context, cred string, ifMatch int, grant credgate.RefreshGrant) (*credgate.Credential, error) {
	var got credgate.Secrets
	var expiry *time.Time
	return s.RotateCredential(ctx, cred, ifMatch, func(c *credgate.Credential) error {
		if got == nil { // the grant happens once; a CAS retry re-applies it
			if !c.CanRefresh() {
				return credgate.FieldErrors{"body": "the credential has no refresh token and token endpoint to rotate with; send new values or generate"}.Err()
			}
			var err error
			if got, expiry, err = grant(ctx, c); err != nil {
				return err
			}
		}
		for f, v := range got {
			c.Secrets[f] = v
		}
		c.ExpiresAt = expiry
		return nil
	})
}

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
	if by, ok := lockDeadline(ctx); ok && by.Add(-lockMargin).Before(deadline) {
		// The request ends sooner: answer that the lock was not had,
		// while there is time to say so.
		deadline = by.Add(-lockMargin)
	}
	for {
		_, _, err := takeLease(ctx, r, holder, k.s.opts.Now, k.s.opts.LockLease, nil)
		switch {
		case err == nil:
			return func() {
				// Within the request while it lasts; after its deadline in
				// the background (the lease would end by itself anyway).
				if err := releaseLease(ctx, r, holder); err != nil && ctx.Err() != nil {
					go func() { _ = releaseLease(context.WithoutCancel(ctx), r, holder) }()
				}
			}, nil
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

// lockMargin is how long before its request's deadline a wait for the lock
// gives up, so that the answer (409) is still made in time.
const lockMargin = time.Second

type lockDeadlineKey struct{}

// lockDeadline is when a wait for the lock must give up: the deadline
// RefreshCredential kept of its request, or ctx's own.
func lockDeadline(ctx context.Context) (time.Time, bool) {
	if d, ok := ctx.Value(lockDeadlineKey{}).(time.Time); ok {
		return d, true
	}
	return ctx.Deadline()
}

// refreshBudget bounds a refresh run on its own context: the wait for the
// lock is bounded by LockWait, the grant by its own timeout (15 s), and
// the writes around it by the store's Timeout each.
const refreshBudget = 45 * time.Second

// RotateCredential applies fn, which sets new secret values, to cred while
// holding its rotation lock, so concurrent rotations take turns instead of
// racing on check-and-set; each one becomes its own version. With
// ifMatch > 0 the credential must be at that version.
// Errors: CREDENTIAL_NOT_FOUND, VERSION_CONFLICT (stale If-Match, or the
// lock not had in time), VALIDATION_FAILED, INSUFFICIENT_PERMISSIONS,
// BACKEND_UNAVAILABLE, or fn's.
//
// With repeatable, fn sets values the request names (no generation, no
// grant): a repeat whose values are in the credential already is answered
// with it as it is, even with the If-Match its client read before (the
// storage layer's repeated-change rule), so a client whose answer was lost
// may repeat the rotation.
func (s *Store) RotateCredential(ctx context.Context, cred string, ifMatch int, fn func(*credgate.Credential) error, repeatable bool) (*credgate.Credential, error) {
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
		// A rotation that generates or grants changes the values whatever
		// they are, so a stale version is a conflict before anything is
		// generated or granted.
		if err := credgate.CheckVersion(c.Version, ifMatch); err != nil && !repeatable {
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
//
// A grant once made is written whatever becomes of the request that asked
// for it (the token endpoint may have spent the refresh token it was
// given): the refresh runs on a context of its own, bounded by LockWait and
// refreshBudget, and only its wait for the lock follows the request's
// deadline. Its answer may so come after that deadline.
func (s *Store) RefreshCredential(ctx context.Context, cred string, ifMatch int, grant credgate.RefreshGrant) (*credgate.Credential, error) {
	own, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.LockWait+refreshBudget)
	defer cancel()
	if d, ok := ctx.Deadline(); ok {
		own = context.WithValue(own, lockDeadlineKey{}, d)
	}
	ctx = own
	return s.grantAndStore(ctx, cred, ifMatch, nil, grant)
}

// EnsureToken gives client-credentials credential cred a current access
// token: when a read finds it due (credgate.Credential.TokenDue), it mints
// one through grant while holding the rotation lock, so that however many
// readers on however many replicas find it due at once, one token is
// requested; the others find it minted. It answers the credential as it
// stands. Errors: RefreshCredential's.
//
// The readers of one replica that find it due at once share one call
// (singleflight), so a burst takes the lock once per replica, not once
// per reader.
func (s *Store) EnsureToken(ctx context.Context, cred string, grant credgate.RefreshGrant) (*credgate.Credential, error) {
	key := credgate.PrincipalFrom(ctx).Tenant + "/" + cred
	v, err, _ := s.minting.Do(key, func() (any, error) {
		own, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.LockWait+refreshBudget)
		defer cancel()
		if d, ok := ctx.Deadline(); ok {
			own = context.WithValue(own, lockDeadlineKey{}, d)
		}
		return s.grantAndStore(own, cred, 0, func(c *credgate.Credential) bool { return c.TokenDue(s.opts.Now()) }, grant)
	})
	if err != nil {
		return nil, err
	}
	c := *v.(*credgate.Credential) // each reader its own copy
	c.Secrets = c.Secrets.Clone()
	return &c, nil
}

// grantAndStore makes grant's grant for cred under its rotation lock, when
// due says so (nil: always), and stores what it answers as one version.
// What the grant does to an OAuth2 connection (credgate.Credential.
// ConnectionAfterRefresh) is stored too and told to Options.OnConnection.
func (s *Store) grantAndStore(ctx context.Context, cred string, ifMatch int, due func(*credgate.Credential) bool, grant credgate.RefreshGrant) (*credgate.Credential, error) {
	var got credgate.Secrets
	var expiry *time.Time
	var event string
	var failed *credgate.Credential // as it stood when the grant was refused
	out, err := s.RotateCredential(ctx, cred, ifMatch, func(c *credgate.Credential) error {
		if got == nil { // the grant happens once; a CAS retry re-applies it
			if due != nil && !due(c) {
				return errUnchanged // another reader minted it: answered as it is
			}
			if !c.CanRefresh() {
				return credgate.FieldErrors{credgate.WholeBody: "the credential has no refresh token and token endpoint to rotate with; send new values or generate"}.Err()
			}
			var err error
			if got, expiry, err = grant(ctx, c); err != nil {
				failed = c
				return err
			}
		}
		for f, v := range got {
			c.Secrets[f] = v
		}
		c.ExpiresAt = expiry
		var next *credgate.Connection
		if next, event = c.ConnectionAfterRefresh("", true, s.opts.Now()); next != nil {
			c.Connection = next
		}
		return nil
	}, false)
	if err == nil {
		s.connectionChanged(ctx, out, event)
		return out, nil
	}
	var ce *credgate.Error
	if failed != nil && errors.As(err, &ce) {
		// A break is bookkeeping for the version the grant was refused
		// for, not a version: the refusal changed nothing of the record.
		// (failed was read under the lock: a replica refused after
		// another's mark sees it and announces nothing.)
		if next, ev := failed.ConnectionAfterRefresh(ce.UpstreamError, false, s.opts.Now()); next != nil {
			tenant := credgate.PrincipalFrom(ctx).Tenant
			_ = s.markSummary(ctx, tenant, credgate.SummaryKey(failed.IntegrationID, failed.ID))
			if perr := s.patchCred(ctx, "credential_connection", tenant, failed.IntegrationID, failed.ID, map[string]any{metaBroken: failed.BrokenMark(next)}); perr == nil {
				failed.Connection = next
				s.connectionChanged(ctx, failed, ev)
			}
		}
	}
	return nil, err
}

// connectionChanged tells Options.OnConnection that c's connection changed
// (event), once per version of c.
func (s *Store) connectionChanged(ctx context.Context, c *credgate.Credential, event string) {
	if event != "" && s.opts.OnConnection != nil {
		s.opts.OnConnection(ctx, c, event)
	}
}

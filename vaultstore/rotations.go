package vaultstore

import (
	"context"
	"errors"
	"time"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/policy"
)

// A credential's latest rotation through a rotator is kept at
// tenants/<t>/rotations/<service>/<credential>, with the values the
// rotator created until they are promoted: only integration_admin's policy
// (and so credgate's system principal, which runs rotations) reads that
// folder, and no route answers them. What a reader of the credential sees
// of it (credgate.RotationStatus, never a value) is projected into the
// credential's metadata after every change. Whoever drives a rotation's
// next step holds a lease at credential-locks/<credential>.rotation, so
// that one replica at a time calls the rotator for it.

func rotationPath(tenant, service, cred string) string {
	return policy.Path(tenant, policy.FolderRotations, service+"/"+cred)
}

func rotationLeasePath(tenant, cred string) string {
	return policy.Path(tenant, policy.FolderCredLocks, cred+".rotation")
}

// rotationDefault is tenant's default rotation policy, or nil.
func (s *Store) rotationDefault(tenant string) *credgate.RotationPolicy {
	if s.opts.RotationPolicy == nil {
		return nil
	}
	return s.opts.RotationPolicy(tenant)
}

// rotationRecord is the rotation of credential cred of service; a
// credential never rotated through a rotator reads as the zero rotation.
func (k *session) rotationRecord(service, cred string) record[credgate.Rotation] {
	r := jsonRecord[credgate.Rotation](k, "rotation", rotationPath(k.tenant, service, cred))
	r.create = true
	return r
}

// BeginRotation starts a rotation of credential cred through the rotator
// it names, for trigger, unless one is under way: then that one is
// answered and started is false (concurrent triggers make one rotation,
// by check-and-set on the rotation's record). It answers the credential's
// description with the rotation's status. The caller must be able to
// read the description; the rotation is recorded as credgate.
// ifMatch > 0 must be the credential's version. Errors:
// CREDENTIAL_NOT_FOUND, VERSION_CONFLICT, VALIDATION_FAILED (no rotator, or
// the credential is not active), INSUFFICIENT_PERMISSIONS,
// BACKEND_UNAVAILABLE.
func (s *Store) BeginRotation(ctx context.Context, cred, trigger string, ifMatch int) (c *credgate.Credential, started bool, err error) {
	k, svc, err := s.locate(ctx, cred)
	if err != nil {
		return nil, false, err
	}
	info, err := k.describeCred(ctx, svc, cred)
	if err != nil {
		return nil, false, missing(svc, false, err)
	}
	if info == nil || info.Deleted {
		return nil, false, missing(svc, false, errNotFound)
	}
	c = &info.Credential
	c.ReadAt = s.opts.Now()
	k.derive(c)
	switch {
	case ifMatch > 0 && c.Version != ifMatch:
		return nil, false, credgate.CheckVersion(c.Version, ifMatch)
	case c.Rotator == "":
		return nil, false, credgate.FieldErrors{"via": "the credential names no rotator; set its rotator first"}.Err()
	case c.EffectiveStatus(s.opts.Now()) == credgate.CredRevoked || c.Status != credgate.CredActive:
		return nil, false, credgate.FieldErrors{"via": "only an active credential is rotated through its rotator"}.Err()
	}
	sys, err := s.systemSession(ctx, k.tenant)
	if err != nil {
		return nil, false, err
	}
	out, _, err := update(ctx, sys.rotationRecord(svc, cred), 0, func(r *credgate.Rotation) error {
		started = false // a try that lost the check-and-set started nothing
		if r.Active() {
			return errUnchanged
		}
		*r = *credgate.NewRotation(c, c.Rotator, trigger, c.PolicyOf(s.rotationDefault(k.tenant)), s.opts.Now())
		started = true
		return nil
	})
	if err != nil {
		return nil, false, translate(err, credgate.ECredentialNotFound)
	}
	if started {
		s.projectRotation(ctx, k.tenant, svc, cred, &out)
	}
	c.Rotation = &out.RotationStatus
	return c, started, nil
}

// Rotation returns the rotation of credential cred of service in tenant,
// with its pending values, for the one driving it (credgate).
// Errors: NOT_FOUND when there is none; BACKEND_UNAVAILABLE.
func (s *Store) Rotation(ctx context.Context, tenant, service, cred string) (*credgate.Rotation, error) {
	k, err := s.systemSession(ctx, tenant)
	if err != nil {
		return nil, err
	}
	r, _, err := k.rotationRecord(service, cred).read(ctx)
	if errors.Is(err, errNotFound) || (err == nil && r.ID == "") {
		return nil, credgate.Errorf(credgate.ENotFound, "credential %s has no rotation", cred)
	}
	if err != nil {
		return nil, translate(err, credgate.ENotFound)
	}
	return &r, nil
}

// UpdateRotation applies fn to the rotation of credential cred of service
// in tenant through the one read-modify-write, then shows its status on
// the credential. fn's errors (credgate.ErrStepDone among them) are
// answered as they are. Errors: NOT_FOUND, BACKEND_UNAVAILABLE, fn's.
func (s *Store) UpdateRotation(ctx context.Context, tenant, service, cred string, fn func(*credgate.Rotation) error) (*credgate.Rotation, error) {
	k, err := s.systemSession(ctx, tenant)
	if err != nil {
		return nil, err
	}
	out, _, err := update(ctx, k.rotationRecord(service, cred), 0, func(r *credgate.Rotation) error {
		if r.ID == "" {
			return errNotFound
		}
		return fn(r)
	})
	switch {
	case errors.Is(err, errNotFound):
		return nil, credgate.Errorf(credgate.ENotFound, "credential %s has no rotation", cred)
	case errors.Is(err, credgate.ErrStepDone):
		return nil, err
	case err != nil:
		return nil, translate(err, credgate.ENotFound)
	}
	s.projectRotation(ctx, tenant, service, cred, &out)
	return &out, nil
}

// projectRotation shows r's status on the credential (its metadata, as
// credgate: bookkeeping, never a version). A failure only delays what a
// reader sees until the next change; the record is the truth.
func (s *Store) projectRotation(ctx context.Context, tenant, service, cred string, r *credgate.Rotation) {
	_ = s.markSummary(ctx, tenant, credgate.SummaryKey(service, cred))
	_ = s.patchCred(ctx, "credential_rotation_status", tenant, service, cred, map[string]any{metaRotation: r.RotationStatus.Encode()})
}

// HoldRotation takes, or keeps, the turn at driving the rotation of cred
// in tenant for holder until ttl from now. Errors: VERSION_CONFLICT while
// another holder has it; BACKEND_UNAVAILABLE.
func (s *Store) HoldRotation(ctx context.Context, tenant, cred, holder string, ttl time.Duration) error {
	k, err := s.systemSession(ctx, tenant)
	if err != nil {
		return err
	}
	_, _, err = takeLease(ctx, leaseRecord(k, "rotation_lease", rotationLeasePath(tenant, cred)), holder, s.opts.Now, ttl, nil)
	if errors.Is(err, errHeld) {
		return credgate.Errorf(credgate.EVersionConflict, "another replica drives this rotation")
	}
	return translate(err, credgate.ENotFound)
}

// ReleaseRotation gives the turn up, if holder has it.
func (s *Store) ReleaseRotation(ctx context.Context, tenant, cred, holder string) {
	k, err := s.systemSession(ctx, tenant)
	if err != nil {
		return
	}
	_ = releaseLease(ctx, leaseRecord(k, "rotation_lease", rotationLeasePath(tenant, cred)), holder)
}

// CredentialAsCredgate returns credential cred of service in tenant with its
// values at version (0: the current one), whatever its status, as
// credgate: what a rotation's steps tell the rotator, what a connect
// authenticates with.
// Errors: CREDENTIAL_NOT_FOUND, BACKEND_UNAVAILABLE.
func (s *Store) CredentialAsCredgate(ctx context.Context, tenant, service, cred string, version int) (*credgate.Credential, error) {
	k, err := s.systemSession(ctx, tenant)
	if err != nil {
		return nil, err
	}
	rec, err := k.readService(ctx, service)
	if err != nil {
		return nil, missing(service, false, err)
	}
	d, sec, err := k.readCredData(ctx, service, cred, version)
	if err != nil {
		return nil, missing(service, false, err)
	}
	if !d.Info.belongsTo(rec) {
		return nil, missing(service, false, errNotFound)
	}
	c := credentialOf(d, sec, s.opts.Now())
	k.derive(c)
	return c, nil
}

package vaultstore

import (
	"context"
	"maps"
	"time"

	"github.com/credgate/credgate"
)

// The services family sees one credential per service: its primary
// credential, the one credgate.PickServable picks, which is also what the
// credentials family reads without a credential id.

// credsOf describes the credentials of rec, a live service.
func (k *session) credsOf(ctx context.Context, rec *serviceRecord) ([]*credgate.Credential, error) {
	infos, err := k.listCreds(ctx, rec.ID)
	if err != nil {
		return nil, err
	}
	return k.liveOf(rec, infos, k.s.opts.Now()), nil
}

// SetPrimaryCredential sets u on the primary credential of service as a new
// version, or makes a new one (u.NewPrimary) when the service has none that
// is servable. With ifMatch > 0 the primary credential must be at that
// version. The result is validated before anything is written. It says
// which event the write is (credgate.EventCreated, EventRotated when the
// values changed, or "" when they did not).
// Errors: SERVICE_NOT_FOUND, CREDENTIAL_NOT_FOUND (ifMatch > 0 and no
// credential), VERSION_CONFLICT, VALIDATION_FAILED,
// INSUFFICIENT_PERMISSIONS, BACKEND_UNAVAILABLE.
func (s *Store) SetPrimaryCredential(ctx context.Context, service string, ifMatch int, u credgate.PrimaryUpdate) (*credgate.Credential, string, error) {
	k, err := s.session(ctx)
	if err != nil {
		return nil, "", err
	}
	rec, err := k.readService(ctx, service)
	if err != nil {
		return nil, "", translate(err, credgate.EServiceNotFound)
	}
	out, event, _, err := k.setPrimary(ctx, rec, ifMatch, u)
	return out, event, err
}

// setPrimary does SetPrimaryCredential for rec and returns how to take the
// write back.
func (k *session) setPrimary(ctx context.Context, rec *serviceRecord, ifMatch int, u credgate.PrimaryUpdate) (*credgate.Credential, string, func(context.Context), error) {
	list, err := k.credsOf(ctx, rec)
	if err != nil {
		return nil, "", nil, translate(err, credgate.ECredentialNotFound)
	}
	pick := credgate.PickServable(list, k.s.opts.Now())
	if u.CredentialID != "" && (pick == nil || pick.ID != u.CredentialID) {
		return nil, "", nil, credgate.Errorf(credgate.EVersionConflict, "the service's credentials are no longer credential %s; read them again", u.CredentialID)
	}
	if u.NewID != "" && pick != nil && pick.ID != u.NewID {
		return nil, "", nil, credgate.Errorf(credgate.EVersionConflict, "the service has credentials now (credential %s); read them again", pick.ID)
	}
	if pick == nil {
		if ifMatch > 0 {
			return nil, "", nil, credgate.Errorf(credgate.ECredentialNotFound, "the service has no credentials to match If-Match")
		}
		c := u.NewPrimary(rec.ID)
		if err := c.Validate(); err != nil {
			return nil, "", nil, err
		}
		out, err := k.createCred(ctx, rec, c)
		if err != nil {
			return nil, "", nil, err
		}
		if u.Written != nil {
			u.Written(out, credgate.EventCreated)
		}
		return out, credgate.EventCreated, func(ctx context.Context) { _ = k.removeCred(ctx, rec.ID, out.ID, true) }, nil
	}
	var before credgate.Secrets
	var beforeExpiry *time.Time
	out, err := k.updateCred(ctx, rec.ID, pick.ID, ifMatch, func(c *credgate.Credential) error {
		before, beforeExpiry = c.Secrets.Clone(), c.ExpiresAt
		u.Apply(c)
		return nil
	})
	if err != nil {
		return nil, "", nil, err
	}
	undo := func(ctx context.Context) {
		_, _ = k.updateCred(ctx, rec.ID, pick.ID, out.Version, func(c *credgate.Credential) error {
			c.Secrets, c.ExpiresAt = before, beforeExpiry
			return nil
		})
	}
	event := ""
	if credgate.ChangeOf(before, out.Secrets) == credgate.ChangeRotated {
		event = credgate.EventRotated
	}
	if u.Written != nil {
		u.Written(out, event)
	}
	return out, event, undo, nil
}

// holdsPrimary reports whether the primary credential of rec already holds
// what u sets.
func (k *session) holdsPrimary(ctx context.Context, rec *serviceRecord, u credgate.PrimaryUpdate) (bool, error) {
	list, err := k.credsOf(ctx, rec)
	if err != nil {
		return false, err
	}
	pick := credgate.PickServable(list, k.s.opts.Now())
	if pick == nil || (u.CredentialID != "" && pick.ID != u.CredentialID) {
		return false, nil
	}
	d, sec, err := k.readCredData(ctx, rec.ID, pick.ID, 0)
	if err != nil {
		return false, err
	}
	c := credentialOf(d, sec, k.s.opts.Now())
	if !maps.Equal(c.Secrets, u.Secrets) {
		return false, nil
	}
	if u.SetExpiry && !sameTime(c.ExpiresAt, u.ExpiresAt) {
		return false, nil
	}
	return true, nil
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

// primaryWrite is setting u on the primary credential as the second record
// of a service write (UpdateService).
func (k *session) primaryWrite(u credgate.PrimaryUpdate) *alsoWrite {
	return &alsoWrite{
		write: func(ctx context.Context, rec *serviceRecord) (func(context.Context), error) {
			_, _, undo, err := k.setPrimary(ctx, rec, 0, u)
			return undo, err
		},
		same: func(ctx context.Context, rec *serviceRecord) (bool, error) { return k.holdsPrimary(ctx, rec, u) },
	}
}

package vaultstore

import (
	"context"
	"errors"
	"time"

	"github.com/credgate/credgate"
)

// The read of a credential's values: the hot path of credgate. When this
// replica remembers the service (servicecache.go) it is one Vault call,
// and the values read prove their own status.

// GetCredential returns the credential r names with its secret values: the
// one r.ID names (at r.Version, when > 0), or without an id the one
// credgate.PickServable picks. A credential's current status rules every
// version of it (credgate.Credential.Servable); which earlier versions a
// read may reach is credgate.CredentialRead's rule.
// Errors: SERVICE_NOT_FOUND (no such service), CREDENTIAL_NOT_FOUND,
// INSUFFICIENT_PERMISSIONS, BACKEND_UNAVAILABLE.
func (s *Store) GetCredential(ctx context.Context, r credgate.CredentialRead) (*credgate.Credential, error) {
	k, err := s.session(ctx)
	if err != nil {
		return nil, err
	}
	now := s.opts.Now()
	if r.ID == "" {
		return k.readPrimary(ctx, r.Service, now)
	}
	if view, ok := s.services.get(k.tenant, r.Service); ok {
		d, sec, err := k.readCredData(ctx, r.Service, r.ID, 0)
		switch {
		case err != nil && !errors.Is(err, errNotFound):
			return nil, translate(err, credgate.ECredentialNotFound)
		case err == nil && d.Info.of(view.incarnation):
			return k.served(ctx, r, credentialOf(d, sec, now))
		}
		// Gone, or not of the service remembered: the full read decides.
		s.services.forget(k.tenant, r.Service)
	}
	rec, d, sec, err := k.serviceAndCred(ctx, r.Service, r.ID)
	if err == nil && !d.Info.belongsTo(rec) {
		err = errNotFound
	}
	if err != nil {
		err = missing(r.Service, rec == nil, err)
		if r.ID != "" && credgate.ErrorCode(err) == credgate.ECredentialNotFound {
			err = credgate.Errorf(credgate.ECredentialNotFound, "No credential %s exists for integration ID: %s", r.ID, r.Service)
		}
		return nil, err
	}
	s.services.seen(k.tenant, r.Service, rec.Incarnation, "")
	return k.served(ctx, r, credentialOf(d, sec, now))
}

// missing is the one place that says what a read of a credential of
// service that found nothing missed: the service itself (SERVICE_NOT_FOUND,
// when serviceGone: a read by service) or the credential
// (CREDENTIAL_NOT_FOUND; through a credential id, a missing service is
// only a place the credential is not). Other errors are translated.
func missing(service string, serviceGone bool, err error) error {
	if !errors.Is(err, errNotFound) {
		return translate(err, credgate.ECredentialNotFound)
	}
	if serviceGone {
		return credgate.Errorf(credgate.EServiceNotFound, "Service with ID '%s' not found", service)
	}
	return credgate.Errorf(credgate.ECredentialNotFound, "No credential exists for integration ID: %s", service)
}

// served returns current, the credential's current version, or the
// version r names, when current's status lets it be served.
func (k *session) served(ctx context.Context, r credgate.CredentialRead, current *credgate.Credential) (*credgate.Credential, error) {
	k.derive(current)
	if err := current.Servable(current.ReadAt); err != nil {
		return nil, err
	}
	if r.Version == 0 || r.Version == current.Version {
		return current, nil
	}
	if err := r.MayRead(current); err != nil {
		return nil, err
	}
	d, sec, err := k.readCredData(ctx, r.Service, r.ID, r.Version)
	if err != nil {
		return nil, translate(err, credgate.ECredentialNotFound)
	}
	old := credentialOf(d, sec, current.ReadAt)
	old.LastAccessedAt = current.LastAccessedAt
	return old, nil
}

// readPrimary reads the credential a read without a credential id serves.
// When this replica remembers it, that is one Vault call; otherwise the
// pick is made on the descriptions, the values read then prove their own
// status, and a credential whose description was behind is passed over.
func (k *session) readPrimary(ctx context.Context, service string, now time.Time) (*credgate.Credential, error) {
	if view, ok := k.s.services.get(k.tenant, service); ok && view.primary != "" {
		d, sec, err := k.readCredData(ctx, service, view.primary, 0)
		if err != nil && !errors.Is(err, errNotFound) {
			return nil, translate(err, credgate.ECredentialNotFound)
		}
		if err == nil && d.Info.of(view.incarnation) {
			if c := credentialOf(d, sec, now); c.Servable(now) == nil {
				return c, nil
			}
		}
		k.s.services.forget(k.tenant, service)
	}
	rec, list, err := k.serviceAndList(ctx, service, now, false)
	if err != nil {
		return nil, err
	}
	for range len(list) {
		pick := credgate.PickServable(list, now)
		if pick == nil {
			break
		}
		d, sec, err := k.readCredData(ctx, service, pick.ID, 0)
		if err != nil && !errors.Is(err, errNotFound) {
			return nil, translate(err, credgate.ECredentialNotFound)
		}
		if err == nil && d.Info.belongsTo(rec) {
			c := credentialOf(d, sec, now)
			if c.Servable(now) == nil {
				k.s.services.seen(k.tenant, service, rec.Incarnation, c.ID)
				return c, nil
			}
		}
		list = removeCred(list, pick.ID)
	}
	k.s.services.seen(k.tenant, service, rec.Incarnation, "")
	return nil, credgate.Errorf(credgate.ECredentialNotFound, "No servable credential exists for integration ID: %s (none is active or expired)", service)
}

func removeCred(list []*credgate.Credential, id string) []*credgate.Credential {
	out := list[:0:0]
	for _, c := range list {
		if c.ID != id {
			out = append(out, c)
		}
	}
	return out
}

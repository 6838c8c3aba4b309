package vaultstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/policy"
)

// A rotator is kept at tenants/<t>/rotators/<id>, its signing secret with
// it (only integration_admin's policy reads that folder).

func (k *session) rotatorPath(id string) string { return k.path(policy.FolderRotators, id) }

// rotatorNotFound is the error of a rotator id that names nothing.
var rotatorNotFound = &credgate.Error{Code: credgate.ENotFound, Message: "no such rotator", Err: credgate.ErrUnnamed}

// CreateRotator stores r, validated, as a new rotator of the caller's
// tenant with a new id and signing secret; the answer carries the secret
// (the only time it is shown). Errors: VALIDATION_FAILED (also when the
// tenant has credgate.MaxRotators), INSUFFICIENT_PERMISSIONS,
// BACKEND_UNAVAILABLE.
func (s *Store) CreateRotator(ctx context.Context, r *credgate.Rotator) (*credgate.Rotator, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	k, err := s.session(ctx)
	if err != nil {
		return nil, err
	}
	ids, err := k.list(ctx, "rotator_list", k.folder(policy.FolderRotators))
	if err != nil {
		return nil, translate(err, credgate.ENotFound)
	}
	if len(ids) >= credgate.MaxRotators {
		return nil, credgate.FieldErrors{credgate.WholeBody: fmt.Sprintf("the tenant has %d rotators, the most it may have; delete one first", len(ids))}.Err()
	}
	out := *r
	out.ID = credgate.NewRotatorID()
	if out.Secret, err = NewWebhookSecret(); err != nil {
		return nil, err
	}
	now := s.opts.Now().UTC().Truncate(time.Second)
	out.CreatedAt, out.UpdatedAt = now, now
	out.CreatedBy = credgate.PrincipalFrom(ctx).Actor()
	data, err := encode(out)
	if err != nil {
		return nil, err
	}
	if out.Version, err = k.write(ctx, "rotator_write", k.rotatorPath(out.ID), data, 0); err != nil {
		return nil, translate(err, credgate.ENotFound)
	}
	return &out, nil
}

// rotatorRecord is rotator id of the session's tenant; a deleted one (its
// data emptied) is errNotFound.
func (k *session) rotatorRecord(id string) record[credgate.Rotator] {
	r := jsonRecord[credgate.Rotator](k, "rotator", k.rotatorPath(id))
	read := r.read
	r.read = func(ctx context.Context) (credgate.Rotator, int, error) {
		v, version, err := read(ctx)
		if err == nil && v.ID == "" {
			err = errNotFound
		}
		v.Version = version
		return v, version, err
	}
	r.write = func(ctx context.Context, _ credgate.Rotator, next *credgate.Rotator, cas int) (int, error) {
		stored := *next
		stored.Version = 0 // the KV version is the version
		data := map[string]any{}
		if next.ID != "" { // DeleteRotator's mark is empty
			stored.UpdatedAt = k.s.opts.Now().UTC().Truncate(time.Second)
			next.UpdatedAt = stored.UpdatedAt
			var err error
			if data, err = encode(stored); err != nil {
				return 0, err
			}
		}
		return k.write(ctx, "rotator_write", k.rotatorPath(id), data, cas)
	}
	return r
}

// rotatorError translates an error about a rotator.
func rotatorError(err error) error {
	if errors.Is(err, errNotFound) {
		return rotatorNotFound
	}
	return translate(err, credgate.ENotFound)
}

// GetRotator returns a rotator of the caller's tenant, with its secret (a
// view leaves it out). Errors: NOT_FOUND, INSUFFICIENT_PERMISSIONS,
// BACKEND_UNAVAILABLE.
func (s *Store) GetRotator(ctx context.Context, id string) (*credgate.Rotator, error) {
	k, err := s.session(ctx)
	if err != nil {
		return nil, err
	}
	r, _, err := k.rotatorRecord(id).read(ctx)
	if err != nil {
		return nil, rotatorError(err)
	}
	return &r, nil
}

// RotatorExists reports whether the caller's tenant has rotator id, read
// as credgate (a caller that may name a rotator on a credential it writes
// need not read the tenant's rotators). Errors: BACKEND_UNAVAILABLE.
func (s *Store) RotatorExists(ctx context.Context, id string) (bool, error) {
	k, err := s.systemSession(ctx, credgate.PrincipalFrom(ctx).Tenant)
	if err != nil {
		return false, err
	}
	switch _, _, err := k.rotatorRecord(id).read(ctx); {
	case errors.Is(err, errNotFound):
		return false, nil
	case err != nil:
		return false, rotatorError(err)
	}
	return true, nil
}

// ListRotators returns the caller's tenant's rotators, by id, with their
// secrets (a view leaves them out).
func (s *Store) ListRotators(ctx context.Context) ([]*credgate.Rotator, error) {
	k, err := s.session(ctx)
	if err != nil {
		return nil, err
	}
	ids, err := k.list(ctx, "rotator_list", k.folder(policy.FolderRotators))
	if err != nil {
		return nil, translate(err, credgate.ENotFound)
	}
	out := make([]*credgate.Rotator, len(ids))
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() {
			r, _, err := k.rotatorRecord(id).read(ctx)
			out[i], errs[i] = &r, err
		})
	}
	wg.Wait()
	list := out[:0]
	for i, r := range out {
		switch {
		case errors.Is(errs[i], errNotFound): // deleted meanwhile
		case errs[i] != nil:
			return nil, rotatorError(errs[i])
		default:
			list = append(list, r)
		}
	}
	return list, nil
}

// UpdateRotator applies fn to rotator id and writes it, validated, through
// the one read-modify-write (update). The id, secret and creation are
// kept. Errors: NOT_FOUND, VERSION_CONFLICT, VALIDATION_FAILED,
// INSUFFICIENT_PERMISSIONS, BACKEND_UNAVAILABLE.
func (s *Store) UpdateRotator(ctx context.Context, id string, ifMatch int, fn func(*credgate.Rotator) error) (*credgate.Rotator, error) {
	k, err := s.session(ctx)
	if err != nil {
		return nil, err
	}
	out, version, err := update(ctx, k.rotatorRecord(id), ifMatch, func(r *credgate.Rotator) error {
		old := *r
		if err := fn(r); err != nil {
			return err
		}
		r.ID, r.Secret, r.CreatedAt, r.CreatedBy, r.Version = old.ID, old.Secret, old.CreatedAt, old.CreatedBy, old.Version
		return r.Validate()
	})
	if err != nil {
		return nil, rotatorError(err)
	}
	out.Version = version
	return &out, nil
}

// DeleteRotator removes rotator id. A rotation under way through it fails
// at its next step (credential.rotation_failed); credentials that name it
// are not changed. With ifMatch > 0 it must be at that version. Errors:
// NOT_FOUND, VERSION_CONFLICT, INSUFFICIENT_PERMISSIONS, BACKEND_UNAVAILABLE.
func (s *Store) DeleteRotator(ctx context.Context, id string, ifMatch int) error {
	k, err := s.session(ctx)
	if err != nil {
		return err
	}
	// An empty version first, with check-and-set: the rotator is gone for
	// every reader; a repeat finds the mark and finishes.
	_, _, err = update(ctx, k.rotatorRecord(id), ifMatch, func(r *credgate.Rotator) error {
		*r = credgate.Rotator{}
		return nil
	})
	if errors.Is(err, errNotFound) {
		var rest map[string]any
		_, err = k.read(ctx, "rotator_read", k.rotatorPath(id), &rest)
	}
	if err != nil {
		return rotatorError(err)
	}
	return translate(k.destroy(ctx, "rotator_delete", k.rotatorPath(id)), credgate.ENotFound)
}

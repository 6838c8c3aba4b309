package vaultstore

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/policy"
)

// A tenant's events wait at tenants/<t>/outbox/<event id> (a
// credgate.Outgoing) until every webhook that wants them has them or has
// given up; then the record is removed and the delivery logs remain. All of
// it is written through the tenant's system session.

func (k *session) outboxPath(id string) string { return k.path(policy.FolderOutbox, id) }

// Publish puts o, a new event with its targets, into its tenant's outbox.
// It reports false, and writes nothing, when an event with its id is
// waiting there already (an event given an id by credgate.Event.OnceID is
// published once). Errors: BACKEND_UNAVAILABLE, INTERNAL_ERROR.
func (s *Store) Publish(ctx context.Context, o credgate.Outgoing) (bool, error) {
	k, err := s.systemSession(ctx, o.Event.Data.Tenant)
	if err != nil {
		return false, err
	}
	data, err := encode(o)
	if err != nil {
		return false, err
	}
	_, err = k.write(ctx, "event_publish", k.outboxPath(o.Event.ID), data, 0)
	if errors.Is(err, errConflict) {
		return false, nil
	}
	return err == nil, translate(err, credgate.ENotFound)
}

// Outbox lists the ids of tenant's waiting events.
func (s *Store) Outbox(ctx context.Context, tenant string) ([]string, error) {
	k, err := s.systemSession(ctx, tenant)
	if err != nil {
		return nil, err
	}
	ids, err := k.list(ctx, "outbox_list", k.folder(policy.FolderOutbox))
	return ids, translate(err, credgate.ENotFound)
}

// errNotOpen is a claim's answer when the event is not to be had.
var errNotOpen = errors.New("the event is claimed, or not due")

// ClaimEvent claims waiting event id of tenant for holder, with
// check-and-set, when the claim is open (credgate.Claim.Open); it returns
// nil (and no error) when it is not to be had. The holder then saves it
// with SaveEvent, which ends the claim.
func (s *Store) ClaimEvent(ctx context.Context, tenant, id, holder string, o credgate.Claim) (*credgate.Outgoing, error) {
	k, err := s.systemSession(ctx, tenant)
	if err != nil {
		return nil, err
	}
	out, v, err := update(ctx, jsonRecord[credgate.Outgoing](k, "event", k.outboxPath(id)), 0, func(e *credgate.Outgoing) error {
		if e.Event.ID == "" || !o.Open(e) {
			return errNotOpen
		}
		e.ClaimedBy, e.ClaimedUntil = holder, o.Until
		return nil
	})
	switch {
	case errors.Is(err, errNotFound), errors.Is(err, errNotOpen), credgate.ErrorCode(err) == credgate.EVersionConflict:
		return nil, nil
	case err != nil:
		return nil, translate(err, credgate.ENotFound)
	}
	out.Version = v
	if out.Targets == nil {
		out.Targets = map[string]*credgate.Target{}
	}
	return &out, nil
}

// SaveEvent writes o, claimed, back without the claim; an event that is
// done (credgate.Outgoing.Done) leaves the outbox. Errors:
// VERSION_CONFLICT (the claim was lost), BACKEND_UNAVAILABLE.
func (s *Store) SaveEvent(ctx context.Context, o *credgate.Outgoing) error {
	k, err := s.systemSession(ctx, o.Event.Data.Tenant)
	if err != nil {
		return err
	}
	if o.Done() {
		return translate(k.destroy(ctx, "event_done", k.outboxPath(o.Event.ID)), credgate.ENotFound)
	}
	next := *o
	next.ClaimedBy = ""
	data, err := encode(next)
	if err != nil {
		return err
	}
	_, err = k.write(ctx, "event_save", k.outboxPath(o.Event.ID), data, o.Version)
	return translate(err, credgate.ENotFound)
}

// TenantWebhooks returns tenant's subscriptions with their secrets, for
// delivery.
func (s *Store) TenantWebhooks(ctx context.Context, tenant string) ([]*credgate.Webhook, error) {
	k, err := s.systemSession(ctx, tenant)
	if err != nil {
		return nil, err
	}
	return k.webhooks(ctx)
}

// RecordDelivery appends d to the delivery log of webhook in tenant,
// keeping the newest credgate.MaxDeliveryLog, and returns since when every
// attempt to it failed (zero when d delivered). A webhook deleted
// meanwhile gets no log.
func (s *Store) RecordDelivery(ctx context.Context, tenant, webhook string, d credgate.Delivery) (time.Time, error) {
	k, err := s.systemSession(ctx, tenant)
	if err != nil {
		return time.Time{}, err
	}
	r := jsonRecord[deliveryLog](k, "delivery_log", k.deliveryPath(webhook))
	r.create = true
	l, _, err := update(ctx, r, 0, func(l *deliveryLog) error {
		l.Deliveries = append(l.Deliveries, d)
		if n := len(l.Deliveries) - credgate.MaxDeliveryLog; n > 0 {
			l.Deliveries = slices.Delete(l.Deliveries, 0, n)
		}
		switch {
		case d.Status == credgate.DeliveryDelivered:
			l.FailingSince = nil
		case l.FailingSince == nil:
			at := d.At.UTC()
			l.FailingSince = &at
		}
		return nil
	})
	if err != nil || l.FailingSince == nil {
		return time.Time{}, translate(err, credgate.ENotFound)
	}
	return *l.FailingSince, nil
}

// ConfirmEvent makes pending event id of tenant due as final says (its
// version, its expiry: what the change wrote); the id stays. It reports
// whether the event is waiting to be sent (false: nobody wants it, or it
// is gone). Errors: BACKEND_UNAVAILABLE, INTERNAL_ERROR.
func (s *Store) ConfirmEvent(ctx context.Context, final credgate.Event) (bool, error) {
	k, err := s.systemSession(ctx, final.Data.Tenant)
	if err != nil {
		return false, err
	}
	_, _, err = update(ctx, jsonRecord[credgate.Outgoing](k, "event_confirm", k.outboxPath(final.ID)), 0, func(o *credgate.Outgoing) error {
		if o.Event.ID == "" || !o.Pending {
			return errUnchanged
		}
		o.Event, o.Pending = final, false
		return nil
	})
	if errors.Is(err, errNotFound) {
		return false, nil
	}
	return err == nil, translate(err, credgate.ENotFound)
}

// WithdrawEvent removes pending event id of tenant: its change was not
// made. An event no longer pending is left alone.
func (s *Store) WithdrawEvent(ctx context.Context, tenant, id string) error {
	k, err := s.systemSession(ctx, tenant)
	if err != nil {
		return err
	}
	var o credgate.Outgoing
	switch _, err := k.read(ctx, "event_read", k.outboxPath(id), &o); {
	case errors.Is(err, errNotFound):
		return nil
	case err != nil:
		return translate(err, credgate.ENotFound)
	case !o.Pending:
		return nil
	}
	return translate(k.destroy(ctx, "event_withdraw", k.outboxPath(id)), credgate.ENotFound)
}

// maxProofVersions is how far back EventStands looks for a change's
// version: Vault keeps ten.
const maxProofVersions = 10

// EventStands reports whether the change pending event o announces stands,
// as the records show, and the event as it is to be sent (the version
// the change wrote). A deletion stands when the credential (or its
// service) is gone or being deleted; a creation when the credential
// exists; a rotation, refresh or revocation when a version stamped with
// o.Change holds new values (or the revoked status). Errors: the store's.
func (s *Store) EventStands(ctx context.Context, o *credgate.Outgoing) (credgate.Event, bool, error) {
	e := o.Event
	k, err := s.systemSession(ctx, e.Data.Tenant)
	if err != nil {
		return e, false, err
	}
	svc, cred := e.Data.IntegrationID, e.Data.CredentialID
	if cred == "" {
		return e, false, nil
	}
	if svc == "" { // recorded before the credential was located
		var err error
		switch svc, err = k.serviceOf(ctx, cred); {
		case credgate.ErrorCode(err) == credgate.ECredentialNotFound:
			return e, e.Type == credgate.EventDeleted, nil // gone, index and all
		case err != nil:
			return e, false, err
		}
		e.Data.IntegrationID = svc
	}
	if !credgate.ValidID(svc) {
		return e, false, nil
	}
	rec, serr := k.readServiceRecord(ctx, svc)
	if serr != nil && !errors.Is(serr, errNotFound) {
		return e, false, translate(serr, credgate.ENotFound)
	}
	d, meta, err := k.readCredData(ctx, svc, cred, 0)
	if err != nil && !errors.Is(err, errNotFound) {
		return e, false, translate(err, credgate.ENotFound)
	}
	gone := err != nil || d.Info.Deleted || serr != nil || rec.Deleting || d.Info.ServiceIncarnation != rec.Incarnation
	switch e.Type {
	case credgate.EventDeleted:
		return e, gone, nil
	case credgate.EventCreated:
		if gone {
			return e, false, nil
		}
		e.Data.Version = 1
		return e, true, nil
	}
	if gone || o.Change == "" {
		return e, false, nil
	}
	for v := meta.Version; v > 0 && v > meta.Version-maxProofVersions; v-- {
		dv := d
		if v != meta.Version {
			if dv, _, err = k.readCredData(ctx, svc, cred, v); errors.Is(err, errNotFound) {
				continue
			} else if err != nil {
				return e, false, translate(err, credgate.ENotFound)
			}
		}
		if dv.Info.ChangeID != o.Change {
			continue
		}
		switch e.Type {
		case credgate.EventRotated, credgate.EventRefreshed:
			if dv.Info.Change != credgate.ChangeRotated {
				return e, false, nil
			}
		case credgate.EventRevoked:
			if dv.Info.Status != credgate.CredRevoked {
				return e, false, nil
			}
		}
		e.Data.Version, e.Data.ExpiresAt = v, dv.Info.ExpiresAt
		return e, true, nil
	}
	return e, false, nil
}

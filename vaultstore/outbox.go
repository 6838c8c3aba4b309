package vaultstore

import (
	"context"
	"errors"
	"slices"

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
// keeping the newest credgate.MaxDeliveryLog. A webhook deleted meanwhile
// gets no log.
func (s *Store) RecordDelivery(ctx context.Context, tenant, webhook string, d credgate.Delivery) error {
	k, err := s.systemSession(ctx, tenant)
	if err != nil {
		return err
	}
	r := jsonRecord[deliveryLog](k, "delivery_log", k.deliveryPath(webhook))
	r.create = true
	_, _, err = update(ctx, r, 0, func(l *deliveryLog) error {
		l.Deliveries = append(l.Deliveries, d)
		if n := len(l.Deliveries) - credgate.MaxDeliveryLog; n > 0 {
			l.Deliveries = slices.Delete(l.Deliveries, 0, n)
		}
		return nil
	})
	return translate(err, credgate.ENotFound)
}

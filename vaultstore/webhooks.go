package vaultstore

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/policy"
)

// A webhook subscription is kept at tenants/<t>/webhooks/<id>, its signing
// secret with it (only integration_admin's policy reads that folder), and
// its delivery log, the newest credgate.MaxDeliveryLog attempts, at
// tenants/<t>/deliveries/<id>.

func (k *session) webhookPath(id string) string  { return k.path(policy.FolderWebhooks, id) }
func (k *session) deliveryPath(id string) string { return k.path(policy.FolderDeliveries, id) }

// webhookNotFound is the error of a webhook id that names nothing.
var webhookNotFound = &credgate.Error{Code: credgate.ENotFound, Message: "no such webhook", Err: credgate.ErrUnnamed}

// NewWebhookSecret returns a signing secret as the Standard Webhooks
// libraries take it: whsec_ and 32 random bytes in base64.
func NewWebhookSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "whsec_" + base64.StdEncoding.EncodeToString(b), nil
}

// CreateWebhook stores w, validated, as a new subscription of the caller's
// tenant with a new id and signing secret; the answer carries the secret
// (the only time it is shown). Errors: VALIDATION_FAILED (also when the
// tenant has credgate.MaxWebhooks), INSUFFICIENT_PERMISSIONS,
// BACKEND_UNAVAILABLE.
func (s *Store) CreateWebhook(ctx context.Context, w *credgate.Webhook) (*credgate.Webhook, error) {
	if err := w.Validate(); err != nil {
		return nil, err
	}
	k, err := s.session(ctx)
	if err != nil {
		return nil, err
	}
	out := *w
	out.ID = credgate.NewWebhookID()
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
	// The tenant's usage bounds how many it has (credgate.MaxWebhooks
	// by default), with check-and-set: parallel creates cannot pass it.
	out.Version, err = k.accounted(ctx, credgate.TenantUsage{Webhooks: 1, Bytes: sizeOf(data)}, func() (int, error) {
		return k.write(ctx, "webhook_write", k.webhookPath(out.ID), data, 0)
	})
	if err != nil {
		if credgate.ErrorCode(err) == credgate.EValidationFailed {
			return nil, err
		}
		return nil, translate(err, credgate.ENotFound)
	}
	return &out, nil
}

// webhookRecord is subscription id of the session's tenant. A deleted
// one (its record gone, or its data) is errNotFound.
func (k *session) webhookRecord(id string) record[credgate.Webhook] {
	r := jsonRecord[credgate.Webhook](k, "webhook", k.webhookPath(id))
	read := r.read
	r.read = func(ctx context.Context) (credgate.Webhook, int, error) {
		w, v, err := read(ctx)
		if err == nil && w.ID == "" {
			err = errNotFound
		}
		w.Version = v
		return w, v, err
	}
	r.write = func(ctx context.Context, cur credgate.Webhook, next *credgate.Webhook, cas int) (int, error) {
		next.UpdatedAt = k.s.opts.Now().UTC().Truncate(time.Second)
		stored := *next
		stored.Version = 0 // the KV version is the version
		data, err := encode(stored)
		if err != nil {
			return 0, err
		}
		cur.Version = 0
		was := int64(0)
		if old, err := encode(cur); err == nil {
			was = sizeOf(old)
		}
		usage := credgate.TenantUsage{Bytes: sizeOf(data) - was}
		if next.ID == "" { // DeleteWebhook's mark: written once
			usage = credgate.TenantUsage{Webhooks: -1, Bytes: -was}
			data = map[string]any{}
		}
		return k.accounted(ctx, usage, func() (int, error) {
			return k.write(ctx, "webhook_write", k.webhookPath(id), data, cas)
		})
	}
	r.clone = func(w credgate.Webhook) credgate.Webhook {
		w.EventTypes = slices.Clone(w.EventTypes)
		return w
	}
	return r
}

func (k *session) readWebhook(ctx context.Context, id string) (*credgate.Webhook, error) {
	w, _, err := k.webhookRecord(id).read(ctx)
	if err != nil {
		return nil, webhookError(err)
	}
	return &w, nil
}

// webhookError translates an error about a webhook.
func webhookError(err error) error {
	if errors.Is(err, errNotFound) {
		return webhookNotFound
	}
	return translate(err, credgate.ENotFound)
}

// GetWebhook returns a subscription of the caller's tenant, with its
// secret (a view leaves it out). Errors: NOT_FOUND, INSUFFICIENT_PERMISSIONS,
// BACKEND_UNAVAILABLE.
func (s *Store) GetWebhook(ctx context.Context, id string) (*credgate.Webhook, error) {
	k, err := s.session(ctx)
	if err != nil {
		return nil, err
	}
	return k.readWebhook(ctx, id)
}

// ListWebhooks returns the caller's tenant's subscriptions, by id.
func (s *Store) ListWebhooks(ctx context.Context) ([]*credgate.Webhook, error) {
	k, err := s.session(ctx)
	if err != nil {
		return nil, err
	}
	return k.webhooks(ctx)
}

func (k *session) webhooks(ctx context.Context) ([]*credgate.Webhook, error) {
	ids, err := k.list(ctx, "webhook_list", k.folder(policy.FolderWebhooks))
	if err != nil {
		return nil, translate(err, credgate.ENotFound)
	}
	out := make([]*credgate.Webhook, len(ids))
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() { out[i], errs[i] = k.readWebhook(ctx, id) })
	}
	wg.Wait()
	list := out[:0]
	for i, w := range out {
		switch {
		case errs[i] == webhookNotFound: // deleted meanwhile
		case errs[i] != nil:
			return nil, errs[i]
		default:
			list = append(list, w)
		}
	}
	return list, nil
}

// UpdateWebhook applies fn to subscription id and writes it, validated,
// through the one read-modify-write (update): ifMatch > 0 must be its
// version unless the change is in it already. The id, secret and creation
// are kept. Errors: NOT_FOUND, VERSION_CONFLICT, VALIDATION_FAILED,
// INSUFFICIENT_PERMISSIONS, BACKEND_UNAVAILABLE.
func (s *Store) UpdateWebhook(ctx context.Context, id string, ifMatch int, fn func(*credgate.Webhook) error) (*credgate.Webhook, error) {
	k, err := s.session(ctx)
	if err != nil {
		return nil, err
	}
	out, version, err := update(ctx, k.webhookRecord(id), ifMatch, func(w *credgate.Webhook) error {
		old := *w
		if err := fn(w); err != nil {
			return err
		}
		w.ID, w.Secret, w.CreatedAt, w.CreatedBy = old.ID, old.Secret, old.CreatedAt, old.CreatedBy
		return w.Validate()
	})
	if err != nil {
		return nil, webhookError(err)
	}
	out.Version = version
	return &out, nil
}

// DeleteWebhook removes subscription id and its delivery log; events not
// yet sent to it are not sent. Errors: NOT_FOUND, INSUFFICIENT_PERMISSIONS,
// BACKEND_UNAVAILABLE.
func (s *Store) DeleteWebhook(ctx context.Context, id string) error {
	k, err := s.session(ctx)
	if err != nil {
		return err
	}
	// An empty version first, with check-and-set: the subscription is gone
	// for every reader, and what it kept is given back exactly once.
	_, _, err = update(ctx, k.webhookRecord(id), 0, func(w *credgate.Webhook) error {
		*w = credgate.Webhook{}
		return nil
	})
	if errors.Is(err, errNotFound) {
		// Its mark may be there from a DELETE that stopped half-way:
		// repeating it finishes it.
		var rest map[string]any
		_, err = k.read(ctx, "webhook_read", k.webhookPath(id), &rest)
	}
	if err != nil {
		return webhookError(err)
	}
	if err := k.destroy(ctx, "webhook_delete", k.webhookPath(id)); err != nil {
		return translate(err, credgate.ENotFound)
	}
	return translate(k.destroy(ctx, "delivery_log_delete", k.deliveryPath(id)), credgate.ENotFound)
}

// deliveryLog is the stored delivery log of a webhook, newest last.
type deliveryLog struct {
	Deliveries []credgate.Delivery `json:"deliveries"`
	// FailingSince is the first of the attempts that failed since the
	// last one delivered (nil: the last one delivered).
	FailingSince *time.Time `json:"failingSince,omitempty"`
}

// DisableWebhook disables subscription id of tenant with reason, for
// credgate (credgate.Webhook.Disable), and reports whether it was enabled:
// of replicas racing to disable it, one is told yes. Errors: NOT_FOUND,
// BACKEND_UNAVAILABLE.
func (s *Store) DisableWebhook(ctx context.Context, tenant, id, reason string) (bool, error) {
	k, err := s.systemSession(ctx, tenant)
	if err != nil {
		return false, err
	}
	disabled := false
	_, _, err = update(ctx, k.webhookRecord(id), 0, func(w *credgate.Webhook) error {
		if disabled = w.Disable(reason, k.s.opts.Now()); !disabled {
			return errUnchanged
		}
		return nil
	})
	if err != nil {
		return false, webhookError(err)
	}
	return disabled, nil
}

// WebhookDeliveries returns the delivery log of subscription id, newest
// first. Errors: NOT_FOUND, INSUFFICIENT_PERMISSIONS, BACKEND_UNAVAILABLE.
func (s *Store) WebhookDeliveries(ctx context.Context, id string) ([]credgate.Delivery, error) {
	k, err := s.session(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := k.readWebhook(ctx, id); err != nil {
		return nil, err
	}
	var l deliveryLog
	if _, err := k.read(ctx, "delivery_log_read", k.deliveryPath(id), &l); err != nil && !errors.Is(err, errNotFound) {
		return nil, translate(err, credgate.ENotFound)
	}
	out := make([]credgate.Delivery, 0, len(l.Deliveries))
	for i := len(l.Deliveries) - 1; i >= 0; i-- {
		out = append(out, l.Deliveries[i])
	}
	return out, nil
}

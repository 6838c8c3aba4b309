package vaultstore

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/credgate/credgate"
)

// The inventory: descriptions of credentials, never values, read from their
// projections (projection.go), a service at a time.

// serviceAndList reads the live service and the descriptions of its
// credentials, in the inventory's order, as read at now: from the
// service's inventory (inventory_records.go) when its base is built (two
// Vault reads, its delta's and its base's, or the delta's alone when this
// replica keeps the base it names: basecache.go; a service has a built base
// only while it is live, and the base names its incarnation), else from
// the service's record and each credential's metadata. walk reads those
// in any case and corrects the base by them. The service record answered
// from an inventory holds its id and incarnation only.
// Errors: SERVICE_NOT_FOUND, or a translated Vault error.
func (k *session) serviceAndList(ctx context.Context, service string, now time.Time, walk bool) (*serviceRecord, []*credgate.Credential, error) {
	if !walk {
		inv, delta, err := k.readInventoryList(ctx, service)
		if err != nil {
			return nil, nil, translate(err, credgate.ECredentialNotFound)
		}
		if inv.built() {
			rec := &serviceRecord{Incarnation: inv.Incarnation}
			rec.ID = service
			infos, err := k.describeRecord(ctx, service, inv, delta)
			if err != nil {
				return nil, nil, translate(err, credgate.ECredentialNotFound)
			}
			return rec, k.sorted(rec, infos, now), nil
		}
	}
	var rec *serviceRecord
	var serr error
	var wg sync.WaitGroup
	wg.Go(func() { rec, serr = k.readService(ctx, service) })
	inv, iv, err := k.readInventory(ctx, service)
	wg.Wait()
	if serr != nil {
		return nil, nil, missing(service, true, serr)
	}
	if err != nil {
		return nil, nil, translate(err, credgate.ECredentialNotFound)
	}
	infos, entries, err := k.walkCreds(ctx, service)
	if err != nil {
		return nil, nil, translate(err, credgate.ECredentialNotFound)
	}
	if walk {
		if _, err := k.settleInventory(ctx, rec, inv, iv, entries); err != nil {
			return nil, nil, translate(err, credgate.ECredentialNotFound)
		}
	}
	return rec, k.sorted(rec, infos, now), nil
}

// sorted is liveOf in the inventory's order.
func (k *session) sorted(rec *serviceRecord, infos []*credInfo, now time.Time) []*credgate.Credential {
	list := k.liveOf(rec, infos, now)
	credgate.SortInventory(list)
	return list
}

// describeRecord decodes the entries of service's base b, as its delta
// d overrides them; a pending one (a write that may not be noted) is
// described from its metadata.
func (k *session) describeRecord(ctx context.Context, service string, b *inventoryBase, d *inventoryDelta) ([]*credInfo, error) {
	out := make([]*credInfo, 0, len(b.Entries)+len(d.Entries))
	var pending []string
	add := func(id string, e inventoryEntry) {
		switch {
		case e.Pending != "":
			pending = append(pending, id)
		case e.Gone:
		default:
			if info, ok := e.describe(id); ok {
				out = append(out, info)
			}
		}
	}
	for id, e := range b.Entries {
		if _, changed := d.Entries[id]; !changed {
			add(id, e)
		}
	}
	for id, e := range d.Entries {
		add(id, e)
	}
	live := make([]*credInfo, len(pending))
	err := eachAtOnce(len(pending), readsAtOnce, func(i int) (err error) {
		live[i], err = k.describeCred(ctx, service, pending[i])
		if errors.Is(err, errNotFound) {
			err = nil
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, info := range live {
		if info != nil {
			out = append(out, info)
		}
	}
	return out, nil
}

// liveOf is the credentials of infos that are rec's own, live, as read at
// now.
func (k *session) liveOf(rec *serviceRecord, infos []*credInfo, now time.Time) []*credgate.Credential {
	list := []*credgate.Credential{}
	for _, info := range infos {
		if info.belongsTo(rec) {
			c := info.Credential
			c.ReadAt = now
			k.derive(&c)
			list = append(list, &c)
		}
	}
	return list
}

// describeCred reads the projected description of credential id of
// service (one metadata read); nil without an error when it has no
// projection (its creation did not finish). Errors: errNotFound, Vault's.
func (k *session) describeCred(ctx context.Context, service, id string) (*credInfo, error) {
	meta, err := k.readMetadata(ctx, "credential_metadata_read", k.credPath(service, id))
	if err != nil {
		return nil, err
	}
	e, ok := entryOf(meta.CustomMetadata, meta.CurrentVersion)
	if !ok {
		return nil, nil
	}
	info, _ := e.describe(id)
	return info, nil
}

// listCreds returns the projected descriptions of the credentials kept
// under service, read one by one. A credential without a version (its
// creation did not finish) is left out.
func (k *session) listCreds(ctx context.Context, service string) ([]*credInfo, error) {
	infos, _, err := k.walkCreds(ctx, service)
	return infos, err
}

// walkCreds is listCreds, with the inventory entries the descriptions
// were read from, by credential id.
func (k *session) walkCreds(ctx context.Context, service string) ([]*credInfo, map[string]inventoryEntry, error) {
	ids, err := k.list(ctx, "credential_list", k.credFolder(service))
	if err != nil {
		return nil, nil, err
	}
	out := make([]*credInfo, len(ids))
	found := make([]inventoryEntry, len(ids))
	err = eachAtOnce(len(ids), readsAtOnce, func(i int) error {
		e, ok, err := k.entryAt(ctx, service, ids[i])
		if ok {
			found[i] = e
			out[i], _ = e.describe(ids[i])
		}
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	list := out[:0]
	entries := map[string]inventoryEntry{}
	for i, info := range out {
		if info != nil {
			list = append(list, info)
			entries[ids[i]] = found[i].kept()
		}
	}
	return list, entries, nil
}

// ListCredentials is the tenant's inventory: descriptions of its
// credentials (never values) that f selects, in the order of
// credgate.CredentialPosition, one page of f.Limit at a time. Services are
// read a few at a time, each from its inventory (two Vault reads a
// service, one when the base this replica keeps is current; one without a
// built base costs its record, a list and a metadata read per
// credential), and the filter is applied to the descriptions read.
// Errors: SERVICE_NOT_FOUND (f.IntegrationID), INSUFFICIENT_PERMISSIONS,
// BACKEND_UNAVAILABLE.
func (s *Store) ListCredentials(ctx context.Context, f credgate.CredentialFilter) (*credgate.CredentialPage, error) {
	k, err := s.session(ctx)
	if err != nil {
		return nil, err
	}
	services := []string{f.IntegrationID}
	switch {
	case f.IntegrationID == "":
		if services, err = k.serviceIDs(ctx, f.Visible); err != nil {
			return nil, translate(err, credgate.ENotFound)
		}
	case f.Visible != nil && !f.Visible(f.IntegrationID):
		return nil, missing(f.IntegrationID, true, errNotFound) // as if it did not exist
	}
	if f.After != nil {
		from := sort.SearchStrings(services, f.After.IntegrationID)
		if f.After.PastEnd() && from < len(services) && services[from] == f.After.IntegrationID {
			from++ // the page before ended with its last credential
		}
		services = services[from:]
	}
	now := s.opts.Now()
	page := &credgate.CredentialPage{Credentials: []*credgate.Credential{}}
	// Services are read a batch at a time, the batch doubling (to 8) while
	// the page is not full: a page that one service fills reads that one.
	batch := 1
	for off := 0; off < len(services); off, batch = off+batch, min(2*batch, 8) {
		chunk := services[off:min(off+batch, len(services))]
		lists := make([][]*credgate.Credential, len(chunk))
		errs := make([]error, len(chunk))
		var wg sync.WaitGroup
		for i, svc := range chunk {
			wg.Go(func() { _, lists[i], errs[i] = k.serviceAndList(ctx, svc, now, f.Walk) })
		}
		wg.Wait()
		for i, list := range lists {
			if errs[i] != nil {
				if f.IntegrationID == "" && credgate.ErrorCode(errs[i]) == credgate.EServiceNotFound {
					continue // deleted while we listed
				}
				return nil, errs[i]
			}
			for j, c := range list {
				if f.After != nil && c.IntegrationID == f.After.IntegrationID && !f.After.Precedes(c) {
					continue
				}
				if !f.Matches(c, now) {
					continue
				}
				page.Credentials = append(page.Credentials, c)
				if len(page.Credentials) == f.Limit {
					switch {
					case j+1 < len(list):
						page.Next = credgate.PositionOf(c)
					case off+i+1 < len(services):
						page.Next = credgate.EndOf(c)
					}
					return page, nil
				}
			}
		}
	}
	return page, nil
}

// DescribePrimary describes, without values, the credential a read of
// service without a credential id serves. Errors: SERVICE_NOT_FOUND,
// CREDENTIAL_NOT_FOUND, INSUFFICIENT_PERMISSIONS, BACKEND_UNAVAILABLE.
func (s *Store) DescribePrimary(ctx context.Context, service string) (*credgate.Credential, error) {
	k, err := s.session(ctx)
	if err != nil {
		return nil, err
	}
	now := s.opts.Now()
	_, list, err := k.serviceAndList(ctx, service, now, false)
	if err != nil {
		return nil, err
	}
	if c := credgate.PickServable(list, now); c != nil {
		return c, nil
	}
	return nil, credgate.Errorf(credgate.ECredentialNotFound, "No servable credential exists for integration ID: %s (none is active or expired)", service)
}

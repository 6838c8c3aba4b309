package vaultstore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/policy"
)

// serviceRecord is the stored form of a service, at
// tenants/<t>/services/<id>. The service's Vault KV version is its version.
type serviceRecord struct {
	credgate.Service
	// Incarnation is random, set when the service is created. Its
	// credentials carry it, so that credentials left by an earlier service
	// with the same id are never served as, or listed with, this one's.
	Incarnation string `json:"incarnation,omitempty"`
	// Deleting marks a service whose DELETE began: it is gone for every
	// reader and writer, and DELETE again (or creating a service with its id)
	// finishes the removal. DeleteOf is the version the DELETE was for.
	Deleting bool `json:"deleting,omitempty"`
	DeleteOf int  `json:"delete_of,omitempty"`
}

func (k *session) servicePath(id string) string { return k.path(policy.FolderServices, id) }

func (k *session) serviceNamePath(name string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(name)))
	return k.path(policy.FolderServiceNames, hex.EncodeToString(sum[:]))
}

func newIncarnation() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// readServiceRecord returns the record of service id whatever its state;
// errNotFound when there is none.
func (k *session) readServiceRecord(ctx context.Context, id string) (*serviceRecord, error) {
	var rec serviceRecord
	meta, err := k.read(ctx, "service_read", k.servicePath(id), &rec)
	if err != nil {
		return nil, err
	}
	rec.Version = meta.Version
	return &rec, nil
}

// readService returns the live service id; errNotFound when there is none
// or its DELETE began.
func (k *session) readService(ctx context.Context, id string) (*serviceRecord, error) {
	rec, err := k.readServiceRecord(ctx, id)
	if err == nil && rec.Deleting {
		err = errNotFound
	}
	return rec, err
}

// GetService returns a service of the caller's tenant.
// Errors: SERVICE_NOT_FOUND, INSUFFICIENT_PERMISSIONS, BACKEND_UNAVAILABLE.
func (s *Store) GetService(ctx context.Context, id string) (*credgate.Service, error) {
	k, err := s.session(ctx)
	if err != nil {
		return nil, err
	}
	rec, err := k.readService(ctx, id)
	if err != nil {
		return nil, translate(err, credgate.EServiceNotFound)
	}
	return &rec.Service, nil
}

// ListServices returns one page of the caller's tenant's services in id
// order. Errors: INSUFFICIENT_PERMISSIONS, BACKEND_UNAVAILABLE.
func (s *Store) ListServices(ctx context.Context, f credgate.ServiceFilter) (*credgate.ServicePage, error) {
	k, err := s.session(ctx)
	if err != nil {
		return nil, err
	}
	ids, err := k.serviceIDs(ctx, f.Visible)
	if err != nil {
		return nil, translate(err, credgate.ENotFound)
	}
	start := sort.SearchStrings(ids, f.After)
	for start < len(ids) && ids[start] <= f.After {
		start++
	}
	ids = ids[start:]

	page := &credgate.ServicePage{Services: []*credgate.Service{}}
	const batch = 16
	for off := 0; off < len(ids); off += batch {
		chunk := ids[off:min(off+batch, len(ids))]
		got := make([]*serviceRecord, len(chunk))
		errs := make([]error, len(chunk))
		var wg sync.WaitGroup
		for i, id := range chunk {
			wg.Go(func() { got[i], errs[i] = k.readService(ctx, id) })
		}
		wg.Wait()
		for i, rec := range got {
			if errors.Is(errs[i], errNotFound) {
				continue // deleted while we listed
			}
			if errs[i] != nil {
				return nil, translate(errs[i], credgate.EServiceNotFound)
			}
			if (f.Type != "" && rec.Type != f.Type) || (f.Status != "" && rec.Status != f.Status) {
				continue
			}
			page.Services = append(page.Services, &rec.Service)
			if len(page.Services) == f.Limit {
				if off+i+1 < len(ids) {
					page.Next = chunk[i]
				}
				return page, nil
			}
		}
	}
	return page, nil
}

// serviceIDs lists the ids of the session's tenant's services, sorted: all
// of them, or with visible only those (listed by credgate's system
// session: a caller whose token reaches only some services is not given
// the list of every id).
func (k *session) serviceIDs(ctx context.Context, visible func(string) bool) ([]string, error) {
	if visible == nil {
		return k.list(ctx, "service_list", k.folder(policy.FolderServices))
	}
	sys, err := k.s.systemSession(ctx, k.tenant)
	if err != nil {
		return nil, err
	}
	ids, err := sys.list(ctx, "service_list", sys.folder(policy.FolderServices))
	return slices.DeleteFunc(ids, func(id string) bool { return !visible(id) }), err
}

// CreateService stores svc, new, in the caller's tenant. Its id must be
// set; it is validated (credgate.Service.Validate) before anything is
// written. A service whose DELETE did not finish is removed first.
// Errors: VALIDATION_FAILED, SERVICE_ALREADY_EXISTS (same id, or same name
// ignoring case), INSUFFICIENT_PERMISSIONS, BACKEND_UNAVAILABLE.
func (s *Store) CreateService(ctx context.Context, svc *credgate.Service) (*credgate.Service, error) {
	if err := svc.Validate(); err != nil {
		return nil, err
	}
	k, err := s.session(ctx)
	if err != nil {
		return nil, err
	}
	exists := func() error {
		return credgate.Errorf(credgate.EServiceAlreadyExists, "a service with id %q already exists", svc.ID)
	}
	cas := 0
	switch old, err := k.readServiceRecord(ctx, svc.ID); {
	case err == nil && !old.Deleting:
		return nil, exists()
	case err == nil:
		// The DELETE of an earlier service with this id did not finish.
		if err := k.removeCredentialsOf(ctx, svc.ID); err != nil {
			return nil, translate(err, credgate.EServiceNotFound)
		}
		cas = old.Version
	case !errors.Is(err, errNotFound):
		return nil, translate(err, credgate.EServiceNotFound)
	}
	if err := k.claimName(ctx, svc.Name, svc.ID); err != nil {
		return nil, err
	}
	now := s.opts.Now().UTC().Truncate(time.Second)
	svc.TenantID, svc.CreatedAt, svc.UpdatedAt = k.tenant, now, now
	rec := serviceRecord{Service: *svc, Incarnation: newIncarnation()}
	rec.Version = 0
	data, err := encode(rec)
	if err != nil {
		return nil, translate(err, credgate.EServiceNotFound)
	}
	version, err := k.accounted(ctx, credgate.TenantUsage{Services: 1, Bytes: sizeOf(data)}, func() (int, error) {
		return k.write(ctx, "service_write", k.servicePath(svc.ID), data, cas)
	})
	if err != nil {
		_ = k.releaseName(ctx, svc.Name, svc.ID)
		if errors.Is(err, errConflict) {
			return nil, exists()
		}
		return nil, translate(err, credgate.EServiceNotFound)
	}
	// Its inventory's base: none of its credentials yet. A failure leaves
	// it walked until the monitor's next rebuild builds the record.
	_ = k.buildInventory(ctx, &rec)
	out := rec.Service
	out.Version = version
	return &out, nil
}

// claimName reserves name (ignoring case) for service id. A claim left
// behind by a service that no longer has that name is taken over.
// Errors: SERVICE_ALREADY_EXISTS, or a translated Vault error.
func (k *session) claimName(ctx context.Context, name, id string) error {
	r := jsonRecord[pointer](k, "service_name", k.serviceNamePath(name))
	r.create = true
	r.clone = func(p pointer) pointer { return p }
	_, _, err := update(ctx, r, 0, func(claim *pointer) error {
		if claim.ServiceID != "" && claim.ServiceID != id {
			other, err := k.readService(ctx, claim.ServiceID)
			switch {
			case err == nil && strings.EqualFold(other.Name, name):
				return credgate.Errorf(credgate.EServiceAlreadyExists, "a service named %q already exists", name)
			case err != nil && !errors.Is(err, errNotFound):
				return err
			}
			// A stale claim: its service is gone or renamed.
		}
		claim.ServiceID = id
		return nil
	})
	return translate(err, credgate.EServiceNotFound)
}

// releaseName drops the claim on name if service id holds it. A claim left
// behind is harmless (the next claimant takes it over), so most callers
// ignore the error; a DELETE does not, so that it leaves nothing behind.
func (k *session) releaseName(ctx context.Context, name, id string) error {
	path := k.serviceNamePath(name)
	var claim pointer
	_, err := k.read(ctx, "service_name_read", path, &claim)
	if errors.Is(err, errNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if claim.ServiceID == id {
		return k.destroy(ctx, "service_name_release", path)
	}
	return nil
}

// UpdateService applies fn to the current service id of the caller's tenant
// and writes the result with check-and-set, retrying on a concurrent write so
// no update is lost. With ifMatch > 0 the service must be at that version
// (credgate.CheckVersion), unless fn changes nothing: a change already in
// the record succeeds without a write (RFC 9110 13.1.1), so a client that
// retries a write whose answer it lost is told it succeeded. fn may return an
// error to abort; ID, TenantID, CreatedAt and CreatedBy are kept.
//
// With creds, the service's primary credential is set in the same request
// (as SetPrimaryCredential does) and ifMatch covers it too. Everything is
// validated before anything is written. The credential is written first and
// the service last, with check-and-set: when the service write loses to a
// concurrent one and ifMatch is set, the credential write is taken back and
// nothing has changed; when Vault fails in between, repeating the request
// with the same If-Match finishes it.
//
// Errors: SERVICE_NOT_FOUND, VALIDATION_FAILED, SERVICE_ALREADY_EXISTS (the
// new name is taken), VERSION_CONFLICT, INSUFFICIENT_PERMISSIONS,
// BACKEND_UNAVAILABLE, or fn's.
func (s *Store) UpdateService(ctx context.Context, id string, ifMatch int, fn func(*credgate.Service) error, creds *credgate.PrimaryUpdate) (*credgate.Service, error) {
	k, err := s.session(ctx)
	if err != nil {
		return nil, err
	}
	var also *alsoWrite
	if creds != nil {
		also = k.primaryWrite(*creds)
	}
	return k.updateService(ctx, id, ifMatch, fn, also)
}

// alsoWrite is a second record a service write carries (the credentials of
// PUT /services/{id}): written once, after everything is validated and
// before the service; same reports whether it is in place already; undo
// takes it back when the service write then loses to a concurrent writer.
type alsoWrite struct {
	write func(ctx context.Context, rec *serviceRecord) (undo func(context.Context), err error)
	same  func(ctx context.Context, rec *serviceRecord) (bool, error)
}

// serviceRecordOf is service id as update reads and writes it: whatever
// its state when any, else only while it is live (errNotFound once its
// DELETE began).
func (k *session) serviceRecordOf(id string, any bool) record[serviceRecord] {
	return record[serviceRecord]{
		read: func(ctx context.Context) (serviceRecord, int, error) {
			read := k.readService
			if any {
				read = k.readServiceRecord
			}
			rec, err := read(ctx, id)
			if err != nil {
				return serviceRecord{}, 0, err
			}
			return *rec, rec.Version, nil
		},
		write: func(ctx context.Context, cur serviceRecord, next *serviceRecord, cas int) (int, error) {
			stored := *next
			stored.Version = 0 // the KV version is the version
			data, err := encode(stored)
			if err != nil {
				return 0, err
			}
			return k.accounted(ctx, serviceUsage(cur, stored, sizeOf(data)), func() (int, error) {
				return k.write(ctx, "service_write", k.servicePath(id), data, cas)
			})
		},
		clone: func(r serviceRecord) serviceRecord {
			r.Metadata = cloneMap(r.Metadata)
			return r
		},
	}
}

// serviceUsage is what writing next (size bytes) over cur changes in the
// tenant's usage: its size, or all of it once its DELETE begins.
func serviceUsage(cur, next serviceRecord, size int64) credgate.TenantUsage {
	cur.Version = 0
	was := int64(0)
	if data, err := encode(cur); err == nil {
		was = sizeOf(data)
	}
	switch {
	case cur.Deleting:
		return credgate.TenantUsage{}
	case next.Deleting:
		return credgate.TenantUsage{Services: -1, Bytes: -was}
	}
	return credgate.TenantUsage{Bytes: size - was}
}

// uncertain marks a write whose outcome is unknown (Vault failed while it
// was made): what went before it is not taken back, and repeating the
// request finishes it.
type uncertain struct{ err error }

func (e *uncertain) Error() string { return e.err.Error() }
func (e *uncertain) Unwrap() error { return e.err }

func (k *session) updateService(ctx context.Context, id string, ifMatch int, fn func(*credgate.Service) error, also *alsoWrite) (*credgate.Service, error) {
	defer k.s.services.forget(k.tenant, id)
	var undo func(context.Context) // takes back the also-write, once it is made
	r := k.serviceRecordOf(id, false)
	r.same = func(cur, next serviceRecord) bool {
		if undo != nil || !reflect.DeepEqual(cur.Service, next.Service) {
			return false
		}
		if also == nil {
			return true
		}
		same, err := also.same(ctx, &cur)
		return err == nil && same
	}
	write := r.write
	r.write = func(ctx context.Context, cur serviceRecord, next *serviceRecord, cas int) (int, error) {
		next.UpdatedAt = k.s.opts.Now().UTC().Truncate(time.Second)
		renamed := !strings.EqualFold(next.Name, cur.Name)
		if renamed {
			if err := k.claimName(ctx, next.Name, id); err != nil {
				return 0, err
			}
		}
		if also != nil && undo == nil {
			u, err := also.write(ctx, &cur)
			if err != nil {
				if renamed {
					_ = k.releaseName(ctx, next.Name, id)
				}
				return 0, &uncertain{err}
			}
			undo = u
		}
		version, err := write(ctx, cur, next, cas)
		switch {
		case err == nil:
			if renamed {
				_ = k.releaseName(ctx, cur.Name, id)
			}
			return version, nil
		case renamed:
			_ = k.releaseName(ctx, next.Name, id)
		}
		if errors.Is(err, errConflict) {
			return 0, err
		}
		return 0, &uncertain{err} // Vault may or may not have taken the write
	}
	out, version, err := update(ctx, r, ifMatch, func(rec *serviceRecord) error {
		old := rec.Service
		if err := fn(&rec.Service); err != nil {
			return err
		}
		rec.ID, rec.TenantID, rec.CreatedAt, rec.CreatedBy, rec.Version = old.ID, old.TenantID, old.CreatedAt, old.CreatedBy, old.Version
		rec.UpdatedAt = old.UpdatedAt
		return rec.Validate()
	})
	if err != nil {
		var u *uncertain
		if undo != nil && !errors.As(err, &u) {
			undo(context.WithoutCancel(ctx)) // the service was not written: nothing has changed
		}
		return nil, translate(err, credgate.EServiceNotFound)
	}
	svc := out.Service
	svc.Version = version
	return &svc, nil
}

func cloneMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// DeleteService removes service id of the caller's tenant, its versions and
// its credentials. With ifMatch > 0 the service must be at that version.
// The first write marks the service as being deleted, with check-and-set,
// so the condition is exact and the service is gone for every reader from
// then on; its credentials and its name are removed next and the record
// last. When a step fails, DELETE again finishes the job.
// Errors: SERVICE_NOT_FOUND, VERSION_CONFLICT, INSUFFICIENT_PERMISSIONS,
// BACKEND_UNAVAILABLE.
func (s *Store) DeleteService(ctx context.Context, id string, ifMatch int) error {
	k, err := s.session(ctx)
	if err != nil {
		return err
	}
	defer k.s.services.forget(k.tenant, id)
	// Its inventory's base goes first, unnamed before it is removed so that
	// no replica serves one it keeps: a built one says the service is live
	// (inventory_records.go). Until the service is marked below, readers
	// walk it as if it had none.
	if cur, err := k.readServiceRecord(ctx, id); err == nil && !cur.Deleting && (ifMatch == 0 || ifMatch == cur.Version) {
		if err := k.removeBase(ctx, id); err != nil {
			return translate(err, credgate.EServiceNotFound)
		}
	}
	rec, _, err := update(ctx, k.serviceRecordOf(id, true), ifMatch, func(r *serviceRecord) error {
		if r.Deleting {
			// A DELETE began already: repeating it (with the version it
			// named, or the mark's) finishes it.
			if ifMatch > 0 && ifMatch != r.DeleteOf && ifMatch != r.Version {
				return credgate.CheckVersion(r.DeleteOf, ifMatch)
			}
			return errUnchanged
		}
		r.Deleting, r.DeleteOf = true, r.Version
		return nil
	})
	if err != nil {
		return translate(err, credgate.EServiceNotFound)
	}
	s.rebuildSummary(ctx, k.tenant) // its credentials are no longer live
	if err := k.removeCredentialsOf(ctx, id); err != nil {
		return translate(err, credgate.EServiceNotFound)
	}
	if err := k.releaseName(ctx, rec.Name, id); err != nil {
		return translate(err, credgate.EServiceNotFound)
	}
	if err := k.destroy(ctx, "service_delete", k.servicePath(id)); err != nil {
		return translate(err, credgate.EServiceNotFound)
	}
	return nil
}

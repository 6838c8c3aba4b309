package vaultstore

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/vault/api"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/policy"
)

// A credential is kept at tenants/<t>/credentials/<service>/<credential>.
// Its KV data holds {"secrets": {...}, "info": {...}}: the secret values and
// the descriptive fields, written together with check-and-set, so the data
// version is the one truth and the lock of every change. The descriptive
// fields are also projected into the path's custom_metadata (projection.go).
// An index at tenants/<t>/credential-index/<credential> names the service,
// so that a credential id alone finds it.

func credPath(tenant, service, cred string) string {
	return policy.TenantPrefix(tenant) + policy.FolderCredentials + "/" + service + "/" + cred
}

func (k *session) credPath(service, cred string) string { return credPath(k.tenant, service, cred) }

func (k *session) credIndexPath(cred string) string { return k.path(policy.FolderCredIndex, cred) }

func (k *session) credLockPath(cred string) string { return k.path(policy.FolderCredLocks, cred) }

// credInfo is the descriptive part of a credential as stored.
type credInfo struct {
	credgate.Credential
	Change    string `json:"change"`
	ChangedBy string `json:"changedBy"`
	// ServiceIncarnation is the incarnation of the service the credential
	// was made for (serviceRecord.Incarnation).
	ServiceIncarnation string `json:"serviceIncarnation,omitempty"`
	// Deleted marks a credential whose DELETE began: its values are gone
	// from this version on and it is never served again; DELETE again
	// finishes the removal. DeleteOf is the version the DELETE was for.
	Deleted  bool `json:"deleted,omitempty"`
	DeleteOf int  `json:"deleteOf,omitempty"`
}

type credData struct {
	Secrets credgate.Secrets `json:"secrets"`
	Info    credInfo         `json:"info"`
}

// belongsTo reports whether info is a live credential of service rec.
func (info *credInfo) belongsTo(rec *serviceRecord) bool { return info.of(rec.Incarnation) }

// of reports whether info is a live credential of the service incarnation.
func (info *credInfo) of(incarnation string) bool {
	return !info.Deleted && info.ServiceIncarnation == incarnation
}

// NewCredentialID returns cred-<uuid v4>.
func NewCredentialID() string { return "cred-" + uuid.NewString() }

// readCredData reads the stored form of a credential at version (0: the
// current one); errNotFound when there is no such version.
func (k *session) readCredData(ctx context.Context, service, cred string, version int) (*credData, *kvMeta, error) {
	var d credData
	meta, err := k.readVersion(ctx, "credential_read", k.credPath(service, cred), version, &d)
	if err != nil {
		return nil, nil, err
	}
	if d.Secrets == nil {
		d.Secrets = credgate.Secrets{}
	}
	return &d, meta, nil
}

// credentialOf is the domain view of stored data read with sec.
func credentialOf(d *credData, sec *kvMeta) *credgate.Credential {
	c := d.Info.Credential
	c.Secrets = d.Secrets
	c.Version = sec.Version
	c.LastAccessedAt = parseTime(sec.CustomMetadata.lastAccessedAt)
	c.ApplyWatch(sec.CustomMetadata.watch)
	return &c
}

// serviceAndCred reads the live service and the current data of cred in
// parallel: what every credential read and write starts from.
func (k *session) serviceAndCred(ctx context.Context, service, cred string) (*serviceRecord, *credData, *kvMeta, error) {
	var rec *serviceRecord
	var serr error
	var wg sync.WaitGroup
	wg.Go(func() { rec, serr = k.readService(ctx, service) })
	d, sec, err := k.readCredData(ctx, service, cred, 0)
	wg.Wait()
	if serr != nil {
		return nil, nil, nil, serr
	}
	return rec, d, sec, err
}

// liveCred reads cred of service: errNotFound unless the service is live and
// the credential is one of its own and not deleted.
func (k *session) liveCred(ctx context.Context, service, cred string) (*credData, *kvMeta, error) {
	rec, d, sec, err := k.serviceAndCred(ctx, service, cred)
	if err != nil {
		return nil, nil, credNotFound(err)
	}
	if !d.Info.belongsTo(rec) {
		return nil, nil, errNotFound
	}
	return d, sec, nil
}

// credNotFound turns a missing service into a missing credential: through
// a credential, a service is only a place the credential is not.
func credNotFound(err error) error {
	if errors.Is(err, errNotFound) {
		return errNotFound
	}
	return err
}

// writeCred writes c as a new version with check-and-set cas (0: a new
// credential) and projects it over old, the custom_metadata read with
// version cas. A new credential is projected first, so that no version of
// it exists without its description; its data write then creates version 1.
func (k *session) writeCred(ctx context.Context, c *credgate.Credential, info credInfo, cas int, old map[string]any) (*credgate.Credential, error) {
	defer k.s.services.forget(k.tenant, c.IntegrationID)
	info.Credential = *c
	info.Secrets, info.Version, info.LastAccessedAt, info.Refresh = nil, 0, nil, nil
	if err := fitsProjection(info); err != nil {
		return nil, err
	}
	if cas == 0 {
		m, err := projection(info, 1, nil)
		if err != nil {
			return nil, err
		}
		if err := k.putMetadata(ctx, "credential_project", k.credPath(c.IntegrationID, c.ID), m); err != nil {
			return nil, err
		}
	}
	secrets := c.Secrets
	if secrets == nil {
		secrets = credgate.Secrets{}
	}
	data, err := encode(credData{Secrets: secrets, Info: info})
	if err != nil {
		return nil, err
	}
	version, err := k.write(ctx, "credential_write", k.credPath(c.IntegrationID, c.ID), data, cas)
	if err != nil {
		return nil, err
	}
	out := *c
	out.Version = version
	if cas == 0 && version == 1 {
		return &out, nil
	}
	return &out, k.project(ctx, c.IntegrationID, c.ID, info, version, old)
}

// CreateCredential stores c, new, for its service (c.IntegrationID) in the
// caller's tenant; it is validated (credgate.Credential.Validate) before
// anything is written. A new id is made when c.ID is empty. Until its
// values are written the credential is invisible, so a failure at any step
// leaves no credential behind that anyone can read.
// Errors: VALIDATION_FAILED, SERVICE_NOT_FOUND, INSUFFICIENT_PERMISSIONS,
// BACKEND_UNAVAILABLE.
func (s *Store) CreateCredential(ctx context.Context, c *credgate.Credential) (*credgate.Credential, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	k, err := s.session(ctx)
	if err != nil {
		return nil, err
	}
	rec, err := k.readService(ctx, c.IntegrationID)
	if err != nil {
		return nil, translate(err, credgate.EServiceNotFound)
	}
	return k.createCred(ctx, rec, c)
}

func (k *session) createCred(ctx context.Context, rec *serviceRecord, c *credgate.Credential) (*credgate.Credential, error) {
	if c.ID == "" {
		c.ID = NewCredentialID()
	}
	now := k.s.opts.Now().UTC().Truncate(time.Second)
	c.CreatedAt, c.UpdatedAt = now, now
	c.CreatedBy = credgate.PrincipalFrom(ctx).Actor()
	info := credInfo{Change: credgate.ChangeCreated, ChangedBy: c.CreatedBy.ID, ServiceIncarnation: rec.Incarnation}
	if err := fitsProjection(credInfo{Credential: *c}); err != nil {
		return nil, err
	}
	if _, err := k.write(ctx, "credential_index_write", k.credIndexPath(c.ID), map[string]any{"service_id": c.IntegrationID}, 0); err != nil {
		if errors.Is(err, errConflict) {
			return nil, credgate.Errorf(credgate.ECredentialAlreadyExists, "a credential with id %s already exists", c.ID)
		}
		return nil, translate(err, credgate.ECredentialNotFound)
	}
	out, err := k.writeCred(ctx, c, info, 0, nil)
	if err != nil {
		return nil, translate(err, credgate.ECredentialNotFound)
	}
	return out, nil
}

// GetCredential returns a credential of service with its secret values: the
// one named cred (at version, when > 0), or without cred the one
// credgate.PickServable picks. A credential's current status rules every
// version of it (credgate.Credential.Servable). When this replica knows
// the service (serviceCache), a read is one Vault call.
// Errors: SERVICE_NOT_FOUND (no such service), CREDENTIAL_NOT_FOUND,
// INSUFFICIENT_PERMISSIONS, BACKEND_UNAVAILABLE.
func (s *Store) GetCredential(ctx context.Context, service, cred string, version int) (*credgate.Credential, error) {
	k, err := s.session(ctx)
	if err != nil {
		return nil, err
	}
	now := s.opts.Now()
	if cred == "" {
		return k.readPrimary(ctx, service, now)
	}
	if view, ok := s.services.get(k.tenant, service); ok {
		d, sec, err := k.readCredData(ctx, service, cred, 0)
		switch {
		case err != nil && !errors.Is(err, errNotFound):
			return nil, translate(err, credgate.ECredentialNotFound)
		case err == nil && d.Info.of(view.incarnation):
			return k.served(ctx, service, cred, version, credentialOf(d, sec), now)
		}
		// Gone, or not of the service remembered: the full read decides.
		s.services.forget(k.tenant, service)
	}
	rec, d, sec, err := k.serviceAndCred(ctx, service, cred)
	if err != nil {
		return nil, translate(err, notFoundCode(rec, err))
	}
	s.services.seen(k.tenant, service, rec.Incarnation, "")
	if !d.Info.belongsTo(rec) {
		return nil, translate(errNotFound, credgate.ECredentialNotFound)
	}
	return k.served(ctx, service, cred, version, credentialOf(d, sec), now)
}

// served returns current, the credential's current version, or its
// version, when its current status lets it be served.
func (k *session) served(ctx context.Context, service, cred string, version int, current *credgate.Credential, now time.Time) (*credgate.Credential, error) {
	if err := current.Servable(now); err != nil {
		return nil, err
	}
	if version == 0 || version == current.Version {
		return current, nil
	}
	if !current.ServesVersion(version, now) && !policy.Allowed(credgate.PrincipalFrom(ctx).Roles, policy.CredentialsWrite) {
		if version == current.PreviousVersion { // kept for a migration that has ended
			return nil, &credgate.Error{Code: credgate.ECredentialNotFound, Message: "this version was served until its previousRevokeAt; read the current one", Status: credgate.CredRevoked}
		}
		return nil, credgate.Errorf(credgate.EInsufficientPermissions, "reading an earlier version needs the %s permission", policy.CredentialsWrite)
	}
	d, sec, err := k.readCredData(ctx, service, cred, version)
	if err != nil {
		return nil, translate(err, credgate.ECredentialNotFound)
	}
	old := credentialOf(d, sec)
	old.LastAccessedAt = current.LastAccessedAt
	return old, nil
}

// notFoundCode says which record was missing: the service, when rec is nil.
func notFoundCode(rec *serviceRecord, err error) string {
	if rec == nil && errors.Is(err, errNotFound) {
		return credgate.EServiceNotFound
	}
	return credgate.ECredentialNotFound
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
			if c := credentialOf(d, sec); c.Servable(now) == nil {
				return c, nil
			}
		}
		k.s.services.forget(k.tenant, service)
	}
	rec, list, err := k.serviceAndList(ctx, service)
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
			c := credentialOf(d, sec)
			if c.Servable(now) == nil {
				k.s.services.seen(k.tenant, service, rec.Incarnation, c.ID)
				return c, nil
			}
		}
		list = removeCred(list, pick.ID)
	}
	k.s.services.seen(k.tenant, service, rec.Incarnation, "")
	return nil, credgate.Errorf(credgate.ECredentialNotFound, "the service has no active credential")
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

// serviceAndList reads the live service and the descriptions of its
// credentials. Errors: SERVICE_NOT_FOUND, or a translated Vault error.
func (k *session) serviceAndList(ctx context.Context, service string) (*serviceRecord, []*credgate.Credential, error) {
	var rec *serviceRecord
	var serr error
	var wg sync.WaitGroup
	wg.Go(func() { rec, serr = k.readService(ctx, service) })
	infos, err := k.listCreds(ctx, service)
	wg.Wait()
	if serr != nil {
		return nil, nil, translate(serr, credgate.EServiceNotFound)
	}
	if err != nil {
		return nil, nil, translate(err, credgate.ECredentialNotFound)
	}
	list := []*credgate.Credential{}
	for _, info := range infos {
		if info.belongsTo(rec) {
			c := info.Credential
			list = append(list, &c)
		}
	}
	credgate.SortInventory(list)
	return rec, list, nil
}

// listCreds returns the projected descriptions of the credentials kept under
// service. A credential without a version (its creation did not finish) is
// left out.
func (k *session) listCreds(ctx context.Context, service string) ([]*credInfo, error) {
	ids, err := k.list(ctx, "credential_list", policy.FolderCredentials+"/"+service+"/")
	if err != nil {
		return nil, err
	}
	out := make([]*credInfo, len(ids))
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i, id := range ids {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			meta, err := k.readMetadata(ctx, "credential_metadata_read", k.credPath(service, id))
			if err != nil {
				if !errors.Is(err, errNotFound) {
					errs[i] = err
				}
				return
			}
			if info, ok := fromProjection(meta.CustomMetadata); ok {
				info.ID = id
				out[i] = info
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	list := out[:0]
	for _, info := range out {
		if info != nil {
			list = append(list, info)
		}
	}
	return list, nil
}

// ListCredentials is the tenant's inventory: descriptions of its
// credentials (never values) that f selects, in the order of
// credgate.CredentialPosition, one page of f.Limit at a time. Services are
// read a few at a time, each with its credentials' projections (one list
// and one metadata read per credential), so a page costs what it covers.
// Errors: SERVICE_NOT_FOUND (f.IntegrationID), INSUFFICIENT_PERMISSIONS,
// BACKEND_UNAVAILABLE.
func (s *Store) ListCredentials(ctx context.Context, f credgate.CredentialFilter) (*credgate.CredentialPage, error) {
	k, err := s.session(ctx)
	if err != nil {
		return nil, err
	}
	services := []string{f.IntegrationID}
	if f.IntegrationID == "" {
		if services, err = k.list(ctx, "service_list", policy.FolderServices+"/"); err != nil {
			return nil, translate(err, credgate.ENotFound)
		}
	}
	if f.After != nil {
		services = services[sort.SearchStrings(services, f.After.IntegrationID):]
	}
	now := s.opts.Now()
	page := &credgate.CredentialPage{Credentials: []*credgate.Credential{}}
	const batch = 8
	for off := 0; off < len(services); off += batch {
		chunk := services[off:min(off+batch, len(services))]
		lists := make([][]*credgate.Credential, len(chunk))
		errs := make([]error, len(chunk))
		var wg sync.WaitGroup
		for i, svc := range chunk {
			wg.Go(func() { _, lists[i], errs[i] = k.serviceAndList(ctx, svc) })
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
					if j+1 < len(list) || off+i+1 < len(services) {
						page.Next = credgate.PositionOf(c)
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
	_, list, err := k.serviceAndList(ctx, service)
	if err != nil {
		return nil, err
	}
	if c := credgate.PickServable(list, s.opts.Now()); c != nil {
		return c, nil
	}
	return nil, credgate.Errorf(credgate.ECredentialNotFound, "the service has no active credential")
}

// locate returns the caller's session and the service credential cred
// belongs to. Errors: CREDENTIAL_NOT_FOUND, or the caller's.
func (s *Store) locate(ctx context.Context, cred string) (*session, string, error) {
	k, err := s.session(ctx)
	if err != nil {
		return nil, "", err
	}
	var idx pointer
	if _, err := k.read(ctx, "credential_index_read", k.credIndexPath(cred), &idx); err != nil {
		return nil, "", translate(err, credgate.ECredentialNotFound)
	}
	svc := idx.ServiceID
	if !credgate.ValidID(svc) {
		return nil, "", translate(errNotFound, credgate.ECredentialNotFound)
	}
	return k, svc, nil
}

// UpdateCredential applies fn to the current credential cred, with its
// secret values, and writes the result as a new version with check-and-set,
// retrying on a concurrent write so no update is lost. With ifMatch > 0 the
// credential must be at that version, unless fn changes nothing (as
// UpdateService). The result is validated before it is written; what
// changed (updated or rotated) is worked out from the values.
// Errors: CREDENTIAL_NOT_FOUND, VERSION_CONFLICT, VALIDATION_FAILED,
// INSUFFICIENT_PERMISSIONS, BACKEND_UNAVAILABLE, or fn's.
func (s *Store) UpdateCredential(ctx context.Context, cred string, ifMatch int, fn func(*credgate.Credential) error) (*credgate.Credential, error) {
	k, svc, err := s.locate(ctx, cred)
	if err != nil {
		return nil, err
	}
	return k.updateCred(ctx, svc, cred, ifMatch, fn)
}

func (k *session) updateCred(ctx context.Context, svc, cred string, ifMatch int, fn func(*credgate.Credential) error) (*credgate.Credential, error) {
	for attempt := range maxCASRetries {
		if err := casBackoff(ctx, attempt); err != nil {
			return nil, err
		}
		d, sec, err := k.liveCred(ctx, svc, cred)
		if err != nil {
			return nil, translate(err, credgate.ECredentialNotFound)
		}
		if err := k.repairProjection(ctx, svc, cred, d, sec); err != nil {
			return nil, translate(err, credgate.ECredentialNotFound)
		}
		old := credentialOf(d, sec)
		next := *old
		next.Secrets = old.Secrets.Clone()
		next.Metadata = cloneMap(old.Metadata)
		if err := fn(&next); err != nil {
			return nil, err
		}
		next.ID, next.IntegrationID, next.CreatedAt, next.CreatedBy = old.ID, old.IntegrationID, old.CreatedAt, old.CreatedBy
		if err := next.Validate(); err != nil {
			return nil, err
		}
		if err := credgate.CheckVersion(old.Version, ifMatch); err != nil {
			if reflect.DeepEqual(&next, old) {
				return old, nil // the change is in the record already
			}
			return nil, err
		}
		change := credgate.ChangeOf(old.Secrets, next.Secrets)
		now := k.s.opts.Now().UTC().Truncate(time.Second)
		next.UpdatedAt = now
		if change == credgate.ChangeRotated {
			next.LastRotatedAt = &now
		}
		info := d.Info
		info.Change, info.ChangedBy = change, credgate.PrincipalFrom(ctx).Subject
		out, err := k.writeCred(ctx, &next, info, old.Version, sec.CustomMetadata.all())
		if errors.Is(err, errConflict) {
			if ifMatch > 0 {
				return nil, credgate.Errorf(credgate.EVersionConflict, "the credential was changed by another request")
			}
			continue
		}
		if err != nil {
			return nil, translate(err, credgate.ECredentialNotFound)
		}
		out.LastAccessedAt = old.LastAccessedAt
		return out, nil
	}
	return nil, credgate.Errorf(credgate.EVersionConflict, "the credential is being changed by other requests; retry")
}

// DeleteCredential removes credential cred, all its versions, its lock and
// its index entry. With ifMatch > 0 it must be at that version. The first
// write is a version marking it deleted, with check-and-set, so the
// condition is exact and its values are never served again from then on;
// when a later step fails, DELETE again finishes the job.
// Errors: CREDENTIAL_NOT_FOUND, VERSION_CONFLICT, INSUFFICIENT_PERMISSIONS,
// BACKEND_UNAVAILABLE.
func (s *Store) DeleteCredential(ctx context.Context, cred string, ifMatch int) (string, error) {
	k, svc, err := s.locate(ctx, cred)
	if err != nil {
		return "", err
	}
	rec, d, sec, err := k.serviceAndCred(ctx, svc, cred)
	if rec != nil && errors.Is(err, errNotFound) {
		// The index is left but the values are gone: an earlier DELETE of
		// it stopped half-way (or its creation did). Finish.
		return svc, translate(k.removeCred(ctx, svc, cred, true), credgate.ECredentialNotFound)
	}
	if err != nil {
		return "", translate(credNotFound(err), credgate.ECredentialNotFound)
	}
	switch {
	case d.Info.ServiceIncarnation != rec.Incarnation:
		return "", translate(errNotFound, credgate.ECredentialNotFound)
	case d.Info.Deleted:
		if ifMatch > 0 && ifMatch != d.Info.DeleteOf && ifMatch != sec.Version {
			return "", credgate.CheckVersion(d.Info.DeleteOf, ifMatch)
		}
	default:
		if err := credgate.CheckVersion(sec.Version, ifMatch); err != nil {
			return "", err
		}
		c := credentialOf(d, sec)
		c.Secrets = credgate.Secrets{}
		info := d.Info
		info.Deleted, info.DeleteOf = true, sec.Version
		info.Change, info.ChangedBy = "deleted", credgate.PrincipalFrom(ctx).Subject
		_, err := k.writeCred(ctx, c, info, sec.Version, sec.CustomMetadata.all())
		if errors.Is(err, errConflict) {
			return "", credgate.Errorf(credgate.EVersionConflict, "the credential was changed by another request")
		}
		if err != nil {
			return "", translate(err, credgate.ECredentialNotFound)
		}
	}
	return svc, translate(k.removeCred(ctx, svc, cred, true), credgate.ECredentialNotFound)
}

// removeCred removes the records of credential cred of service: its values
// with their history, its rotation lock and its index entry. Whichever of
// the values and the index entry the caller found it by goes last, so that
// as long as anything is left, the same request finds it again and finishes.
func (k *session) removeCred(ctx context.Context, service, cred string, foundByIndex bool) error {
	defer k.s.services.forget(k.tenant, service)
	paths := []struct{ op, path string }{
		{"credential_delete", k.credPath(service, cred)},
		{"credential_lock_delete", k.credLockPath(cred)},
		{"credential_index_delete", k.credIndexPath(cred)},
	}
	if !foundByIndex {
		slices.Reverse(paths)
	}
	for _, p := range paths {
		if err := k.destroy(ctx, p.op, p.path); err != nil {
			return err
		}
	}
	return nil
}

// removeCredentialsOf removes every credential kept under service.
func (k *session) removeCredentialsOf(ctx context.Context, service string) error {
	ids, err := k.list(ctx, "credential_list", policy.FolderCredentials+"/"+service+"/")
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := k.removeCred(ctx, service, id, false); err != nil {
			return err
		}
	}
	return nil
}

// CredentialVersions returns the history of cred, oldest first, without
// any secret value. Errors: CREDENTIAL_NOT_FOUND, INSUFFICIENT_PERMISSIONS,
// BACKEND_UNAVAILABLE.
func (s *Store) CredentialVersions(ctx context.Context, cred string) ([]credgate.CredentialVersion, error) {
	k, svc, err := s.locate(ctx, cred)
	if err != nil {
		return nil, err
	}
	var rec *serviceRecord
	var serr error
	var wg sync.WaitGroup
	wg.Go(func() { rec, serr = k.readService(ctx, svc) })
	meta, err := k.readMetadata(ctx, "credential_metadata_read", k.credPath(svc, cred))
	wg.Wait()
	if serr != nil {
		err = serr
	}
	if err != nil {
		return nil, translate(credNotFound(err), credgate.ECredentialNotFound)
	}
	if info, ok := fromProjection(meta.CustomMetadata); !ok || !info.belongsTo(rec) {
		return nil, translate(errNotFound, credgate.ECredentialNotFound)
	}
	out := make([]credgate.CredentialVersion, 0, len(meta.Versions))
	for _, v := range meta.Versions {
		cv := credgate.CredentialVersion{Version: v.Version, CreatedAt: v.CreatedTime.UTC(), Destroyed: v.Destroyed, Current: v.Version == meta.CurrentVersion}
		if !v.DeletionTime.IsZero() {
			t := v.DeletionTime.UTC()
			cv.DeletedAt = &t
		}
		if note := str(meta.CustomMetadata["v."+strconv.Itoa(v.Version)]); note != "" {
			cv.Change, cv.ChangedBy, _ = strings.Cut(note, "|")
		}
		out = append(out, cv)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// RandomSecret returns 32 random bytes from Vault (sys/tools/random),
// base64url encoded. Errors: BACKEND_UNAVAILABLE.
func (s *Store) RandomSecret(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	var sec *api.Secret
	err := s.asSelf(ctx, func(c *api.Client) (err error) {
		start := s.opts.Now()
		sec, err = c.Logical().WriteWithContext(ctx, "sys/tools/random/32", map[string]any{"format": "base64"})
		s.observe("random", start, err)
		return err
	})
	if err != nil {
		return "", translate(err, credgate.EInternal)
	}
	raw, err := base64.StdEncoding.DecodeString(str(sec.Data["random_bytes"]))
	if err != nil || len(raw) != 32 {
		return "", &credgate.Error{Code: credgate.EInternal, Message: "internal error", Err: fmt.Errorf("vault random: %v", err)}
	}
	return base64.RawURLEncoding.EncodeToString(raw), nil
}

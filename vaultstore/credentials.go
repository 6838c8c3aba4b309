package vaultstore

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
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
	return policy.Path(tenant, policy.FolderCredentials, service+"/"+cred)
}

// credFolder is the folder of service's credentials, for listing.
func (k *session) credFolder(service string) string {
	return policy.Path(k.tenant, policy.FolderCredentials, service+"/")
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
	// ChangeID is the change (credgate.WithChange) this version was
	// written for, so that an event recorded for it can be proven.
	ChangeID string `json:"changeId,omitempty"`
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

// credentialOf is the domain view of stored data read with sec at now.
//
// Its ids are copies: the decoder's strings are views into its copy of
// Vault's whole answer, values included, and the ids are what callers keep
// (a service's primary, the lastAccessedAt throttle, the ledger's pending
// reads); kept as views, they would keep every value of the credential in
// memory for as long as they are remembered.
func credentialOf(d *credData, sec *kvMeta, now time.Time) *credgate.Credential {
	c := d.Info.Credential
	c.ID, c.IntegrationID = strings.Clone(c.ID), strings.Clone(c.IntegrationID)
	c.Secrets = d.Secrets
	c.Version = sec.Version
	c.LastAccessedAt = parseTime(sec.CustomMetadata.LastAccessedAt)
	c.ApplyWatch(sec.CustomMetadata.Watch)
	c.Rotation = credgate.DecodeRotationStatus(sec.CustomMetadata.Rotation)
	c.ApplyBrokenMark(sec.CustomMetadata.Broken)
	c.ReadAt = now
	return &c
}

// derive sets what c's stored fields and the tenant's configuration make
// of it: when it is due for rotation.
func (k *session) derive(c *credgate.Credential) {
	c.RotationDueAt = c.DueForRotation(k.s.rotationDefault(k.tenant))
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

// credVersion is a credential as update reads and writes it: the domain
// value with its secret values, and the stored descriptive part it was
// read with (the change note, its service's incarnation, a DELETE's mark).
type credVersion struct {
	c    credgate.Credential
	info credInfo
}

// credRecord is credential cred of service as update reads and writes it.
// A read starts from the values, which prove the credential's status,
// after the projection a failed writer left behind is finished; a write
// projects the description (writeCred) and notes what changed. Only a
// live credential of the live service is read; with deleted, one whose
// DELETE began too (to finish it).
func (k *session) credRecord(service, cred string, deleted bool) record[credVersion] {
	var last *kvMeta // the metadata the version being changed was read with
	return record[credVersion]{
		read: func(ctx context.Context) (credVersion, int, error) {
			rec, d, sec, err := k.serviceAndCred(ctx, service, cred)
			switch {
			case err != nil:
				return credVersion{}, 0, err
			case d.Info.ServiceIncarnation != rec.Incarnation || (d.Info.Deleted && !deleted):
				return credVersion{}, 0, errNotFound
			}
			if !d.Info.Deleted {
				if err := k.repairProjection(ctx, service, cred, d, sec); err != nil {
					return credVersion{}, 0, err
				}
			}
			last = sec
			c := credentialOf(d, sec, k.s.opts.Now())
			k.derive(c)
			return credVersion{c: *c, info: d.Info}, sec.Version, nil
		},
		write: func(ctx context.Context, cur credVersion, next *credVersion, cas int) (int, error) {
			info := next.info
			info.ChangedBy = credgate.PrincipalFrom(ctx).Subject
			if !info.Deleted {
				info.Change = credgate.ChangeOf(cur.c.Secrets, next.c.Secrets)
				now := k.s.opts.Now().UTC().Truncate(time.Second)
				next.c.UpdatedAt = now
				if info.Change == credgate.ChangeRotated {
					next.c.LastRotatedAt = &now
				}
			}
			was := int64(0)
			if data, err := encode(credData{Secrets: cur.c.Secrets, Info: cur.info}); err == nil {
				was = sizeOf(data)
			}
			out, err := k.writeCred(ctx, &next.c, info, cas, last.CustomMetadata.all(), was)
			if err != nil {
				return 0, err
			}
			next.c.Version = out.Version
			return out.Version, nil
		},
		clone: func(v credVersion) credVersion {
			v.c.Secrets = v.c.Secrets.Clone()
			v.c.Metadata = cloneMap(v.c.Metadata)
			v.c.Scopes = slices.Clone(v.c.Scopes)
			return v
		},
	}
}

// writeCred writes c as a new version with check-and-set cas (0: a new
// credential) and projects it over old, the custom_metadata read with
// version cas. A new credential is projected first, so that no version of
// it exists without its description; its data write then creates version 1.
// was is the size of the version cas, for the tenant's usage. Before its
// data it marks the credential in the monitor's summary (summary.go).
func (k *session) writeCred(ctx context.Context, c *credgate.Credential, info credInfo, cas int, old map[string]any, was int64) (*credgate.Credential, error) {
	defer k.s.services.forget(k.tenant, c.IntegrationID)
	info.ChangeID = credgate.ChangeFrom(ctx)
	info.Credential = *c
	info.Secrets, info.Version, info.LastAccessedAt, info.Refresh = nil, 0, nil, nil
	info.RotationDueAt, info.Rotation = nil, nil // derived when read
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
	size := sizeOf(data)
	usage := credgate.TenantUsage{Bytes: size - was}
	switch {
	case cas == 0:
		usage = credgate.TenantUsage{} // createCred charged it
	case info.Deleted: // the DELETE's mark: it is written once
		usage = credgate.TenantUsage{Credentials: -1, Bytes: -was}
	}
	mark, err := k.markWrite(ctx, c.IntegrationID, c.ID)
	if err != nil {
		return nil, err
	}
	version, err := k.accounted(ctx, usage, func() (int, error) {
		return k.write(ctx, "credential_write", k.credPath(c.IntegrationID, c.ID), data, cas)
	})
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	delete(k.marked, c.ID) // written: a next write of it marks again
	k.mu.Unlock()
	out := *c
	out.Version = version
	k.derive(&out)
	if cas != 0 || version != 1 {
		if err := k.project(ctx, c.IntegrationID, c.ID, info, version, old); err != nil {
			return &out, err
		}
	}
	// The write is done; until a note that failed is made (by the
	// monitor's look at the credential its summary mark asks for), the
	// inventory mark has readers describe it from its metadata.
	_ = k.note(ctx, c.IntegrationID, c.ID, mark)
	return &out, nil
}

// markWrite marks credential cred of service before a write of it: in the
// tenant's summary (summary.go) and pending in the service's inventory
// (inventory_records.go), and returns the inventory mark. Writers that
// mark at once share one write of each record, so they reach their data
// writes together and all but one lose its check-and-set: an attempt
// made again after that is covered by the marks the first one made,
// which keeps it from queueing behind the marks once more.
func (k *session) markWrite(ctx context.Context, service, cred string) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if mark, ok := k.marked[cred]; ok && k.s.opts.Now().Sub(credgate.MarkTime(mark)) < credgate.MarkGrace/2 {
		return mark, nil
	}
	if err := k.s.markSummary(ctx, k.tenant, credgate.SummaryKey(service, cred)); err != nil {
		return "", err
	}
	mark := credgate.NewMarkStamp(k.s.opts.Now())
	if err := k.markInventory(ctx, service, cred, mark); err != nil {
		return "", err
	}
	if k.marked == nil {
		k.marked = map[string]string{}
	}
	k.marked[cred] = mark
	return mark, nil
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
	// Charged before anything is written, so that a tenant at its limit
	// leaves nothing behind; the size is that of the first version.
	data, err := encode(credData{Secrets: c.Secrets, Info: credInfo{Credential: *c, Change: info.Change, ChangedBy: info.ChangedBy, ServiceIncarnation: info.ServiceIncarnation}})
	if err != nil {
		return nil, err
	}
	refund, err := k.s.charge(ctx, k.tenant, credgate.TenantUsage{Credentials: 1, Bytes: sizeOf(data)})
	if err != nil {
		return nil, err
	}
	created := false
	defer func() {
		if !created {
			refund(ctx)
		}
	}()
	if _, err := k.write(ctx, "credential_index_write", k.credIndexPath(c.ID), map[string]any{"service_id": c.IntegrationID}, 0); err != nil {
		if errors.Is(err, errConflict) {
			return nil, credgate.Errorf(credgate.ECredentialAlreadyExists, "a credential with id %s already exists", c.ID)
		}
		return nil, translate(err, credgate.ECredentialNotFound)
	}
	out, err := k.writeCred(ctx, c, info, 0, nil, 0)
	if err != nil {
		return nil, translate(err, credgate.ECredentialNotFound)
	}
	created = true
	return out, nil
}

// locate returns the caller's session and the service credential cred
// belongs to. Errors: CREDENTIAL_NOT_FOUND, or the caller's.
func (s *Store) locate(ctx context.Context, cred string) (*session, string, error) {
	k, err := s.session(ctx)
	if err != nil {
		return nil, "", err
	}
	svc, err := k.serviceOf(ctx, cred)
	return k, svc, err
}

// LocateCredential returns the service credential cred belongs to, so
// that the caller's access to it can be checked first.
// Errors: CREDENTIAL_NOT_FOUND, INSUFFICIENT_PERMISSIONS, BACKEND_UNAVAILABLE.
func (s *Store) LocateCredential(ctx context.Context, cred string) (string, error) {
	_, svc, err := s.locate(ctx, cred)
	return svc, err
}

// serviceOf reads the index entry of cred. The index is keyed by
// credential id, so a token can only reach all of it or none: a caller
// whose token has no index read (its access is grants on named
// integrations: policy.RenderGrant never grants it) has it read by the
// system session, and learns only the one service it asked about.
func (k *session) serviceOf(ctx context.Context, cred string) (string, error) {
	reader := k
	if !policy.Allowed(credgate.PrincipalFrom(ctx).Roles, policy.CredentialsMetaRead) {
		sys, err := k.s.systemSession(ctx, k.tenant)
		if err != nil {
			return "", err
		}
		reader = sys
	}
	var idx pointer
	if _, err := reader.read(ctx, "credential_index_read", k.credIndexPath(cred), &idx); err != nil {
		return "", translate(err, credgate.ECredentialNotFound)
	}
	if !credgate.ValidID(idx.ServiceID) {
		return "", translate(errNotFound, credgate.ECredentialNotFound)
	}
	return idx.ServiceID, nil
}

// UpdateCredential applies fn to the current credential cred, with its
// secret values, and writes the result as a new version through the one
// read-modify-write (update): no update is lost, ifMatch > 0 must be the
// credential's version unless the change is in it already, and a change
// that changes nothing writes nothing. The result is validated before it
// is written; what changed (updated or rotated) is worked out from the
// values.
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
	out, _, err := update(ctx, k.credRecord(svc, cred, false), ifMatch, func(v *credVersion) error {
		old := v.c
		if err := fn(&v.c); err != nil {
			return err
		}
		v.c.ID, v.c.IntegrationID, v.c.CreatedAt, v.c.CreatedBy = old.ID, old.IntegrationID, old.CreatedAt, old.CreatedBy
		v.c.Version, v.c.LastAccessedAt, v.c.ReadAt = old.Version, old.LastAccessedAt, old.ReadAt
		if err := v.c.CheckSuccessor(&old, k.s.opts.Now()); err != nil {
			return err
		}
		return v.c.Validate()
	})
	if err != nil {
		return nil, missing(svc, false, err)
	}
	return &out.c, nil
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
	_, _, err = update(ctx, k.credRecord(svc, cred, true), ifMatch, func(v *credVersion) error {
		if v.info.Deleted {
			// A DELETE began already: repeating it (with the version it
			// named, or the mark's) finishes it.
			if ifMatch > 0 && ifMatch != v.info.DeleteOf && ifMatch != v.c.Version {
				return credgate.CheckVersion(v.info.DeleteOf, ifMatch)
			}
			return errUnchanged
		}
		v.c.Secrets = credgate.Secrets{}
		v.info.Deleted, v.info.DeleteOf, v.info.Change = true, v.c.Version, "deleted"
		return nil
	})
	if errors.Is(err, errNotFound) {
		// The index is left, but no live credential of the live service
		// is behind it: an earlier DELETE of it (or its creation) stopped
		// half-way, and repeating it finishes it; unless its values are
		// there and an earlier service's, which are not this one's to
		// delete.
		if _, serr := k.readService(ctx, svc); serr != nil {
			return "", missing(svc, false, serr)
		}
		switch _, _, derr := k.readCredData(ctx, svc, cred, 0); {
		case derr == nil:
			return "", missing(svc, false, errNotFound)
		case !errors.Is(derr, errNotFound):
			return "", missing(svc, false, derr)
		}
	} else if err != nil {
		return "", missing(svc, false, err)
	}
	if err := k.removeCred(ctx, svc, cred, true); err != nil {
		return svc, translate(err, credgate.ECredentialNotFound)
	}
	_ = k.note(ctx, svc, cred, "") // else the monitor's daily rebuild removes its entry
	return svc, nil
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
		{"rotation_delete", rotationPath(k.tenant, service, cred)},
		{"rotation_lease_delete", rotationLeasePath(k.tenant, cred)},
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
	if err := k.removeInventory(ctx, service); err != nil {
		return err
	}
	ids, err := k.list(ctx, "credential_list", k.credFolder(service))
	if err != nil {
		return err
	}
	for _, id := range ids {
		// What a credential keeps is given back when it is removed here,
		// unless its own DELETE's mark gave it back already.
		var kept credgate.TenantUsage
		switch d, _, err := k.readCredData(ctx, service, id, 0); {
		case err == nil && !d.Info.Deleted:
			if data, err := encode(d); err == nil {
				kept = credgate.TenantUsage{Credentials: 1, Bytes: sizeOf(data)}
			}
		case err != nil && !errors.Is(err, errNotFound):
			return err
		}
		if err := k.removeCred(ctx, service, id, false); err != nil {
			return err
		}
		k.s.settle(ctx, k.tenant, kept.Neg())
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
		return nil, missing(svc, false, err)
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

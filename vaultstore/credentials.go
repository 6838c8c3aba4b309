package vaultstore

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
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

// A credential is kept at tenants/<t>/credentials/<service>/<credential>:
//
//   - its KV data holds {"secrets": {...}, "info": {...}}: the secret values
//     and the descriptive fields, written together with check-and-set, so
//     the data version is the one truth and the lock of every change;
//   - its KV custom_metadata holds a projection of "info" (readable by a
//     viewer, whose policy has no read on the data), the version that
//     projection describes, a note per recent version saying what changed,
//     and lastAccessedAt.
//
// custom_metadata takes at most 64 keys of at most 512 bytes, so "info" is
// stored as base64url chunks.
const (
	infoChunkSize  = 500
	maxInfoChunks  = 36
	versionNotes   = 10 // the newest versions that keep a change note
	metaProjected  = "projected"
	metaInfoCount  = "info.n"
	metaLastAccess = "lastAccessedAt"
)

func credPath(tenant, service, cred string) string {
	return policy.TenantPrefix(tenant) + policy.FolderCredentials + "/" + service + "/" + cred
}

func credIndexPath(tenant, cred string) string {
	return policy.TenantPrefix(tenant) + policy.FolderCredIndex + "/" + cred
}

func credLockPath(tenant, cred string) string {
	return policy.TenantPrefix(tenant) + policy.FolderCredLocks + "/" + cred
}

// credInfo is the descriptive part of a credential as stored.
type credInfo struct {
	credgate.Credential
	Change    string `json:"change"`
	ChangedBy string `json:"changedBy"`
}

type credData struct {
	Secrets map[string]string `json:"secrets"`
	Info    credInfo          `json:"info"`
}

// NewCredentialID returns cred-<uuid v4>.
func NewCredentialID() string { return "cred-" + uuid.NewString() }

// errTooLarge is returned when the descriptive fields do not fit.
var errTooLarge = &credgate.Error{
	Code:    credgate.EValidationFailed,
	Message: "the credential's descriptive fields are too large together (about 12 KB at most)",
	Details: map[string]any{"fields": map[string]string{"description, metadata, scopes": "too large together"}},
}

// projection renders info for custom_metadata. old is the current
// custom_metadata: chunks and notes no longer wanted are removed (nil).
func projection(info credInfo, version int, old map[string]any) (map[string]any, error) {
	b, err := json.Marshal(info)
	if err != nil {
		return nil, err
	}
	enc := base64.RawURLEncoding.EncodeToString(b)
	n := (len(enc) + infoChunkSize - 1) / infoChunkSize
	if n > maxInfoChunks {
		return nil, errTooLarge
	}
	m := map[string]any{
		"integrationId":              info.IntegrationID,
		"credentialName":             truncate(info.CredentialName, 200),
		"authType":                   info.AuthType,
		"status":                     info.Status,
		metaProjected:                strconv.Itoa(version),
		metaInfoCount:                strconv.Itoa(n),
		"v." + strconv.Itoa(version): info.Change + "|" + truncate(info.ChangedBy, 400),
	}
	for i := range n {
		m["info."+strconv.Itoa(i)] = enc[i*infoChunkSize : min((i+1)*infoChunkSize, len(enc))]
	}
	for k := range old {
		if rest, ok := strings.CutPrefix(k, "info."); ok {
			if i, err := strconv.Atoi(rest); err == nil && i >= n {
				m[k] = nil
			}
		}
		if rest, ok := strings.CutPrefix(k, "v."); ok {
			if v, err := strconv.Atoi(rest); err == nil && v <= version-versionNotes {
				m[k] = nil
			}
		}
	}
	return m, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8Start(s[n]) {
		n--
	}
	return s[:n]
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

// fromProjection reads a credential's descriptive fields from its
// custom_metadata; ok is false when there is no projection yet.
func fromProjection(meta map[string]any) (*credgate.Credential, bool) {
	n, _ := strconv.Atoi(str(meta[metaInfoCount]))
	version, _ := strconv.Atoi(str(meta[metaProjected]))
	if n == 0 || version == 0 {
		return nil, false
	}
	var enc strings.Builder
	for i := range n {
		enc.WriteString(str(meta["info."+strconv.Itoa(i)]))
	}
	b, err := base64.RawURLEncoding.DecodeString(enc.String())
	if err != nil {
		return nil, false
	}
	var info credInfo
	if json.Unmarshal(b, &info) != nil {
		return nil, false
	}
	c := info.Credential
	c.Version = version
	c.LastAccessedAt = parseTime(str(meta[metaLastAccess]))
	return &c, true
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func parseTime(s string) *time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return nil
	}
	return &t
}

// readCred reads the decrypted credential at version (0: the current one).
func (k *kv) readCred(ctx context.Context, tenant, service, cred string, version int) (*credgate.Credential, error) {
	d, sec, err := k.readCredRaw(ctx, tenant, service, cred, version)
	if err != nil {
		return nil, err
	}
	return credentialOf(d, sec), nil
}

// readCredWithMeta reads the current credential and the custom_metadata
// that came with it.
func (k *kv) readCredWithMeta(ctx context.Context, tenant, service, cred string) (*credgate.Credential, map[string]any, error) {
	d, sec, err := k.readCredRaw(ctx, tenant, service, cred, 0)
	if err != nil {
		return nil, nil, err
	}
	return credentialOf(d, sec), sec.CustomMetadata, nil
}

func credentialOf(d *credData, sec *api.KVSecret) *credgate.Credential {
	c := d.Info.Credential
	c.Secrets = d.Secrets
	if c.Secrets == nil {
		c.Secrets = map[string]string{}
	}
	c.Version = sec.VersionMetadata.Version
	c.LastAccessedAt = parseTime(str(sec.CustomMetadata[metaLastAccess]))
	return &c
}

// readCredRaw reads the stored form of a credential at version (0: the
// current one).
func (k *kv) readCredRaw(ctx context.Context, tenant, service, cred string, version int) (*credData, *api.KVSecret, error) {
	ctx, cancel := context.WithTimeout(ctx, k.s.opts.Timeout)
	defer cancel()
	start := k.s.opts.Now()
	var sec *api.KVSecret
	var err error
	if version > 0 {
		sec, err = k.kv.GetVersion(ctx, credPath(tenant, service, cred), version)
	} else {
		sec, err = k.kv.Get(ctx, credPath(tenant, service, cred))
	}
	k.s.observe("credential_read", start, ignoreNotFound(err))
	if err == nil && (sec == nil || sec.Data == nil || sec.VersionMetadata == nil || sec.VersionMetadata.Destroyed) {
		err = errNotFound
	}
	if err != nil {
		return nil, nil, err
	}
	var d credData
	if err := fromData(sec.Data, &d); err != nil {
		return nil, nil, err
	}
	return &d, sec, nil
}

func (k *kv) readCredMeta(ctx context.Context, tenant, service, cred string) (*api.KVMetadata, error) {
	ctx, cancel := context.WithTimeout(ctx, k.s.opts.Timeout)
	defer cancel()
	start := k.s.opts.Now()
	m, err := k.kv.GetMetadata(ctx, credPath(tenant, service, cred))
	k.s.observe("credential_metadata_read", start, ignoreNotFound(err))
	if err == nil && (m == nil || m.CurrentVersion == 0) {
		err = errNotFound
	}
	return m, err
}

// project writes the projection of info (just written at version) over
// old, the custom_metadata the writer read with the data it changed. Then it
// checks for a newer version: if that version's own writer has not
// projected it yet, or our patch overwrote its projection, it projects the
// newest version. Every writer checks after its own patch, so the last one
// leaves the projection current.
func (k *kv) project(ctx context.Context, tenant, service, cred string, info credInfo, version int, old map[string]any) error {
	for range 3 {
		m, err := projection(info, version, old)
		if err != nil {
			return err
		}
		pctx, cancel := context.WithTimeout(ctx, k.s.opts.Timeout)
		start := k.s.opts.Now()
		err = k.kv.PatchMetadata(pctx, credPath(tenant, service, cred), api.KVMetadataPatchInput{CustomMetadata: m})
		cancel()
		k.s.observe("credential_project", start, err)
		if err != nil {
			return err
		}
		meta, err := k.readCredMeta(ctx, tenant, service, cred)
		if err != nil {
			return err
		}
		if p, _ := strconv.Atoi(str(meta.CustomMetadata[metaProjected])); p >= meta.CurrentVersion {
			return nil
		}
		d, sec, err := k.readCredRaw(ctx, tenant, service, cred, 0)
		if err != nil {
			return err
		}
		info, version, old = d.Info, sec.VersionMetadata.Version, meta.CustomMetadata
	}
	return nil
}

// writeCred writes c as a new version with check-and-set cas and projects
// it over old, the custom_metadata read with version cas. change says what
// changed.
func (k *kv) writeCred(ctx context.Context, tenant string, c *credgate.Credential, change string, cas int, old map[string]any) (*credgate.Credential, error) {
	info := credInfo{Credential: *c, Change: change, ChangedBy: credgate.PrincipalFrom(ctx).Subject}
	info.Secrets, info.Version, info.LastAccessedAt = nil, 0, nil
	if _, err := projection(info, cas+1, nil); err != nil {
		return nil, err // too large: refuse before writing anything
	}
	secrets := c.Secrets
	if secrets == nil {
		secrets = map[string]string{}
	}
	data, err := toData(credData{Secrets: secrets, Info: info})
	if err != nil {
		return nil, err
	}
	version, err := k.put(ctx, "credential_write", credPath(tenant, c.IntegrationID, c.ID), data, cas)
	if err != nil {
		return nil, err
	}
	out := *c
	out.Version = version
	if err := k.project(ctx, tenant, c.IntegrationID, c.ID, info, version, old); err != nil {
		return &out, err
	}
	return &out, nil
}

// serviceOf finds the service a credential id belongs to.
func (k *kv) serviceOf(ctx context.Context, tenant, cred string) (string, error) {
	sec, err := k.get(ctx, "credential_index_read", credIndexPath(tenant, cred))
	if err != nil {
		return "", err
	}
	svc := str(sec.Data["service_id"])
	if !credgate.ValidID(svc) {
		return "", errNotFound
	}
	return svc, nil
}

// CreateCredential stores c, new, for its service (c.IntegrationID) in the
// caller's tenant. A new id is made when c.ID is empty.
// Errors: SERVICE_NOT_FOUND, VALIDATION_FAILED (too large),
// INSUFFICIENT_PERMISSIONS, BACKEND_UNAVAILABLE.
func (s *Store) CreateCredential(ctx context.Context, c *credgate.Credential) (*credgate.Credential, error) {
	k, err := s.kvFor(ctx)
	if err != nil {
		return nil, err
	}
	tenant := tenantOf(ctx)
	if _, err := k.readService(ctx, tenant, c.IntegrationID); err != nil {
		return nil, translate(err, credgate.EServiceNotFound, false)
	}
	if c.ID == "" {
		c.ID = NewCredentialID()
	}
	now := s.opts.Now().UTC().Truncate(time.Second)
	c.CreatedAt, c.UpdatedAt = now, now
	c.CreatedBy = credgate.PrincipalFrom(ctx).Actor()
	if _, err := k.put(ctx, "credential_index_write", credIndexPath(tenant, c.ID), map[string]any{"service_id": c.IntegrationID}, 0); err != nil {
		if errors.Is(err, errConflict) {
			return nil, credgate.Errorf(credgate.EValidationFailed, "credential id %q is taken", c.ID)
		}
		return nil, translate(err, credgate.ECredentialNotFound, true)
	}
	out, err := k.writeCred(ctx, tenant, c, credgate.ChangeCreated, 0, nil)
	if err != nil && out == nil {
		_ = k.destroy(ctx, "credential_index_delete", credIndexPath(tenant, c.ID))
		return nil, translate(err, credgate.ECredentialNotFound, true)
	}
	return out, translate(err, credgate.ECredentialNotFound, false)
}

// GetCredential returns a credential of service with its secret values: the
// one named cred (at version, when > 0), or without cred the newest active
// one (the newest expired one when none is active). Revoked and inactive
// credentials are never served. Errors: CREDENTIAL_NOT_FOUND,
// INSUFFICIENT_PERMISSIONS, BACKEND_UNAVAILABLE.
func (s *Store) GetCredential(ctx context.Context, service, cred string, version int) (*credgate.Credential, error) {
	k, err := s.kvFor(ctx)
	if err != nil {
		return nil, err
	}
	tenant := tenantOf(ctx)
	if cred == "" {
		list, err := k.listCreds(ctx, tenant, service)
		if err != nil {
			return nil, translate(err, credgate.ECredentialNotFound, false)
		}
		cred = credgate.PickServable(list, s.opts.Now())
		if cred == "" {
			return nil, credgate.Errorf(credgate.ECredentialNotFound, "the service has no active credential")
		}
	}
	c, err := k.readCred(ctx, tenant, service, cred, version)
	if err != nil {
		return nil, translate(err, credgate.ECredentialNotFound, false)
	}
	if st := c.EffectiveStatus(s.opts.Now()); st == credgate.CredRevoked || st == credgate.CredInactive {
		return nil, &credgate.Error{
			Code:    credgate.ECredentialNotFound,
			Message: "the credential is " + st + "; its values are not served",
			Details: map[string]any{"status": st},
		}
	}
	return c, nil
}

// listCreds returns the descriptions of service's credentials, newest
// first. A credential whose first write has no projection yet is left out.
func (k *kv) listCreds(ctx context.Context, tenant, service string) ([]*credgate.Credential, error) {
	ids, err := k.list(ctx, "credential_list", policy.TenantPrefix(tenant)+policy.FolderCredentials+"/"+service+"/")
	if err != nil {
		var re *api.ResponseError
		if errors.As(err, &re) && re.StatusCode == 404 {
			return nil, nil
		}
		return nil, err
	}
	out := make([]*credgate.Credential, len(ids))
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i, id := range ids {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			meta, err := k.readCredMeta(ctx, tenant, service, id)
			if err != nil {
				errs[i] = ignoreNotFound(err)
				return
			}
			if c, ok := fromProjection(meta.CustomMetadata); ok {
				c.ID = id
				out[i] = c
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	list := out[:0]
	for _, c := range out {
		if c != nil {
			list = append(list, c)
		}
	}
	sort.SliceStable(list, func(i, j int) bool { return list[i].CreatedAt.After(list[j].CreatedAt) })
	return list, nil
}

// ListCredentials describes service's credentials, newest first, without
// secret values. Errors: SERVICE_NOT_FOUND, INSUFFICIENT_PERMISSIONS,
// BACKEND_UNAVAILABLE.
func (s *Store) ListCredentials(ctx context.Context, service string) ([]*credgate.Credential, error) {
	k, err := s.kvFor(ctx)
	if err != nil {
		return nil, err
	}
	tenant := tenantOf(ctx)
	if _, err := k.readService(ctx, tenant, service); err != nil {
		return nil, translate(err, credgate.EServiceNotFound, false)
	}
	list, err := k.listCreds(ctx, tenant, service)
	if err != nil {
		return nil, translate(err, credgate.ECredentialNotFound, false)
	}
	if list == nil {
		list = []*credgate.Credential{}
	}
	return list, nil
}

// locate returns the caller's view of Vault, their tenant and the service
// credential cred belongs to. Errors: CREDENTIAL_NOT_FOUND, or the caller's.
func (s *Store) locate(ctx context.Context, cred string) (*kv, string, string, error) {
	k, err := s.kvFor(ctx)
	if err != nil {
		return nil, "", "", err
	}
	tenant := tenantOf(ctx)
	svc, err := k.serviceOf(ctx, tenant, cred)
	if err != nil {
		return nil, "", "", translate(err, credgate.ECredentialNotFound, false)
	}
	return k, tenant, svc, nil
}

// UpdateCredential applies fn to the current credential cred, with its
// secret values, and writes the result as a new version with check-and-set,
// retrying on a concurrent write so no update is lost. fn returns what it
// changed (credgate.ChangeUpdated or ChangeRotated) or an error to abort.
// Errors: CREDENTIAL_NOT_FOUND, VERSION_CONFLICT, VALIDATION_FAILED,
// INSUFFICIENT_PERMISSIONS, BACKEND_UNAVAILABLE, or fn's.
func (s *Store) UpdateCredential(ctx context.Context, cred string, fn func(*credgate.Credential) (string, error)) (*credgate.Credential, error) {
	k, tenant, svc, err := s.locate(ctx, cred)
	if err != nil {
		return nil, err
	}
	return k.updateCred(ctx, tenant, svc, cred, fn)
}

func (k *kv) updateCred(ctx context.Context, tenant, svc, cred string, fn func(*credgate.Credential) (string, error)) (*credgate.Credential, error) {
	for attempt := range maxCASRetries {
		if err := casBackoff(ctx, attempt); err != nil {
			return nil, err
		}
		old, oldMeta, err := k.readCredWithMeta(ctx, tenant, svc, cred)
		if err != nil {
			return nil, translate(err, credgate.ECredentialNotFound, false)
		}
		next := *old
		next.Secrets = cloneStrings(old.Secrets)
		next.Metadata = cloneMap(old.Metadata)
		change, err := fn(&next)
		if err != nil {
			return nil, err
		}
		next.ID, next.IntegrationID, next.CreatedAt, next.CreatedBy = old.ID, old.IntegrationID, old.CreatedAt, old.CreatedBy
		now := k.s.opts.Now().UTC().Truncate(time.Second)
		next.UpdatedAt = now
		if change == credgate.ChangeRotated {
			next.LastRotatedAt = &now
		}
		out, err := k.writeCred(ctx, tenant, &next, change, old.Version, oldMeta)
		if errors.Is(err, errConflict) {
			continue
		}
		if err != nil {
			return out, translate(err, credgate.ECredentialNotFound, true)
		}
		out.LastAccessedAt = old.LastAccessedAt
		return out, nil
	}
	return nil, credgate.Errorf(credgate.EVersionConflict, "the credential is being changed by other requests; retry")
}

func cloneStrings(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// DeleteCredential removes credential cred, all its versions and its index
// entry. Errors: CREDENTIAL_NOT_FOUND, INSUFFICIENT_PERMISSIONS,
// BACKEND_UNAVAILABLE.
func (s *Store) DeleteCredential(ctx context.Context, cred string) error {
	k, tenant, svc, err := s.locate(ctx, cred)
	if err != nil {
		return err
	}
	if _, err := k.readCredMeta(ctx, tenant, svc, cred); err != nil {
		return translate(err, credgate.ECredentialNotFound, false)
	}
	if err := k.destroy(ctx, "credential_delete", credPath(tenant, svc, cred)); err != nil {
		return translate(err, credgate.ECredentialNotFound, false)
	}
	_ = k.destroy(ctx, "credential_lock_delete", credLockPath(tenant, cred))
	return translate(k.destroy(ctx, "credential_index_delete", credIndexPath(tenant, cred)), credgate.ECredentialNotFound, false)
}

// CredentialVersions returns the history of cred, oldest first, without
// any secret value. Errors: CREDENTIAL_NOT_FOUND, INSUFFICIENT_PERMISSIONS,
// BACKEND_UNAVAILABLE.
func (s *Store) CredentialVersions(ctx context.Context, cred string) ([]credgate.CredentialVersion, error) {
	k, tenant, svc, err := s.locate(ctx, cred)
	if err != nil {
		return nil, err
	}
	meta, err := k.readCredMeta(ctx, tenant, svc, cred)
	if err != nil {
		return nil, translate(err, credgate.ECredentialNotFound, false)
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

// Rotation lock. A rotation that calls a token endpoint must happen once per
// refresh token across all replicas, so it is serialized by a record in
// Vault written with check-and-set: the record's KV version is the lock.
type lockRecord struct {
	Holder string    `json:"holder"`
	Until  time.Time `json:"until"`
}

// Lock timing: a holder that dies frees the lock after lockLease.
const (
	lockLease = 30 * time.Second
	lockWait  = 20 * time.Second
)

func (k *kv) lock(ctx context.Context, tenant, cred string) (release func(), err error) {
	path := credLockPath(tenant, cred)
	holder := uuid.NewString()
	deadline := k.s.opts.Now().Add(lockWait)
	for {
		cas := 0
		sec, err := k.get(ctx, "credential_lock_read", path)
		switch {
		case err == nil:
			var l lockRecord
			if fromData(sec.Data, &l) == nil && l.Holder != "" && k.s.opts.Now().Before(l.Until) {
				cas = -1 // held
			} else {
				cas = sec.VersionMetadata.Version
			}
		case ignoreNotFound(err) != nil:
			return nil, translate(err, credgate.ECredentialNotFound, false)
		}
		if cas >= 0 {
			data, _ := toData(lockRecord{Holder: holder, Until: k.s.opts.Now().Add(lockLease)})
			v, err := k.put(ctx, "credential_lock", path, data, cas)
			if err == nil {
				return func() {
					free, _ := toData(lockRecord{})
					_, _ = k.put(context.WithoutCancel(ctx), "credential_unlock", path, free, v)
				}, nil
			}
			if !errors.Is(err, errConflict) {
				return nil, translate(err, credgate.ECredentialNotFound, true)
			}
		}
		if k.s.opts.Now().After(deadline) {
			return nil, credgate.Errorf(credgate.EVersionConflict, "the credential is being rotated by another request; retry")
		}
		select {
		case <-ctx.Done():
			return nil, unavailable(ctx.Err())
		case <-time.After(time.Duration(20+rand.IntN(40)) * time.Millisecond):
		}
	}
}

// RotateCredential applies fn, which sets new secret values, to cred while
// holding its rotation lock, so concurrent rotations take turns instead of
// racing on check-and-set; each one becomes its own version. Errors:
// CREDENTIAL_NOT_FOUND, VERSION_CONFLICT (lock not had in time),
// INSUFFICIENT_PERMISSIONS, BACKEND_UNAVAILABLE, or fn's.
func (s *Store) RotateCredential(ctx context.Context, cred string, fn func(*credgate.Credential) error) (*credgate.Credential, error) {
	k, tenant, svc, err := s.locate(ctx, cred)
	if err != nil {
		return nil, err
	}
	release, err := k.lock(ctx, tenant, cred)
	if err != nil {
		return nil, err
	}
	defer release()
	return k.updateCred(ctx, tenant, svc, cred, func(c *credgate.Credential) (string, error) {
		return credgate.ChangeRotated, fn(c)
	})
}

// RefreshCredential rotates cred through grant while holding its rotation
// lock, so the token endpoint is called once per refresh token however many
// replicas rotate at once, and stores the result as one new version. When
// grant fails nothing is written. Errors: CREDENTIAL_NOT_FOUND,
// VALIDATION_FAILED (not refreshable), VERSION_CONFLICT (lock not had in
// time), INSUFFICIENT_PERMISSIONS, BACKEND_UNAVAILABLE, or grant's.
func (s *Store) RefreshCredential(ctx context.Context, cred string, grant credgate.RefreshGrant) (*credgate.Credential, error) {
	var got map[string]string
	var expiry *time.Time
	return s.RotateCredential(ctx, cred, func(c *credgate.Credential) error {
		if got == nil { // the grant happens once; a CAS retry re-applies it
			if !c.CanRefresh() {
				return credgate.Errorf(credgate.EValidationFailed, "the credential has no refresh token and token endpoint to rotate with")
			}
			var err error
			if got, expiry, err = grant(ctx, c); err != nil {
				return err
			}
		}
		for f, v := range got {
			c.Secrets[f] = v
		}
		c.ExpiresAt = expiry
		return nil
	})
}

// RandomSecret returns 32 random bytes from Vault (sys/tools/random),
// base64url encoded. Errors: BACKEND_UNAVAILABLE.
func (s *Store) RandomSecret(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	start := s.opts.Now()
	sec, err := s.own(ctx).Logical().WriteWithContext(ctx, "sys/tools/random/32", map[string]any{"format": "base64"})
	s.observe("random", start, err)
	if err != nil {
		return "", translate(err, credgate.EInternal, false)
	}
	raw, err := base64.StdEncoding.DecodeString(str(sec.Data["random_bytes"]))
	if err != nil || len(raw) != 32 {
		return "", &credgate.Error{Code: credgate.EInternal, Message: "internal error", Err: fmt.Errorf("vault random: %v", err)}
	}
	return base64.RawURLEncoding.EncodeToString(raw), nil
}

package vaultstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/policy"
)

// maxCASRetries bounds the read-modify-write loop of Update; past it the
// caller gets VERSION_CONFLICT rather than waiting forever on a hot record.
const maxCASRetries = 8

func servicePath(tenant, id string) string {
	return policy.TenantPrefix(tenant) + policy.FolderServices + "/" + id
}

func serviceNamePath(tenant, name string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(name)))
	return policy.TenantPrefix(tenant) + policy.FolderServiceNames + "/" + hex.EncodeToString(sum[:])
}

// record is the stored form of a service: the Service without its version
// (Vault keeps that) plus a tombstone flag.
type record struct {
	credgate.Service
	Deleted bool `json:"deleted,omitempty"`
}

func toData(v any) (map[string]any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	return m, json.Unmarshal(b, &m)
}

func fromData(m map[string]any, v any) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// kv is a KV v2 view bound to one caller's token and one request.
type kv struct {
	s  *Store
	c  *api.Client
	kv *api.KVv2
}

func (s *Store) kvFor(ctx context.Context) (*kv, error) {
	c, err := s.caller(ctx)
	if err != nil {
		return nil, err
	}
	return &kv{s: s, c: c, kv: c.KVv2(s.opts.Mount)}, nil
}

func (k *kv) get(ctx context.Context, op, path string) (*api.KVSecret, error) {
	ctx, cancel := context.WithTimeout(ctx, k.s.opts.Timeout)
	defer cancel()
	start := k.s.opts.Now()
	sec, err := k.kv.Get(ctx, path)
	k.s.observe(op, start, ignoreNotFound(err))
	if err == nil && (sec == nil || sec.Data == nil || sec.VersionMetadata == nil) {
		err = errNotFound
	}
	return sec, err
}

// put writes data with check-and-set version cas (0: the path must be new).
func (k *kv) put(ctx context.Context, op, path string, data map[string]any, cas int) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, k.s.opts.Timeout)
	defer cancel()
	start := k.s.opts.Now()
	sec, err := k.kv.Put(ctx, path, data, api.WithCheckAndSet(cas))
	if err != nil && isCASMismatch(err) {
		err = errConflict
	}
	k.s.observe(op, start, ignoreConflict(err))
	if err != nil {
		return 0, err
	}
	return sec.VersionMetadata.Version, nil
}

func (k *kv) destroy(ctx context.Context, op, path string) error {
	ctx, cancel := context.WithTimeout(ctx, k.s.opts.Timeout)
	defer cancel()
	start := k.s.opts.Now()
	err := k.kv.DeleteMetadata(ctx, path)
	k.s.observe(op, start, err)
	return err
}

func (k *kv) list(ctx context.Context, op, folder string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, k.s.opts.Timeout)
	defer cancel()
	start := k.s.opts.Now()
	sec, err := k.c.Logical().ListWithContext(ctx, k.s.opts.Mount+"/metadata/"+folder)
	k.s.observe(op, start, err)
	if err != nil {
		return nil, err
	}
	if sec == nil || sec.Data == nil {
		return nil, nil
	}
	raw, _ := sec.Data["keys"].([]any)
	keys := make([]string, 0, len(raw))
	for _, r := range raw {
		if s, ok := r.(string); ok && !strings.HasSuffix(s, "/") {
			keys = append(keys, s)
		}
	}
	sort.Strings(keys)
	return keys, nil
}

func ignoreNotFound(err error) error {
	if errors.Is(err, api.ErrSecretNotFound) || errors.Is(err, errNotFound) {
		return nil
	}
	return err
}

func ignoreConflict(err error) error {
	if errors.Is(err, errConflict) {
		return nil
	}
	return err
}

// readService returns the live service id of tenant, or errNotFound.
func (k *kv) readService(ctx context.Context, tenant, id string) (*credgate.Service, error) {
	sec, err := k.get(ctx, "service_read", servicePath(tenant, id))
	if err != nil {
		return nil, err
	}
	var rec record
	if err := fromData(sec.Data, &rec); err != nil {
		return nil, err
	}
	if rec.Deleted {
		return nil, errNotFound
	}
	svc := rec.Service
	svc.Version = sec.VersionMetadata.Version
	return &svc, nil
}

// GetService returns a service of the caller's tenant.
// Errors: SERVICE_NOT_FOUND, INSUFFICIENT_PERMISSIONS, BACKEND_UNAVAILABLE.
func (s *Store) GetService(ctx context.Context, id string) (*credgate.Service, error) {
	k, err := s.kvFor(ctx)
	if err != nil {
		return nil, err
	}
	svc, err := k.readService(ctx, tenantOf(ctx), id)
	return svc, translate(err, credgate.EServiceNotFound, false)
}

func tenantOf(ctx context.Context) string {
	return credgate.PrincipalFrom(ctx).Tenant
}

// ListServices returns one page of the caller's tenant's services in id
// order. Errors: INSUFFICIENT_PERMISSIONS, BACKEND_UNAVAILABLE.
func (s *Store) ListServices(ctx context.Context, f credgate.ServiceFilter) (*credgate.ServicePage, error) {
	k, err := s.kvFor(ctx)
	if err != nil {
		return nil, err
	}
	tenant := tenantOf(ctx)
	ids, err := k.list(ctx, "service_list", policy.TenantPrefix(tenant)+policy.FolderServices+"/")
	if err != nil {
		var re *api.ResponseError
		if errors.As(err, &re) && re.StatusCode == 404 {
			return &credgate.ServicePage{Services: []*credgate.Service{}}, nil
		}
		return nil, translate(err, credgate.ENotFound, false)
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
		got := make([]*credgate.Service, len(chunk))
		errs := make([]error, len(chunk))
		var wg sync.WaitGroup
		for i, id := range chunk {
			wg.Go(func() { got[i], errs[i] = k.readService(ctx, tenant, id) })
		}
		wg.Wait()
		for i, svc := range got {
			if errs[i] != nil {
				if ignoreNotFound(errs[i]) == nil {
					continue // deleted while we listed
				}
				return nil, translate(errs[i], credgate.EServiceNotFound, false)
			}
			if (f.Type != "" && svc.Type != f.Type) || (f.Status != "" && svc.Status != f.Status) {
				continue
			}
			page.Services = append(page.Services, svc)
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

// CreateService stores svc, new, in the caller's tenant. Its id must be set.
// Errors: SERVICE_ALREADY_EXISTS (same id, or same name ignoring case),
// INSUFFICIENT_PERMISSIONS, BACKEND_UNAVAILABLE.
func (s *Store) CreateService(ctx context.Context, svc *credgate.Service) (*credgate.Service, error) {
	k, err := s.kvFor(ctx)
	if err != nil {
		return nil, err
	}
	tenant := tenantOf(ctx)
	if _, err := k.readService(ctx, tenant, svc.ID); err == nil {
		return nil, credgate.Errorf(credgate.EServiceAlreadyExists, "a service with id %q already exists", svc.ID)
	} else if ignoreNotFound(err) != nil {
		return nil, translate(err, credgate.EServiceNotFound, false)
	}
	if err := k.claimName(ctx, tenant, svc.Name, svc.ID); err != nil {
		return nil, err
	}
	now := s.opts.Now().UTC().Truncate(time.Second)
	svc.TenantID, svc.CreatedAt, svc.UpdatedAt = tenant, now, now
	version, err := k.writeNew(ctx, tenant, svc)
	if err != nil {
		k.releaseName(ctx, tenant, svc.Name, svc.ID)
		if errors.Is(err, errConflict) {
			return nil, credgate.Errorf(credgate.EServiceAlreadyExists, "a service with id %q already exists", svc.ID)
		}
		return nil, translate(err, credgate.EServiceNotFound, true)
	}
	svc.Version = version
	return svc, nil
}

// writeNew writes a service that must not exist yet, replacing a tombstone
// left by a delete that did not finish.
func (k *kv) writeNew(ctx context.Context, tenant string, svc *credgate.Service) (int, error) {
	data, err := toData(record{Service: *svc})
	if err != nil {
		return 0, err
	}
	cas := 0
	if sec, err := k.get(ctx, "service_read", servicePath(tenant, svc.ID)); err == nil {
		var rec record
		if fromData(sec.Data, &rec) == nil && rec.Deleted {
			cas = sec.VersionMetadata.Version
		}
	}
	return k.put(ctx, "service_write", servicePath(tenant, svc.ID), data, cas)
}

// claimName reserves name (ignoring case) for service id in tenant. A claim
// left behind by a service that no longer has that name is taken over.
// Errors: SERVICE_ALREADY_EXISTS, or a translated Vault error.
func (k *kv) claimName(ctx context.Context, tenant, name, id string) error {
	path := serviceNamePath(tenant, name)
	data := map[string]any{"service_id": id}
	for range maxCASRetries {
		_, err := k.put(ctx, "service_name_claim", path, data, 0)
		if err == nil {
			return nil
		}
		if !errors.Is(err, errConflict) {
			return translate(err, credgate.EServiceNotFound, true)
		}
		sec, err := k.get(ctx, "service_name_read", path)
		if ignoreNotFound(err) != nil {
			return translate(err, credgate.EServiceNotFound, false)
		}
		if err != nil {
			continue // released meanwhile: try the fresh claim again
		}
		owner, _ := sec.Data["service_id"].(string)
		if owner == id {
			return nil
		}
		other, err := k.readService(ctx, tenant, owner)
		if err == nil && strings.EqualFold(other.Name, name) {
			return credgate.Errorf(credgate.EServiceAlreadyExists, "a service named %q already exists", name)
		}
		if ignoreNotFound(err) != nil {
			return translate(err, credgate.EServiceNotFound, false)
		}
		// Stale claim: its service is gone or renamed. Take it over.
		if _, err := k.put(ctx, "service_name_claim", path, data, sec.VersionMetadata.Version); err == nil {
			return nil
		} else if !errors.Is(err, errConflict) {
			return translate(err, credgate.EServiceNotFound, true)
		}
	}
	return credgate.Errorf(credgate.EVersionConflict, "the service name is being changed by another request")
}

// releaseName drops the claim on name if service id holds it. It is best
// effort: a claim left behind is taken over by the next claimant.
func (k *kv) releaseName(ctx context.Context, tenant, name, id string) {
	path := serviceNamePath(tenant, name)
	sec, err := k.get(ctx, "service_name_read", path)
	if err != nil {
		return
	}
	if owner, _ := sec.Data["service_id"].(string); owner == id {
		_ = k.destroy(ctx, "service_name_release", path)
	}
}

// UpdateService applies fn to the current service id of the caller's tenant
// and writes the result with check-and-set, retrying on a concurrent write so
// no update is lost. fn may return an error (such as VERSION_CONFLICT for a
// stale If-Match) to abort; it must not change ID, TenantID or CreatedAt.
// Errors: SERVICE_NOT_FOUND, SERVICE_ALREADY_EXISTS (the new name is taken),
// VERSION_CONFLICT, INSUFFICIENT_PERMISSIONS, BACKEND_UNAVAILABLE, or fn's.
func (s *Store) UpdateService(ctx context.Context, id string, fn func(*credgate.Service) error) (*credgate.Service, error) {
	k, err := s.kvFor(ctx)
	if err != nil {
		return nil, err
	}
	tenant := tenantOf(ctx)
	for attempt := range maxCASRetries {
		if err := casBackoff(ctx, attempt); err != nil {
			return nil, err
		}
		old, err := k.readService(ctx, tenant, id)
		if err != nil {
			return nil, translate(err, credgate.EServiceNotFound, false)
		}
		next := *old
		next.Metadata = cloneMap(old.Metadata)
		if err := fn(&next); err != nil {
			return nil, err
		}
		next.ID, next.TenantID, next.CreatedAt, next.CreatedBy = old.ID, old.TenantID, old.CreatedAt, old.CreatedBy
		next.UpdatedAt = s.opts.Now().UTC().Truncate(time.Second)
		renamed := !strings.EqualFold(next.Name, old.Name)
		if renamed {
			if err := k.claimName(ctx, tenant, next.Name, id); err != nil {
				return nil, err
			}
		}
		data, err := toData(record{Service: next})
		if err != nil {
			return nil, translate(err, credgate.EServiceNotFound, false)
		}
		version, err := k.put(ctx, "service_write", servicePath(tenant, id), data, old.Version)
		if errors.Is(err, errConflict) {
			if renamed {
				k.releaseName(ctx, tenant, next.Name, id)
			}
			continue
		}
		if err != nil {
			if renamed {
				k.releaseName(ctx, tenant, next.Name, id)
			}
			return nil, translate(err, credgate.EServiceNotFound, true)
		}
		if renamed {
			k.releaseName(ctx, tenant, old.Name, id)
		}
		next.Version = version
		return &next, nil
	}
	return nil, credgate.Errorf(credgate.EVersionConflict, "the service is being changed by other requests; retry")
}

// casBackoff waits before a check-and-set retry: a growing, jittered pause,
// so that writers who lost a round do not all collide again.
func casBackoff(ctx context.Context, attempt int) error {
	if attempt == 0 {
		return nil
	}
	d := time.Duration(attempt*5+rand.IntN(10*attempt)) * time.Millisecond
	select {
	case <-ctx.Done():
		return unavailable(ctx.Err())
	case <-time.After(d):
		return nil
	}
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

// DeleteService removes service id of the caller's tenant, all its versions
// and its credentials. With ifMatch > 0 the service must still be at that
// version; a tombstone written with check-and-set makes that exact.
// Errors: SERVICE_NOT_FOUND, VERSION_CONFLICT, INSUFFICIENT_PERMISSIONS,
// BACKEND_UNAVAILABLE.
func (s *Store) DeleteService(ctx context.Context, id string, ifMatch int) error {
	k, err := s.kvFor(ctx)
	if err != nil {
		return err
	}
	tenant := tenantOf(ctx)
	old, err := k.readService(ctx, tenant, id)
	if err != nil {
		return translate(err, credgate.EServiceNotFound, false)
	}
	if ifMatch > 0 {
		if old.Version != ifMatch {
			return credgate.Errorf(credgate.EVersionConflict, "the service is at version %d, not %d", old.Version, ifMatch)
		}
		tomb, err := toData(record{Service: credgate.Service{ID: id}, Deleted: true})
		if err == nil {
			_, err = k.put(ctx, "service_write", servicePath(tenant, id), tomb, old.Version)
		}
		if err != nil {
			return translate(err, credgate.EServiceNotFound, true)
		}
	}
	if err := k.deleteCredentialsOf(ctx, tenant, id); err != nil {
		return translate(err, credgate.EServiceNotFound, false)
	}
	if err := k.destroy(ctx, "service_delete", servicePath(tenant, id)); err != nil {
		return translate(err, credgate.EServiceNotFound, false)
	}
	k.releaseName(ctx, tenant, old.Name, id)
	return nil
}

// deleteCredentialsOf removes every credential kept under service id.
func (k *kv) deleteCredentialsOf(ctx context.Context, tenant, id string) error {
	folder := policy.TenantPrefix(tenant) + policy.FolderCredentials + "/" + id + "/"
	keys, err := k.list(ctx, "credential_list", folder)
	if err != nil {
		var re *api.ResponseError
		if errors.As(err, &re) && re.StatusCode == 404 {
			return nil
		}
		return err
	}
	for _, key := range keys {
		if err := k.destroy(ctx, "credential_delete", folder+key); err != nil {
			return err
		}
		_ = k.destroy(ctx, "credential_lock_delete", credLockPath(tenant, key))
		if err := k.destroy(ctx, "credential_index_delete", credIndexPath(tenant, key)); err != nil {
			return err
		}
	}
	return nil
}

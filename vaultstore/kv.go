package vaultstore

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/policy"
)

// session is one request's view of the KV v2 mount: bound to the caller's
// Vault token, the request id and the caller's tenant. Every record
// operation goes through it, so every call is timed, bounded by the store's
// timeout and attributed to the caller in Vault's audit log.
type session struct {
	s      *Store
	client *api.Client
	kv2    *api.KVv2
	tenant string
}

// session returns the caller's session. Errors: UNAUTHORIZED without a
// principal, INSUFFICIENT_PERMISSIONS without a role, BACKEND_UNAVAILABLE.
func (s *Store) session(ctx context.Context) (*session, error) {
	c, err := s.caller(ctx)
	if err != nil {
		return nil, err
	}
	return &session{s: s, client: c, kv2: c.KVv2(s.opts.Mount), tenant: credgate.PrincipalFrom(ctx).Tenant}, nil
}

// path returns the logical path of name in folder of the session's tenant.
func (k *session) path(folder, name string) string {
	return policy.TenantPrefix(k.tenant) + folder + "/" + name
}

// call runs one Vault call under the store's timeout and reports it to
// Observe as op. Not-found and check-and-set conflicts are answers, not
// failures, for the metrics.
func (k *session) call(ctx context.Context, op string, f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, k.s.opts.Timeout)
	defer cancel()
	start := k.s.opts.Now()
	err := f(ctx)
	var re *api.ResponseError
	if errors.As(err, &re) && re.StatusCode >= 500 && re.StatusCode != http.StatusBadGateway &&
		re.StatusCode != http.StatusServiceUnavailable && re.StatusCode != http.StatusGatewayTimeout && k.s.healthy(ctx) {
		err = &failedWhileUp{err}
	}
	observed := err
	if errors.Is(err, errNotFound) || errors.Is(err, api.ErrSecretNotFound) || errors.Is(err, errConflict) {
		observed = nil
	}
	k.s.observe(op, start, observed)
	return err
}

// read returns the current version of path; errNotFound when it has none.
func (k *session) read(ctx context.Context, op, path string) (*api.KVSecret, error) {
	return k.readVersion(ctx, op, path, 0)
}

// readVersion returns version of path (0: the current one); errNotFound
// when there is no such live version.
func (k *session) readVersion(ctx context.Context, op, path string, version int) (*api.KVSecret, error) {
	var sec *api.KVSecret
	err := k.call(ctx, op, func(ctx context.Context) (err error) {
		if version > 0 {
			sec, err = k.kv2.GetVersion(ctx, path, version)
		} else {
			sec, err = k.kv2.Get(ctx, path)
		}
		if err == nil && (sec == nil || sec.Data == nil || sec.VersionMetadata == nil || sec.VersionMetadata.Destroyed) {
			err = errNotFound
		}
		return notFoundAs(err)
	})
	return sec, err
}

// write writes data to path with check-and-set cas (0: the path must have no
// version yet) and returns the new version; errConflict when cas is stale.
// Vault answers a stale cas with 400, as it does content it refuses; which
// one it was is read from the path's current version, not from the text.
func (k *session) write(ctx context.Context, op, path string, data map[string]any, cas int) (int, error) {
	var version int
	err := k.call(ctx, op, func(cctx context.Context) error {
		sec, err := k.kv2.Put(cctx, path, data, api.WithCheckAndSet(cas))
		var re *api.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusBadRequest {
			current := 0
			sec, rerr := k.read(ctx, op+"_cas_check", path)
			switch {
			case rerr == nil:
				current = sec.VersionMetadata.Version
			case !errors.Is(rerr, errNotFound):
				return rerr
			}
			if current != cas {
				return errConflict
			}
		}
		if err != nil {
			return err
		}
		version = sec.VersionMetadata.Version
		return nil
	})
	return version, err
}

// readMetadata returns path's KV metadata; errNotFound when the path has no
// version.
func (k *session) readMetadata(ctx context.Context, op, path string) (*api.KVMetadata, error) {
	var m *api.KVMetadata
	err := k.call(ctx, op, func(ctx context.Context) (err error) {
		m, err = k.kv2.GetMetadata(ctx, path)
		if err == nil && (m == nil || m.CurrentVersion == 0) {
			err = errNotFound
		}
		return notFoundAs(err)
	})
	return m, err
}

// patchMetadata merges custom into path's custom_metadata (nil values
// remove keys).
func (k *session) patchMetadata(ctx context.Context, op, path string, custom map[string]any) error {
	return k.call(ctx, op, func(ctx context.Context) error {
		return k.kv2.PatchMetadata(ctx, path, api.KVMetadataPatchInput{CustomMetadata: custom})
	})
}

// putMetadata writes the metadata of a new path, before its first version.
func (k *session) putMetadata(ctx context.Context, op, path string, custom map[string]any) error {
	return k.call(ctx, op, func(ctx context.Context) error {
		return k.kv2.PutMetadata(ctx, path, api.KVMetadataPutInput{CustomMetadata: custom})
	})
}

// destroy removes path with all its versions and metadata. A path that is
// already gone is not an error: removal is the goal.
func (k *session) destroy(ctx context.Context, op, path string) error {
	return k.call(ctx, op, func(ctx context.Context) error {
		err := k.kv2.DeleteMetadata(ctx, path)
		var re *api.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusNotFound {
			return nil
		}
		return err
	})
}

// list returns the record names directly in folder, sorted; none when the
// folder does not exist.
func (k *session) list(ctx context.Context, op, folder string) ([]string, error) {
	var keys []string
	err := k.call(ctx, op, func(ctx context.Context) error {
		sec, err := k.client.Logical().ListWithContext(ctx, k.s.opts.Mount+"/metadata/"+policy.TenantPrefix(k.tenant)+folder)
		var re *api.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusNotFound {
			return nil
		}
		if err != nil || sec == nil || sec.Data == nil {
			return err
		}
		raw, _ := sec.Data["keys"].([]any)
		for _, r := range raw {
			if s, ok := r.(string); ok && !strings.HasSuffix(s, "/") {
				keys = append(keys, s)
			}
		}
		return nil
	})
	sort.Strings(keys)
	return keys, err
}

// notFoundAs turns Vault's "no secret" into errNotFound.
func notFoundAs(err error) error {
	if errors.Is(err, api.ErrSecretNotFound) {
		return errNotFound
	}
	return err
}

// encode turns a record into KV data.
func encode(v any) (map[string]any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	return m, json.Unmarshal(b, &m)
}

// decode turns KV data into a record.
func decode(m map[string]any, v any) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// maxCASRetries bounds read-modify-write loops; past it the caller gets
// VERSION_CONFLICT rather than waiting forever on a hot record.
const maxCASRetries = 8

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

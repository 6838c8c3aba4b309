package vaultstore

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/internal/deadline"
	"github.com/credgate/credgate/policy"
)

// What credgate does in Vault by itself, beside the requests it serves:
// list the tenants, keep the monitor's lease, write the monitor's and the
// readers' bookkeeping into a credential's metadata, and act in a tenant
// through a token minted for credgate.SystemPrincipal. The first three use
// credgate's own token (its policy, policy.Layout.ServicePolicy: list on
// tenants/, its system/ folder, metadata patch); everything a tenant's
// records hold is read and written through the system principal's token,
// so Vault still confines credgate to the tenant and its audit log names it.

// ownKV reads and writes credgate's own records (system/) with credgate's
// own token; a refusal of that token logs it in again (asSelf).
type ownKV struct{ s *Store }

// read decodes path's current version straight into data through the
// store's own HTTP path (session.get and decodeAnswer, as a caller's read):
// the monitor reads every tenant's summary head on every pass.
func (o ownKV) read(ctx context.Context, op, path string, data any) (*kvMeta, error) {
	var meta *kvMeta
	err := o.s.asSelfToken(ctx, func(tok string) error {
		ctx, cancel := deadline.Within(ctx, o.s.opts.Timeout)
		defer cancel()
		start := o.s.opts.Now()
		var buf bytes.Buffer
		k := &session{s: o.s, token: tok, trace: traceOf(ctx)}
		err := k.get(ctx, o.s.layout.Data(path), nil, &buf)
		if err == nil {
			meta, err = decodeAnswer(buf.Bytes(), data)
		}
		if errors.Is(err, errNotFound) {
			o.s.observe(op, start, nil)
			return errNotFound
		}
		o.s.observe(op, start, err)
		return err
	})
	return meta, err
}

func (o ownKV) write(ctx context.Context, op, path string, data any, cas int) (int, error) {
	var version int
	err := o.s.asSelf(ctx, func(c *api.Client) (err error) {
		ctx, cancel := context.WithTimeout(ctx, o.s.opts.Timeout)
		defer cancel()
		start := o.s.opts.Now()
		version, err = putCAS(ctx, c, o.s.layout, path, data, cas)
		if errors.Is(err, errConflict) {
			o.s.observe(op, start, nil)
			return err
		}
		o.s.observe(op, start, err)
		return err
	})
	return version, err
}

// Tenants returns the tenants that have records, sorted. Errors:
// BACKEND_UNAVAILABLE, INTERNAL_ERROR.
func (s *Store) Tenants(ctx context.Context) ([]string, error) {
	var out []string
	err := s.asSelf(ctx, func(c *api.Client) error {
		ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
		defer cancel()
		start := s.opts.Now()
		sec, err := c.Logical().ListWithContext(ctx, s.layout.Metadata(policy.TenantsPath()))
		s.observe("tenant_list", start, err)
		var re *api.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusNotFound {
			return nil
		}
		if err != nil || sec == nil {
			return err
		}
		raw, _ := sec.Data["keys"].([]any)
		for _, r := range raw {
			if t, ok := r.(string); ok && strings.HasSuffix(t, "/") && credgate.ValidID(strings.TrimSuffix(t, "/")) {
				out = append(out, strings.TrimSuffix(t, "/"))
			}
		}
		return nil
	})
	sort.Strings(out)
	return out, translate(err, credgate.ENotFound)
}

// systemLease is lease name of credgate's own, at system/<name>.
func (s *Store) systemLease(name string) record[lease] {
	return leaseRecord(ownKV{s}, "lease", policy.SystemPath(name))
}

// HoldLease takes or keeps lease name for holder for ttl, saving cursor
// (nil: keep the stored one). It reports whether holder has the lease and
// the cursor stored with it; a lease another holder keeps is not taken
// before it expires. Errors: BACKEND_UNAVAILABLE, INTERNAL_ERROR.
func (s *Store) HoldLease(ctx context.Context, name, holder string, ttl time.Duration, cursor *string) (bool, string, error) {
	l, _, err := takeLease(ctx, s.systemLease(name), holder, s.opts.Now, ttl, cursor)
	switch {
	case errors.Is(err, errHeld), credgate.ErrorCode(err) == credgate.EVersionConflict:
		return false, "", nil
	case err != nil:
		return false, "", translate(err, credgate.ENotFound)
	}
	return true, l.Cursor, nil
}

// ReleaseLease gives lease name up, if holder has it, keeping its cursor.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) {
	_ = releaseLease(ctx, s.systemLease(name), holder)
}

// SaveWatch writes the monitor's bookkeeping of c (credgate.WatchOf) into
// its metadata in tenant: no new version, no change to what it describes.
// Errors: BACKEND_UNAVAILABLE, INTERNAL_ERROR.
func (s *Store) SaveWatch(ctx context.Context, tenant string, c *credgate.Credential) error {
	return translate(s.patchOwn(ctx, "credential_watch", credPath(tenant, c.IntegrationID, c.ID), map[string]any{metaWatch: credgate.WatchOf(c).Encode()}), credgate.ECredentialNotFound)
}

// SaveRefreshState is SaveWatch of c whose automatic refresh failed, or
// succeeded after failures: the refresh state is part of its description,
// so it is noted in its service's inventory too.
func (s *Store) SaveRefreshState(ctx context.Context, tenant string, c *credgate.Credential) error {
	return translate(s.patchCred(ctx, "credential_watch", tenant, c.IntegrationID, c.ID, map[string]any{metaWatch: credgate.WatchOf(c).Encode()}), credgate.ECredentialNotFound)
}

// patchCred is patchOwn of credential cred of service in tenant, marked
// and noted in the service's inventory (inventory_records.go).
func (s *Store) patchCred(ctx context.Context, op, tenant, service, cred string, custom map[string]any) error {
	k, err := s.systemSession(ctx, tenant)
	if err != nil {
		return err
	}
	mark := credgate.NewMarkStamp(s.opts.Now())
	if err := k.markInventory(ctx, service, cred, mark); err != nil {
		return err
	}
	if err := s.patchOwn(ctx, op, credPath(tenant, service, cred), custom); err != nil {
		return err
	}
	_ = k.note(ctx, service, cred, mark)
	return nil
}

// patchOwn merges custom into path's custom_metadata with credgate's own
// token: bookkeeping, never a version.
func (s *Store) patchOwn(ctx context.Context, op, path string, custom map[string]any) error {
	return s.asSelf(ctx, func(c *api.Client) error {
		ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
		defer cancel()
		start := s.opts.Now()
		err := c.KVv2(s.opts.Mount).PatchMetadata(ctx, path, api.KVMetadataPatchInput{CustomMetadata: custom})
		s.observe(op, start, err)
		return err
	})
}

// systemSession is credgate's own session in tenant: a caller token of
// credgate.SystemPrincipal, so Vault confines it to the tenant and its
// audit log names it.
func (s *Store) systemSession(ctx context.Context, tenant string) (*session, error) {
	if !credgate.ValidID(tenant) {
		return nil, credgate.Errorf(credgate.EInvalidParameter, "not a tenant id")
	}
	tok, err := s.TokenFor(ctx, credgate.SystemPrincipal(tenant))
	if err != nil {
		return nil, err
	}
	return &session{s: s, tenant: tenant, token: tok, trace: traceOf(ctx)}, nil
}

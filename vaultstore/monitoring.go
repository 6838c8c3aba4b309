package vaultstore

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/credgate/credgate"
)

// What the monitor and the webhook dispatcher need of Vault beside the
// records: the list of tenants, a lease that lets one replica at a time
// scan, and the monitor's bookkeeping on a credential. These use credgate's
// own token (ServicePolicy: list on tenants/, the system/ folder, metadata
// patch); everything a tenant's records hold is read and written through a
// token minted for credgate.SystemPrincipal of that tenant.

// systemPath is the logical path of credgate's own records.
func systemPath(name string) string { return "system/" + name }

// Tenants returns the tenants that have records, sorted. Errors:
// BACKEND_UNAVAILABLE, INTERNAL_ERROR.
func (s *Store) Tenants(ctx context.Context) ([]string, error) {
	var out []string
	err := s.asSelf(ctx, func(c *api.Client) error {
		ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
		defer cancel()
		start := s.opts.Now()
		sec, err := c.Logical().ListWithContext(ctx, s.opts.Mount+"/metadata/tenants/")
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

// lease is a turn at some work that one replica at a time does, kept in
// Vault with check-and-set: Holder has it until Until; Cursor is where its
// work stands, so that the next holder resumes there.
type lease struct {
	Holder string    `json:"holder"`
	Until  time.Time `json:"until"`
	Cursor string    `json:"cursor"`
}

// HoldLease takes or keeps lease name for holder for ttl, saving cursor
// (nil: keep the stored one). It reports whether holder has the lease and
// the cursor stored with it; a lease another holder keeps is not taken
// before it expires. Errors: BACKEND_UNAVAILABLE, INTERNAL_ERROR.
func (s *Store) HoldLease(ctx context.Context, name, holder string, ttl time.Duration, cursor *string) (bool, string, error) {
	l, held, err := s.changeLease(ctx, name, func(l *lease) bool {
		now := s.opts.Now()
		if l.Holder != holder && l.Holder != "" && now.Before(l.Until) {
			return false // another's
		}
		l.Holder, l.Until = holder, now.Add(ttl)
		if cursor != nil {
			l.Cursor = *cursor
		}
		return true
	})
	return held, l.Cursor, err
}

// ReleaseLease gives lease name up, if holder has it, keeping its cursor.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) {
	_, _, _ = s.changeLease(ctx, name, func(l *lease) bool {
		if l.Holder != holder {
			return false
		}
		*l = lease{Cursor: l.Cursor}
		return true
	})
}

// changeLease reads lease name (none: the zero lease) and, when change
// says so, writes what it made of it with check-and-set. It reports the
// lease as it stands after and whether this call wrote it; losing the
// check-and-set to another replica is not an error.
func (s *Store) changeLease(ctx context.Context, name string, change func(*lease) bool) (lease, bool, error) {
	var l lease
	wrote := false
	err := s.asSelf(ctx, func(c *api.Client) error {
		ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
		defer cancel()
		kv := c.KVv2(s.opts.Mount)
		start := s.opts.Now()
		sec, err := kv.Get(ctx, systemPath(name))
		version := 0
		switch {
		case err == nil:
			version = sec.VersionMetadata.Version
			_ = decodeData(sec.Data, &l)
		case !errors.Is(err, api.ErrSecretNotFound):
			s.observe("lease_read", start, err)
			return err
		}
		s.observe("lease_read", start, nil)
		next := l
		if !change(&next) {
			return nil
		}
		data, _ := encode(next)
		start = s.opts.Now()
		_, err = kv.Put(ctx, systemPath(name), data, api.WithCheckAndSet(version))
		var re *api.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusBadRequest {
			s.observe("lease_write", start, nil)
			return nil // another replica wrote first
		}
		s.observe("lease_write", start, err)
		if err != nil {
			return err
		}
		l, wrote = next, true
		return nil
	})
	return l, wrote, translate(err, credgate.ENotFound)
}

// SaveWatch writes the monitor's bookkeeping of c (credgate.WatchOf) into
// its metadata in tenant: no new version, no change to what it describes.
// Errors: BACKEND_UNAVAILABLE, INTERNAL_ERROR.
func (s *Store) SaveWatch(ctx context.Context, tenant string, c *credgate.Credential) error {
	err := s.asSelf(ctx, func(vc *api.Client) error {
		ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
		defer cancel()
		start := s.opts.Now()
		err := vc.KVv2(s.opts.Mount).PatchMetadata(ctx, credPath(tenant, c.IntegrationID, c.ID), api.KVMetadataPatchInput{
			CustomMetadata: map[string]any{metaWatch: credgate.WatchOf(c).Encode()},
		})
		s.observe("credential_watch", start, err)
		return err
	})
	return translate(err, credgate.ECredentialNotFound)
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
	return &session{s: s, tenant: tenant, token: tok, requestID: credgate.RequestIDFrom(ctx)}, nil
}

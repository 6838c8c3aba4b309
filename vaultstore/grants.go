package vaultstore

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/policy"
)

// A tenant's grants are one record, tenants/<t>/access/grants, changed
// through update like every record: a grant is made or deleted, never
// changed, and every replica reads the whole set of a tenant at once (one
// read, and a metadata read to know it changed), which is what deciding a
// request needs. Only the tenant's integration_admin policy reaches the
// folder. Each grant's Vault policy (policy.RenderGrant) is written before
// the grant is, and deleted before it is: a deleted grant's policy is gone
// from every caller token that carried it, on every replica, at once.

// grantTable is the stored form of a tenant's grants.
type grantTable struct {
	Grants []credgate.Grant `json:"grants"`
}

func (k *session) grantPath() string { return k.path(policy.FolderAccess, "grants") }

func (k *session) grantRecord() record[grantTable] {
	r := jsonRecord[grantTable](k, "grants", k.grantPath())
	r.create = true
	r.clone = func(t grantTable) grantTable {
		t.Grants = slices.Clone(t.Grants)
		return t
	}
	return r
}

// knownRole is policy's list of roles, as Grant.Validate asks it.
func knownRole(r string) bool { return policy.Known(policy.Role(r)) }

// CreateGrant stores g, validated (credgate.Grant.Validate), as a new
// grant of the caller's tenant, with a new id unless g has one, after its
// Vault policy is written. Errors: VALIDATION_FAILED (also when the tenant
// has credgate.MaxGrants), INSUFFICIENT_PERMISSIONS, BACKEND_UNAVAILABLE.
func (s *Store) CreateGrant(ctx context.Context, g *credgate.Grant) (*credgate.Grant, error) {
	now := s.opts.Now()
	if err := g.Validate(now, knownRole); err != nil {
		return nil, err
	}
	k, err := s.session(ctx)
	if err != nil {
		return nil, err
	}
	out := *g
	if out.ID == "" {
		out.ID = credgate.NewGrantID()
	}
	out.CreatedAt, out.CreatedBy = now.UTC().Truncate(time.Second), credgate.PrincipalFrom(ctx).Actor()
	out.Source, out.Version = credgate.GrantFromAPI, 1
	if _, err := s.ensureGrantPolicy(ctx, k.tenant, out); err != nil {
		return nil, err
	}
	if out.ExpiresAt != nil { // the monitor expires it: tell it when, first
		if _, _, err := update(ctx, s.summaryHead(k.tenant), 0, func(h *credgate.SummaryHead) error {
			h.ExpectGrant(*out.ExpiresAt)
			return nil
		}); err != nil {
			return nil, translate(err, credgate.ENotFound)
		}
	}
	_, _, err = update(ctx, k.grantRecord(), 0, func(t *grantTable) error {
		if len(t.Grants) >= credgate.MaxGrants {
			return credgate.FieldErrors{credgate.WholeBody: "the tenant has the most grants it may have; delete one first"}.Err()
		}
		if slices.ContainsFunc(t.Grants, func(x credgate.Grant) bool { return x.ID == out.ID }) {
			return credgate.Errorf(credgate.EVersionConflict, "grant %s exists already", out.ID)
		}
		t.Grants = append(t.Grants, out)
		return nil
	})
	if err != nil {
		return nil, translate(err, credgate.ENotFound)
	}
	return &out, nil
}

// Grants returns the caller's tenant's grants, by creation.
// Errors: INSUFFICIENT_PERMISSIONS, BACKEND_UNAVAILABLE.
func (s *Store) Grants(ctx context.Context) ([]credgate.Grant, error) {
	k, err := s.session(ctx)
	if err != nil {
		return nil, err
	}
	t, _, err := k.grantRecord().read(ctx)
	if err != nil && !errors.Is(err, errNotFound) {
		return nil, translate(err, credgate.ENotFound)
	}
	return t.Grants, nil
}

// DeleteGrant removes grant id of the caller's tenant: its Vault policy
// first (every token carrying it loses what it granted, at once), then
// the grant. With ifMatch > 0 the grant must be at that version. When the
// second step fails the grant is still listed and a token minted meanwhile
// gets its policy back: DELETE again finishes it. It returns the grant.
// Errors: NOT_FOUND, VERSION_CONFLICT, INSUFFICIENT_PERMISSIONS,
// BACKEND_UNAVAILABLE.
func (s *Store) DeleteGrant(ctx context.Context, id string, ifMatch int) (*credgate.Grant, error) {
	k, err := s.session(ctx)
	if err != nil {
		return nil, err
	}
	t, _, err := k.grantRecord().read(ctx)
	if err != nil && !errors.Is(err, errNotFound) {
		return nil, translate(err, credgate.ENotFound)
	}
	i := slices.IndexFunc(t.Grants, func(g credgate.Grant) bool { return g.ID == id })
	if i < 0 {
		return nil, credgate.Errorf(credgate.ENotFound, "No grant exists with ID: %s", id)
	}
	gone := t.Grants[i]
	if err := credgate.CheckVersion(gone.Version, ifMatch); err != nil {
		return nil, err
	}
	if err := s.deletePolicy(ctx, policy.GrantPolicyName(k.tenant, id)); err != nil {
		return nil, err
	}
	_, _, err = update(ctx, k.grantRecord(), 0, func(t *grantTable) error {
		t.Grants = slices.DeleteFunc(t.Grants, func(g credgate.Grant) bool { return g.ID == id })
		return nil
	})
	if err != nil {
		return nil, translate(err, credgate.ENotFound)
	}
	return &gone, nil
}

// TenantGrants returns tenant's grants and the version of their record (0
// when it has none), read as credgate.SystemPrincipal: what deciding a
// request of the tenant needs (grants.Resolver).
func (s *Store) TenantGrants(ctx context.Context, tenant string) ([]credgate.Grant, int, error) {
	k, err := s.systemSession(ctx, tenant)
	if err != nil {
		return nil, 0, err
	}
	t, v, err := k.grantRecord().read(ctx)
	if errors.Is(err, errNotFound) {
		return nil, 0, nil
	}
	return t.Grants, v, translate(err, credgate.ENotFound)
}

// TenantGrantsVersion returns the version of tenant's grants record (0
// when it has none) from its metadata: a small read that says whether the
// grants changed.
func (s *Store) TenantGrantsVersion(ctx context.Context, tenant string) (int, error) {
	k, err := s.systemSession(ctx, tenant)
	if err != nil {
		return 0, err
	}
	m, err := k.readMetadata(ctx, "grants_version", k.grantPath())
	switch {
	case errors.Is(err, errNotFound):
		return 0, nil
	case err != nil:
		return 0, translate(err, credgate.ENotFound)
	}
	return m.CurrentVersion, nil
}

// ExpireGrants removes tenant's grants that expired at now, their Vault
// policies first, and returns them; then it tells the monitor's summary
// head when the next grant expires (unless a grant was added meanwhile:
// the head keeps asking). The monitor calls it; a caller's own check stops
// counting a grant the moment it expires.
func (s *Store) ExpireGrants(ctx context.Context, tenant string, now time.Time) ([]credgate.Grant, error) {
	k, err := s.systemSession(ctx, tenant)
	if err != nil {
		return nil, err
	}
	head, hv, err := s.summaryHead(tenant).read(ctx)
	if err != nil && !errors.Is(err, errNotFound) {
		return nil, translate(err, credgate.ENotFound)
	}
	t, _, err := k.grantRecord().read(ctx)
	if err != nil && !errors.Is(err, errNotFound) {
		return nil, translate(err, credgate.ENotFound)
	}
	var expired []credgate.Grant
	var next *time.Time
	for _, g := range t.Grants {
		if !g.Live(now) {
			if err := s.deletePolicy(ctx, policy.GrantPolicyName(tenant, g.ID)); err != nil {
				return nil, err
			}
			expired = append(expired, g)
		} else if g.ExpiresAt != nil && (next == nil || g.ExpiresAt.Before(*next)) {
			next = g.ExpiresAt
		}
	}
	if len(expired) > 0 {
		_, _, err = update(ctx, k.grantRecord(), 0, func(t *grantTable) error {
			t.Grants = slices.DeleteFunc(t.Grants, func(g credgate.Grant) bool {
				return slices.ContainsFunc(expired, func(x credgate.Grant) bool { return x.ID == g.ID })
			})
			return nil
		})
		if err != nil {
			return nil, translate(err, credgate.ENotFound)
		}
	}
	marks := head.GrantMarks
	_, _, err = update(ctx, from(s.summaryHead(tenant), head, hv), 0, func(h *credgate.SummaryHead) error {
		if h.GrantMarks != marks || reflect.DeepEqual(h.GrantsDue, next) {
			return errUnchanged
		}
		h.GrantsDue = next
		return nil
	})
	return expired, translate(err, credgate.ENotFound)
}

// GrantPolicies returns the Vault policies a token for p carries for its
// grants, with their texts, as credgate renders them (for /debug/auth).
func (s *Store) GrantPolicies(p *credgate.Principal) map[string]string {
	out := map[string]string{}
	for _, g := range p.Grants {
		out[policy.GrantPolicyName(p.Tenant, g.ID)] = s.layout.RenderGrant(p.Tenant, scopeOf(g))
	}
	return out
}

// scopeOf is g as policy sees it.
func scopeOf(g credgate.Grant) policy.Scope {
	return policy.Scope{ID: g.ID, Role: policy.Role(g.Role), Integrations: g.Integrations}
}

// ensureGrantPolicy writes g's policy in tenant unless this process wrote
// the same text already, and returns its name.
func (s *Store) ensureGrantPolicy(ctx context.Context, tenant string, g credgate.Grant) (string, error) {
	return s.ensure(ctx, policy.GrantPolicyName(tenant, g.ID), s.layout.RenderGrant(tenant, scopeOf(g)))
}

// deletePolicy deletes policy name with credgate's own token; one that is
// gone already is not an error. This replica forgets having written it.
func (s *Store) deletePolicy(ctx context.Context, name string) error {
	if !strings.HasPrefix(name, "credgate-") {
		return &credgate.Error{Code: credgate.EInternal, Message: "internal error", Err: errors.New("not a credgate policy: " + name)}
	}
	err := s.asSelf(ctx, func(c *api.Client) error {
		ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
		defer cancel()
		start := s.opts.Now()
		err := c.Sys().DeletePolicyWithContext(ctx, name)
		var re *api.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusNotFound {
			err = nil
		}
		s.observe("policy_delete", start, err)
		return err
	})
	s.policies.Remove(name)
	return translate(err, credgate.EInternal)
}

package httpapi

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/policy"
)

// GrantStore is what the grant routes and the access reviews need: the
// tenant's grants kept in Vault, and those from configuration.
type GrantStore interface {
	CreateGrant(ctx context.Context, g *credgate.Grant) (*credgate.Grant, error)
	Grants(ctx context.Context) ([]credgate.Grant, error)
	DeleteGrant(ctx context.Context, id string, ifMatch int) (*credgate.Grant, error)
	// GrantPolicies names the Vault policies of p's grants, with their
	// texts (/debug/auth).
	GrantPolicies(p *credgate.Principal) map[string]string
	// Configured returns tenant's grants from configuration.
	Configured(tenant string) []credgate.Grant
}

// changedGrants makes this replica read the caller's tenant's grants again
// at its next request (the others notice within seconds).
func (h *handlers) changedGrants(ctx context.Context) {
	if h.resolver != nil {
		h.resolver.Forget(credgate.PrincipalFrom(ctx).Tenant)
	}
}

// grantInput is what a client may send for a grant.
type grantInput struct {
	Subject      *string   `json:"subject"`
	Group        *string   `json:"group"`
	Role         *string   `json:"role"`
	Integrations *[]string `json:"integrations"`
	ExpiresAt    *string   `json:"expiresAt"`
	Description  *string   `json:"description"`
}

func (in *grantInput) grant() (*credgate.Grant, error) {
	g := &credgate.Grant{Subject: deref(in.Subject), Group: deref(in.Group), Role: deref(in.Role), Description: deref(in.Description)}
	if in.Integrations != nil {
		g.Integrations = *in.Integrations
	}
	if in.ExpiresAt != nil {
		t, err := time.Parse(time.RFC3339, *in.ExpiresAt)
		if err != nil {
			return nil, credgate.FieldErrors{"expiresAt": "must be an RFC 3339 time"}.Err()
		}
		t = t.UTC()
		g.ExpiresAt = &t
	}
	return g, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// grantID reads :id; a malformed one names nothing.
func grantID(c *gin.Context) (string, error) {
	id := c.Param("id")
	if !credgate.ValidGrantID(id) {
		return "", credgate.Errorf(credgate.ENotFound, "No grant exists with ID: %s", id)
	}
	return id, nil
}

// tenantGrants is every grant of the caller's tenant: from configuration
// first, then those made through the API, by creation.
func (h *handlers) tenantGrants(ctx context.Context) ([]credgate.Grant, error) {
	stored, err := h.grants.Grants(ctx)
	if err != nil {
		return nil, err
	}
	return append(h.grants.Configured(credgate.PrincipalFrom(ctx).Tenant), stored...), nil
}

func (h *handlers) createGrant(c *gin.Context) {
	var in grantInput
	if err := decodeJSON(c.Request.Body, &in); err != nil {
		fail(c, err)
		return
	}
	g, err := in.grant()
	if err != nil {
		fail(c, err)
		return
	}
	ctx := c.Request.Context()
	out, err := h.grants.CreateGrant(ctx, g)
	if err != nil {
		fail(c, err)
		return
	}
	h.changedGrants(ctx)
	if h.events != nil {
		h.events.Announce(ctx, credgate.NewGrantEvent(ctx, credgate.EventGrantCreated, out))
	}
	c.Header("Location", "/api/v1/grants/"+out.ID)
	c.Header("ETag", etag(out.Version))
	respond(c, http.StatusCreated, "Grant created successfully", out)
}

func (h *handlers) listGrants(c *gin.Context) {
	limit, after, err := grantPage(c)
	if err != nil {
		fail(c, err)
		return
	}
	all, err := h.tenantGrants(c.Request.Context())
	if err != nil {
		fail(c, err)
		return
	}
	slices.SortStableFunc(all, func(a, b credgate.Grant) int { return cmp.Compare(a.ID, b.ID) })
	start, _ := slices.BinarySearchFunc(all, after, func(g credgate.Grant, id string) int { return cmp.Compare(g.ID, id) })
	for start < len(all) && all[start].ID <= after {
		start++
	}
	page, next := all[start:], ""
	if len(page) > limit {
		page, next = page[:limit], encodeCursor(page[limit-1].ID)
	}
	respondPage(c, fmt.Sprintf("%d grants", len(page)), page, next)
}

// grantPage reads limit and cursor of the grants listing.
func grantPage(c *gin.Context) (limit int, after string, err error) {
	limit = defaultListLimit
	if v := c.Query("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > maxListLimit {
			return 0, "", invalidParam("limit must be a whole number from 1 to %d", maxListLimit)
		}
	}
	if v := c.Query("cursor"); v != "" {
		if after, err = decodeCursor(v); err != nil || !credgate.ValidGrantID(after) {
			return 0, "", invalidParam("cursor is not one this API returned")
		}
	}
	return limit, after, nil
}

func (h *handlers) getGrant(c *gin.Context) {
	id, err := grantID(c)
	if err != nil {
		fail(c, err)
		return
	}
	all, err := h.tenantGrants(c.Request.Context())
	if err != nil {
		fail(c, err)
		return
	}
	i := slices.IndexFunc(all, func(g credgate.Grant) bool { return g.ID == id })
	if i < 0 {
		fail(c, credgate.Errorf(credgate.ENotFound, "No grant exists with ID: %s", id))
		return
	}
	c.Header("ETag", etag(all[i].Version))
	respond(c, http.StatusOK, "Grant retrieved successfully", all[i])
}

func (h *handlers) deleteGrant(c *gin.Context) {
	id, err := grantID(c)
	if err != nil {
		fail(c, err)
		return
	}
	version, err := ifMatch(c)
	if err != nil {
		fail(c, err)
		return
	}
	ctx := c.Request.Context()
	if slices.ContainsFunc(h.grants.Configured(credgate.PrincipalFrom(ctx).Tenant), func(g credgate.Grant) bool { return g.ID == id }) {
		fail(c, badRequest("grant %s comes from credgate's configuration; remove it there", id))
		return
	}
	gone, err := h.grants.DeleteGrant(ctx, id, version)
	if err != nil {
		fail(c, err)
		return
	}
	h.changedGrants(ctx)
	if h.events != nil {
		h.events.Announce(ctx, credgate.NewGrantEvent(ctx, credgate.EventGrantDeleted, gone))
	}
	respond(c, http.StatusOK, "Grant deleted successfully", gin.H{"id": id})
}

// accessEntry is one way in to an integration's credentials: a tenant-wide
// role (which identity-provider role names map to it) or a grant.
type accessEntry struct {
	Via         string              `json:"via"` // role or grant
	Role        string              `json:"role"`
	Permissions []policy.Permission `json:"permissions"` // what it may do on the integration
	ReadsValues bool                `json:"readsValues"`
	// RoleClaimValues are the values of an issuer's roles claim that map
	// to Role (via role).
	RoleClaimValues []string        `json:"roleClaimValues,omitempty"`
	Grant           *credgate.Grant `json:"grant,omitempty"`
}

type accessReview struct {
	IntegrationID string        `json:"integrationId"`
	CredentialID  string        `json:"credentialId,omitempty"`
	Access        []accessEntry `json:"access"`
}

// review answers who may do what on integration, and how: every
// tenant-wide role that reaches it (with the role claim values that map to
// it) and every grant in force that names it.
func (h *handlers) review(ctx context.Context, integration, credential string) (*accessReview, error) {
	all, err := h.tenantGrants(ctx)
	if err != nil {
		return nil, err
	}
	out := accessReview{IntegrationID: integration, CredentialID: credential, Access: []accessEntry{}}
	for _, r := range policy.Roles() {
		var values []string
		for from, to := range h.roleMap {
			if slices.Contains(to, r) {
				values = append(values, from)
			}
		}
		slices.Sort(values)
		out.Access = append(out.Access, entryOf("role", r, policy.Access{Roles: []string{string(r)}}, integration, values, nil))
	}
	now := time.Now()
	for _, g := range all {
		a := accessOf(&credgate.Principal{Grants: []credgate.Grant{g}})
		if !g.Live(now) || len(a.Through(policy.ServicesRead, integration))+len(a.Through(policy.CredentialsMetaRead, integration)) == 0 {
			continue
		}
		out.Access = append(out.Access, entryOf("grant", policy.Role(g.Role), a, integration, nil, &g))
	}
	return &out, nil
}

func entryOf(via string, r policy.Role, a policy.Access, integration string, values []string, g *credgate.Grant) accessEntry {
	e := accessEntry{Via: via, Role: string(r), Permissions: []policy.Permission{}, RoleClaimValues: values, Grant: g}
	for _, p := range r.Permissions() {
		if a.Allows(p, integration) {
			e.Permissions = append(e.Permissions, p)
		}
	}
	e.ReadsValues = a.Allows(policy.CredentialsRead, integration)
	return e
}

func (h *handlers) serviceAccess(c *gin.Context) {
	id, err := serviceID(c)
	if err != nil {
		fail(c, err)
		return
	}
	ctx := c.Request.Context()
	if _, err := h.services.GetService(ctx, id); err != nil {
		fail(c, err)
		return
	}
	out, err := h.review(ctx, id, "")
	if err != nil {
		fail(c, err)
		return
	}
	writeJSON(c, http.StatusOK, out) // the services family: plain JSON
}

func (h *handlers) credentialAccess(c *gin.Context) {
	id, err := credentialID(c)
	if err != nil {
		fail(c, err)
		return
	}
	ctx := c.Request.Context()
	service, err := h.locate.LocateCredential(ctx, id)
	if err != nil {
		fail(c, err)
		return
	}
	out, err := h.review(ctx, service, id)
	if err != nil {
		fail(c, err)
		return
	}
	respond(c, http.StatusOK, fmt.Sprintf("%d ways in to credential %s", len(out.Access), id), out)
}

package httpapi

import (
	"context"
	"fmt"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/policy"
)

// What a caller may do is policy's rule (policy.Access: its tenant-wide
// roles and its grants on named integrations); these apply it to a request
// before the store is asked, for a clear 403. Vault would refuse too: the
// caller's token carries only the policies of its roles and grants.

// GrantResolver finds the grants in force for a caller (grants.Resolver).
type GrantResolver interface {
	Resolve(ctx context.Context, p *credgate.Principal) (*credgate.Principal, error)
	// Forget drops what this replica knows of tenant's grants (it
	// changed them).
	Forget(tenant string)
}

// resolveGrants puts the caller's grants on the principal of the request.
func resolveGrants(g GrantResolver) gin.HandlerFunc {
	return func(c *gin.Context) {
		if g == nil {
			c.Next()
			return
		}
		ctx := c.Request.Context()
		was := credgate.PrincipalFrom(ctx)
		p, err := g.Resolve(ctx, was)
		if err != nil {
			fail(c, err)
			return
		}
		if p != was { // a caller without grants keeps its request as it is
			c.Request = c.Request.WithContext(credgate.WithPrincipal(ctx, p))
		}
		c.Next()
	}
}

// accessOf is p's access as policy decides it.
// grantOf names the grant by which the caller in ctx reads values of
// integration: "" when a tenant-wide role allows it.
func grantOf(ctx context.Context, integration string) string {
	a := accessOf(credgate.PrincipalFrom(ctx))
	if a.Tenantwide(policy.CredentialsRead) {
		return ""
	}
	if through := a.Through(policy.CredentialsRead, integration); len(through) > 0 {
		return through[0].ID
	}
	return ""
}

func accessOf(p *credgate.Principal) policy.Access {
	a := policy.Access{Roles: p.Roles, Scopes: make([]policy.Scope, len(p.Grants))}
	for i, g := range p.Grants {
		a.Scopes[i] = policy.Scope{ID: g.ID, Role: policy.Role(g.Role), Integrations: g.Integrations}
	}
	return a
}

// may reports whether the caller in ctx holds p on integration.
func may(ctx context.Context, p policy.Permission, integration string) bool {
	return accessOf(credgate.PrincipalFrom(ctx)).Allows(p, integration)
}

// visible is, for a caller that holds p on some integrations only, the
// test of which those are (credgate.ServiceFilter.Visible); nil for one
// that holds p tenant-wide.
func visible(ctx context.Context, p policy.Permission) func(string) bool {
	a := accessOf(credgate.PrincipalFrom(ctx))
	if a.Tenantwide(p) {
		return nil
	}
	return func(integration string) bool { return a.Allows(p, integration) }
}

func refused(p policy.Permission, integration string) error {
	if integration == "" {
		return credgate.Errorf(credgate.EInsufficientPermissions, "this operation needs the %s permission", p)
	}
	return credgate.Errorf(credgate.EInsufficientPermissions, "this operation needs the %s permission on integration %s", p, integration)
}

// require answers INSUFFICIENT_PERMISSIONS unless the caller's tenant-wide
// roles grant p: what no grant gives (the tenant's webhooks and grants).
func require(p policy.Permission) gin.HandlerFunc {
	return func(c *gin.Context) {
		if !accessOf(credgate.PrincipalFrom(c.Request.Context())).Tenantwide(p) {
			fail(c, refused(p, ""))
			return
		}
		c.Next()
	}
}

// requireSome answers INSUFFICIENT_PERMISSIONS unless the caller holds p
// on some integration at least: the collection routes, which then narrow
// to the integrations it holds p on.
func requireSome(p policy.Permission) gin.HandlerFunc {
	return func(c *gin.Context) {
		if !accessOf(credgate.PrincipalFrom(c.Request.Context())).Some(p) {
			fail(c, refused(p, ""))
			return
		}
		c.Next()
	}
}

// requireOn answers INSUFFICIENT_PERMISSIONS unless the caller holds p on
// the integration the path's :id names. A malformed id is left to the
// handler (400); the answer is the same whether the integration exists or
// not.
func requireOn(p policy.Permission) gin.HandlerFunc {
	return func(c *gin.Context) {
		if id := c.Param("id"); credgate.ValidID(id) && !may(c.Request.Context(), p, id) {
			fail(c, refused(p, id))
			return
		}
		c.Next()
	}
}

// CredentialLocator finds the integration a credential id belongs to.
type CredentialLocator interface {
	LocateCredential(ctx context.Context, cred string) (service string, err error)
}

// requireOnCredential is requireOn for the routes whose :id is a
// credential: a caller that holds p tenant-wide goes on at once; for one
// with grants the credential's integration is looked up first. A
// credential of an integration the caller may not even view answers as one
// that does not exist; one it may view but not do p on, 403.
func (h *handlers) requireOnCredential(p policy.Permission) gin.HandlerFunc {
	return func(c *gin.Context) {
		ctx := c.Request.Context()
		a := accessOf(credgate.PrincipalFrom(ctx))
		id, ok := credgate.CanonicalCredentialID(c.Param("id"))
		if a.Tenantwide(p) || !ok {
			c.Next()
			return
		}
		service, err := h.locate.LocateCredential(ctx, id)
		switch {
		case err != nil:
			fail(c, err)
			return
		case !a.Allows(policy.CredentialsMetaRead, service):
			fail(c, credgate.Errorf(credgate.ECredentialNotFound, "No credential exists with ID: %s", id))
			return
		case !a.Allows(p, service):
			fail(c, refused(p, service))
			return
		}
		c.Next()
	}
}

// requireValues is requireOn(policy.CredentialsRead) for the routes that
// answer values (:id is the service). A refusal, and only a refusal, is
// also an event, and is put to Vault: the read is made with the caller's
// token, which Vault refuses too, so that Vault's audit log, the record of
// who read what, holds the attempt (credgate audit shows it as denied). The
// answer is credgate's own 403 either way. (The decision is made here, not
// read off the request afterwards: a 404 or an outage of the read that
// follows is no denial.)
func (h *handlers) requireValues() gin.HandlerFunc {
	return func(c *gin.Context) {
		ctx := c.Request.Context()
		service := c.Param("id")
		if !credgate.ValidID(service) || may(ctx, policy.CredentialsRead, service) {
			c.Next()
			return
		}
		fail(c, refused(policy.CredentialsRead, service))
		cred, _ := credgate.CanonicalCredentialID(c.Query("credentialId"))
		if _, err := h.creds.GetCredential(ctx, credgate.CredentialRead{Service: service, ID: cred}); err == nil {
			// Vault served what credgate's roles refuse: the two
			// definitions disagree. The answer stays a refusal.
			h.log.Error("Vault allowed a read credgate's roles refuse", zap.String("integration_id", service))
		}
		h.denied(ctx, service, cred, fmt.Sprintf("the caller holds no %s on integration %s", policy.CredentialsRead, service))
	}
}

package httpapi

import (
	"context"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/policy"
)

// What a caller may do is policy's rule; these apply it to a request
// before the store is asked, for a clear 403 (Vault would refuse too,
// less clearly).

// may reports whether the caller in ctx holds permission p.
func (h *handlers) may(ctx context.Context, p policy.Permission, _ string) bool {
	return policy.Allowed(credgate.PrincipalFrom(ctx).Roles, p)
}

// require answers INSUFFICIENT_PERMISSIONS early when no role of the caller
// grants p.
func require(p policy.Permission) gin.HandlerFunc {
	return func(c *gin.Context) {
		if !policy.Allowed(credgate.PrincipalFrom(c.Request.Context()).Roles, p) {
			fail(c, credgate.Errorf(credgate.EInsufficientPermissions, "this operation needs the %s permission", p))
			return
		}
		c.Next()
	}
}

// requireValues is require(policy.CredentialsRead) for the routes that
// answer values (:id is the service). A refusal is also an event, and is
// put to Vault: the read is made with the caller's token, which Vault
// refuses too, so that Vault's audit log, the record of who read what,
// holds the attempt (credgate audit shows it as denied). The answer is
// credgate's own 403 either way.
func (h *handlers) requireValues() gin.HandlerFunc {
	check := require(policy.CredentialsRead)
	return func(c *gin.Context) {
		check(c)
		service := c.Param("id")
		if !c.IsAborted() || !credgate.ValidID(service) { // refused: the answer is written later
			return
		}
		ctx := c.Request.Context()
		cred, _ := credgate.CanonicalCredentialID(c.Query("credentialId"))
		if _, err := h.creds.GetCredential(ctx, credgate.CredentialRead{Service: service, ID: cred}); err == nil {
			// Vault served what credgate's roles refuse: the two
			// definitions disagree. The answer stays a refusal.
			h.log.Error("Vault allowed a read credgate's roles refuse", zap.String("integration_id", service))
		}
		h.denied(ctx, service, cred, "the caller's roles do not grant "+string(policy.CredentialsRead))
	}
}

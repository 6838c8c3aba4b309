package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/policy"
)

// readyz runs every check; it names failing checks but not their causes,
// which go to the log (the endpoint is unauthenticated).
func readyz(checks []ReadyCheck, log *zap.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		ctx, cancel := context.WithTimeout(c.Request.Context(), 3*time.Second)
		defer cancel()
		status := http.StatusOK
		results := gin.H{}
		for _, chk := range checks {
			if err := chk.Check(ctx); err != nil {
				status = http.StatusServiceUnavailable
				results[chk.Name] = "unavailable"
				log.Warn("not ready", zap.String("check", chk.Name), zap.Error(err))
				continue
			}
			results[chk.Name] = "ok"
		}
		if status != http.StatusOK {
			c.Header("Retry-After", retryAfterBackend)
			c.JSON(status, gin.H{"status": "unavailable", "checks": results})
			return
		}
		c.JSON(status, gin.H{"status": "ready", "checks": results})
	}
}

type debugAuthResponse struct {
	Subject       string         `json:"subject"`
	Name          string         `json:"name"`
	Email         string         `json:"email"`
	Issuer        string         `json:"issuer"`
	Tenant        string         `json:"tenant"`
	Roles         []string       `json:"roles"`
	Groups        []string       `json:"groups,omitempty"`
	VaultPolicies []string       `json:"vault_policies"`
	ExpiresAt     time.Time      `json:"expires_at"`
	Claims        map[string]any `json:"claims"`
	// Grants are the grants in force for the caller, each with the Vault
	// policy it renders (its name and text).
	Grants []debugGrant `json:"grants"`
}

type debugGrant struct {
	credgate.Grant
	VaultPolicy     string `json:"vault_policy"`
	VaultPolicyText string `json:"vault_policy_text"`
}

// debugAuth shows what credgate made of the caller's token; never the
// token.
func (h *handlers) debugAuth(c *gin.Context) {
	p := credgate.PrincipalFrom(c.Request.Context())
	out := debugAuthResponse{
		Subject: p.Subject, Name: p.Name, Email: p.Email, Issuer: p.Issuer, Tenant: p.Tenant,
		Roles: p.Roles, Groups: p.Groups, VaultPolicies: policy.Names(p.Tenant, p.Roles), ExpiresAt: p.Expiry.UTC(), Claims: p.Claims,
		Grants: []debugGrant{},
	}
	var texts map[string]string
	if h.grants != nil {
		texts = h.grants.GrantPolicies(p)
	}
	for _, g := range p.Grants {
		name := policy.GrantPolicyName(p.Tenant, g.ID)
		out.VaultPolicies = append(out.VaultPolicies, name)
		out.Grants = append(out.Grants, debugGrant{Grant: g, VaultPolicy: name, VaultPolicyText: texts[name]})
	}
	c.JSON(http.StatusOK, out)
}

package auth

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/policy"
)

// FuzzClaims feeds the claim mapping (what a verified token's claims become)
// any JSON: it must not panic, and a principal it yields must have a
// subject, a valid tenant its issuer may assert, an expiry in the future and
// only credgate roles.
func FuzzClaims(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	for _, s := range []string{
		`{"sub":"a","exp":1800000600,"tenant_id":"acme","roles":["integration_admin"]}`,
		`{"sub":"a","exp":"1800000600","nbf":"1800000100","tenant_id":"acme"}`,
		`{"sub":"a","exp":1800000600,"org":{"id":"globex"},"realm_access":{"roles":"admins"}}`,
		`{"sub":"","exp":1e300,"tenant_id":"../x","iat":[1]}`,
		`{"sub":"a","exp":1800000600,"tenant_id":"partner-eu","tenant_name":"P\u0000"}`,
		`{"exp":null,"nbf":{},"sub":5}`,
	} {
		f.Add([]byte(s))
	}
	opts := &Options{RoleMap: policy.RoleMap{"admins": {policy.IntegrationAdmin}, "integration_admin": {policy.IntegrationAdmin}}, TenantNames: map[string]string{"acme": "Acme"}}
	pattern, _ := compileTenantPattern(`partner-[a-z]+`)
	issuers := []*issuer{
		{cfg: IssuerConfig{TenantClaim: DefaultTenantClaim, RolesClaim: DefaultRolesClaim, TenantNameClaim: DefaultTenantNameClaim}, opts: opts},
		{cfg: IssuerConfig{TenantClaim: "org.id", RolesClaim: "realm_access.roles", TenantNameClaim: "org.name", Tenants: []string{"acme", "globex"}}, opts: opts},
		{cfg: IssuerConfig{TenantClaim: DefaultTenantClaim, RolesClaim: DefaultRolesClaim, TenantNameClaim: DefaultTenantNameClaim}, opts: opts, pattern: pattern},
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var claims map[string]any
		if json.Unmarshal(raw, &claims) != nil || claims == nil {
			return
		}
		for _, iss := range issuers {
			p, err := iss.principal(claims, now)
			if err != nil {
				if c := credgate.ErrorCode(err); c != credgate.EUnauthorized && c != credgate.EInsufficientPermissions {
					t.Fatalf("claims %s: error code %s", raw, c)
				}
				continue
			}
			if p.Subject == "" || !credgate.ValidID(p.Tenant) || !iss.mayAssert(p.Tenant) || !p.Expiry.After(now) || p.TenantName == "" {
				t.Fatalf("claims %s gave %+v", raw, p)
			}
			for _, r := range p.Roles {
				if !policy.Known(policy.Role(r)) {
					t.Fatalf("claims %s gave the role %q", raw, r)
				}
			}
		}
	})
}

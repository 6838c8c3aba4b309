package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
)

// A caller's access is its tenant-wide roles plus its grants: roles on
// named integrations only (ARCHITECTURE.md, "Least privilege"). Both the
// local check (Access.Allows) and the Vault policy a grant renders
// (RenderGrant) come from permissionRules, so they cannot disagree.

// Scope is a grant as policy sees it: a role on integration patterns (an
// integration id, a prefix ending in *, or * for every integration).
type Scope struct {
	ID           string
	Role         Role
	Integrations []string
}

// Access is what a caller may do in its tenant.
type Access struct {
	Roles  []string // tenant-wide
	Scopes []Scope  // on named integrations
}

// grantable reports whether a grant's role confers p on its integrations:
// the tenant's webhooks, grants and rotators are never a grant's to manage.
func grantable(p Permission) bool {
	return p != WebhooksManage && p != GrantsManage && p != RotatorsManage
}

// Matches reports whether pattern names integration: the same id, a
// prefix of it followed by *, or *.
func Matches(pattern, integration string) bool {
	if prefix, glob := strings.CutSuffix(pattern, "*"); glob {
		return strings.HasPrefix(integration, prefix)
	}
	return pattern == integration
}

// Tenantwide reports whether the caller's tenant-wide roles grant p.
func (a Access) Tenantwide(p Permission) bool { return Allowed(a.Roles, p) }

// Allows reports whether the caller may do p on integration: a
// tenant-wide role grants it, or a grant whose role grants it names the
// integration.
func (a Access) Allows(p Permission, integration string) bool {
	return a.Tenantwide(p) || len(a.Through(p, integration)) > 0
}

// Some reports whether the caller may do p on some integration at least.
func (a Access) Some(p Permission) bool {
	if a.Tenantwide(p) {
		return true
	}
	for _, s := range a.Scopes {
		if grantable(p) && slices.Contains(s.Role.Permissions(), p) {
			return true
		}
	}
	return false
}

// Through returns the grants by which the caller may do p on integration.
func (a Access) Through(p Permission, integration string) []Scope {
	if !grantable(p) {
		return nil
	}
	var out []Scope
	for _, s := range a.Scopes {
		if !slices.Contains(s.Role.Permissions(), p) {
			continue
		}
		for _, pat := range s.Integrations {
			if Matches(pat, integration) {
				out = append(out, s)
				break
			}
		}
	}
	return out
}

// GrantPolicyName is the Vault policy of grant id in tenant:
// credgate-<tenant>-<id>, with Name's suffix for a tenant id in mixed case.
func GrantPolicyName(tenant, id string) string {
	name := "credgate-" + strings.ToLower(tenant) + "-" + id
	if tenant != strings.ToLower(tenant) {
		sum := sha256.Sum256([]byte(tenant))
		name += "-" + hex.EncodeToString(sum[:6])
	}
	return name
}

// RenderGrant returns the Vault ACL policy of grant s in tenant: what its
// role's permissions need, on the paths of the integrations it names only
// (records keyed by other things, such as a credential's index entry, stay
// tenant-wide; listings and reads of the index are not granted, so a
// scoped caller learns nothing of other integrations through Vault).
// tenant and the patterns must be valid (credgate.ValidID,
// credgate.ValidIntegrationPattern): they are put into paths as they are.
func (l Layout) RenderGrant(tenant string, s Scope) string {
	caps := capabilities{}
	for _, p := range s.Role.Permissions() {
		if !grantable(p) {
			continue
		}
		for _, r := range permissionRules[p] {
			folder := FolderPath(tenant, r.folder)
			switch r.scope {
			case byTenant:
				caps.add(l.path(r, folder+"*"), r.caps)
			case byRecord, byFolder:
				for _, pat := range s.Integrations {
					caps.add(l.path(r, folder+patternPath(pat, r.scope)), r.caps)
				}
			}
		}
	}
	return caps.hcl(fmt.Sprintf("credgate grant %s (role %s) for tenant %q", s.ID, s.Role, tenant))
}

// patternPath is the path under a folder that pattern covers: the record
// of an integration (byRecord), or everything under its folder
// (byFolder); a prefix covers every record or folder that starts with it.
func patternPath(pattern string, sc scope) string {
	if strings.HasSuffix(pattern, "*") {
		return pattern // Vault's glob: any record or folder with the prefix
	}
	if sc == byFolder {
		return pattern + "/*"
	}
	return pattern
}

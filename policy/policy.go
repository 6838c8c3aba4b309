package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
)

// Permission is one thing a caller may do within their tenant.
type Permission string

// Permissions. Every route of httpapi names the one it needs.
const (
	ServicesRead        Permission = "services:read"
	ServicesWrite       Permission = "services:write"
	CredentialsMetaRead Permission = "credentials:read_metadata"
	CredentialsRead     Permission = "credentials:read"
	CredentialsWrite    Permission = "credentials:write"
	// WebhooksManage: the tenant's webhook subscriptions, their delivery
	// logs and its event outbox.
	WebhooksManage Permission = "webhooks:manage"
)

// Role is a credgate role: a named set of permissions.
type Role string

// Built-in roles (API.md).
const (
	IntegrationAdmin  Role = "integration_admin"
	CredentialReader  Role = "credential_reader"
	IntegrationViewer Role = "integration_viewer"
)

var rolePermissions = map[Role][]Permission{
	IntegrationAdmin:  {ServicesRead, ServicesWrite, CredentialsMetaRead, CredentialsRead, CredentialsWrite, WebhooksManage},
	CredentialReader:  {ServicesRead, CredentialsMetaRead, CredentialsRead},
	IntegrationViewer: {ServicesRead, CredentialsMetaRead},
}

// Roles returns the built-in roles, sorted.
func Roles() []Role {
	out := make([]Role, 0, len(rolePermissions))
	for r := range rolePermissions {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Known reports whether r is a credgate role.
func Known(r Role) bool {
	_, ok := rolePermissions[r]
	return ok
}

// Permissions returns the permissions of r (nil for an unknown role).
func (r Role) Permissions() []Permission { return rolePermissions[r] }

// Allowed reports whether any of roles grants p.
func Allowed(roles []string, p Permission) bool {
	for _, r := range roles {
		for _, rp := range rolePermissions[Role(r)] {
			if rp == p {
				return true
			}
		}
	}
	return false
}

// RoleMap maps the identity provider's role names to credgate roles.
type RoleMap map[string][]Role

// DefaultRoleMap maps each built-in role's own name to itself, so an identity
// provider that already uses credgate's names needs no configuration.
func DefaultRoleMap() RoleMap {
	m := RoleMap{}
	for _, r := range Roles() {
		m[string(r)] = []Role{r}
	}
	return m
}

// Validate reports every mapping to a role credgate does not know.
func (m RoleMap) Validate() []error {
	var errs []error
	for _, from := range slices.Sorted(maps.Keys(m)) {
		for _, r := range m[from] {
			if !Known(r) {
				errs = append(errs, fmt.Errorf("role map: %q maps to unknown role %q", from, r))
			}
		}
	}
	return errs
}

// Map returns the credgate roles for the identity provider's role names,
// sorted and without duplicates. Names the map does not know are ignored.
func (m RoleMap) Map(idpRoles []string) []string {
	set := map[string]bool{}
	for _, n := range idpRoles {
		for _, r := range m[n] {
			set[string(r)] = true
		}
	}
	out := make([]string, 0, len(set))
	for r := range set {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

// Name returns the Vault policy name for (tenant, role):
// credgate-<tenant>-<role>. Vault folds policy names to lower case, so a
// tenant id with upper-case letters gets a suffix derived from the exact id;
// otherwise "Acme" and "acme" would share, and overwrite, one policy.
func Name(tenant string, r Role) string {
	name := "credgate-" + strings.ToLower(tenant) + "-" + string(r)
	if tenant != strings.ToLower(tenant) {
		sum := sha256.Sum256([]byte(tenant))
		name += "-" + hex.EncodeToString(sum[:6])
	}
	return name
}

// Names returns the Vault policy names for tenant and roles.
func Names(tenant string, roles []string) []string {
	out := make([]string, 0, len(roles))
	for _, r := range roles {
		if Known(Role(r)) {
			out = append(out, Name(tenant, Role(r)))
		}
	}
	return out
}

type grant struct {
	folder string
	api    string // "data" or "metadata"
	caps   []string
}

var permissionGrants = map[Permission][]grant{
	ServicesRead: {
		{FolderServices, "data", []string{"read"}},
		{FolderServices, "metadata", []string{"read", "list"}},
	},
	ServicesWrite: {
		{FolderServices, "data", []string{"create", "read", "update"}},
		{FolderServices, "metadata", []string{"delete"}},
		{FolderServiceNames, "data", []string{"create", "read", "update"}},
		{FolderServiceNames, "metadata", []string{"delete"}},
		// Deleting a service removes its credentials.
		{FolderCredentials, "metadata", []string{"list", "delete"}},
		{FolderCredIndex, "metadata", []string{"delete"}},
		{FolderCredLocks, "metadata", []string{"delete"}},
	},
	CredentialsMetaRead: {
		{FolderCredentials, "metadata", []string{"read", "list"}},
		{FolderCredIndex, "data", []string{"read"}},
	},
	CredentialsRead: {
		{FolderCredentials, "data", []string{"read"}},
	},
	CredentialsWrite: {
		{FolderCredentials, "data", []string{"create", "read", "update"}},
		// patch: the descriptive fields are merged into custom_metadata;
		// create: a new credential's description is written first.
		{FolderCredentials, "metadata", []string{"create", "read", "list", "update", "patch", "delete"}},
		{FolderCredIndex, "data", []string{"create", "read", "update"}},
		{FolderCredIndex, "metadata", []string{"delete"}},
		// The rotation lock: a record whose KV version is the lock.
		{FolderCredLocks, "data", []string{"create", "read", "update"}},
		{FolderCredLocks, "metadata", []string{"delete"}},
	},
	WebhooksManage: {
		{FolderWebhooks, "data", []string{"create", "read", "update"}},
		{FolderWebhooks, "metadata", []string{"list", "delete"}},
		{FolderDeliveries, "data", []string{"create", "read", "update"}},
		{FolderDeliveries, "metadata", []string{"delete"}},
		{FolderOutbox, "data", []string{"create", "read", "update"}},
		{FolderOutbox, "metadata", []string{"list", "delete"}},
	},
}

// Render returns the Vault ACL policy (HCL) that grants role r in tenant,
// and nothing outside tenants/<tenant>/ of the mount. tenant must be valid
// (credgate.ValidID): it is put into the policy's paths as it is.
func (l Layout) Render(tenant string, r Role) string {
	caps := map[string]map[string]bool{}
	for _, p := range r.Permissions() {
		for _, g := range permissionGrants[p] {
			path := l.Data(FolderPath(tenant, g.folder) + "*")
			if g.api == "metadata" {
				path = l.Metadata(FolderPath(tenant, g.folder) + "*")
			}
			if caps[path] == nil {
				caps[path] = map[string]bool{}
			}
			for _, c := range g.caps {
				caps[path][c] = true
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# credgate role %s for tenant %q; written by credgate, do not edit.\n", r, tenant)
	for _, path := range slices.Sorted(maps.Keys(caps)) {
		list := slices.Sorted(maps.Keys(caps[path]))
		fmt.Fprintf(&b, "path %q {\n  capabilities = [%s]\n}\n", path, quoteAll(list))
	}
	return b.String()
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

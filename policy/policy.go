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
	// GrantsManage: the tenant's grants and the review of who may do what.
	GrantsManage Permission = "grants:manage"
	// UsageRead: who read a credential, and which version (its ledger,
	// which credgate writes as the tenant's system principal).
	UsageRead Permission = "usage:read"
	// RotatorsManage: the tenant's rotators, and the rotations credgate
	// runs through them (their pending values among them).
	RotatorsManage Permission = "rotators:manage"
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
	IntegrationAdmin:  {ServicesRead, ServicesWrite, CredentialsMetaRead, CredentialsRead, CredentialsWrite, WebhooksManage, GrantsManage, UsageRead, RotatorsManage},
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

// OfTenant reports whether name is one of the policies credgate writes
// for tenant: a role's (Name) or a grant's (GrantPolicyName).
func OfTenant(tenant, name string) bool {
	return strings.HasPrefix(name, "credgate-"+strings.ToLower(tenant)+"-")
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

// rule is what a permission needs of one folder of the tenant's records.
type rule struct {
	folder string
	api    string // "data" or "metadata"
	caps   []string
	// scope is how a grant on named integrations renders the rule:
	// byRecord, the folder holds a record per integration (services/<id>);
	// byFolder, a folder per integration (credentials/<id>/...);
	// byTenant, the folder's records are keyed by something else (a
	// credential id, a name's hash), so the rule stays tenant-wide;
	// notGranted, tenant-wide roles only (listing a folder, reading the
	// credential index: what a grant does not cover is not shown to it).
	scope scope
}

type scope int

const (
	byRecord scope = iota
	byFolder
	byTenant
	notGranted
)

// idempotencyRules are the answers a caller's POSTs keep for their
// Idempotency-Key: every permission that POSTs writes them. They are
// keyed by a hash of the caller and the key, not by integration.
var idempotencyRules = []rule{
	{FolderIdempotency, "data", []string{"create", "read", "update"}, byTenant},
	{FolderIdempotency, "metadata", []string{"delete"}, byTenant},
}

var permissionRules = map[Permission][]rule{
	ServicesRead: {
		{FolderServices, "data", []string{"read"}, byRecord},
		{FolderServices, "metadata", []string{"read"}, byRecord},
		{FolderServices, "metadata", []string{"list"}, notGranted},
	},
	ServicesWrite: {
		{FolderServices, "data", []string{"create", "read", "update"}, byRecord},
		{FolderServices, "metadata", []string{"delete"}, byRecord},
		{FolderServiceNames, "data", []string{"create", "read", "update"}, byTenant},
		{FolderServiceNames, "metadata", []string{"delete"}, byTenant},
		// Deleting a service removes its credentials.
		{FolderCredentials, "metadata", []string{"list", "delete"}, byFolder},
		{FolderCredIndex, "metadata", []string{"delete"}, byTenant},
		{FolderCredLocks, "metadata", []string{"delete"}, byTenant},
		{FolderRotations, "metadata", []string{"delete"}, byFolder},
		// A new service's inventory base; deleting it removes its records.
		{FolderInventory, "data", []string{"create", "read", "update"}, byFolder},
		{FolderInventory, "metadata", []string{"delete"}, byFolder},
		idempotencyRules[0], idempotencyRules[1],
	},
	CredentialsMetaRead: {
		{FolderCredentials, "metadata", []string{"read", "list"}, byFolder},
		{FolderCredIndex, "data", []string{"read"}, notGranted},
		// The descriptions of a service's credentials, in one record.
		{FolderInventory, "data", []string{"read"}, byFolder},
	},
	CredentialsRead: {
		{FolderCredentials, "data", []string{"read"}, byFolder},
	},
	CredentialsWrite: {
		{FolderCredentials, "data", []string{"create", "read", "update"}, byFolder},
		// patch: the descriptive fields are merged into custom_metadata;
		// create: a new credential's description is written first.
		{FolderCredentials, "metadata", []string{"create", "read", "list", "update", "patch", "delete"}, byFolder},
		// A new credential's index entry (its check-and-set reads it).
		{FolderCredIndex, "data", []string{"create", "read", "update"}, byTenant},
		{FolderCredIndex, "metadata", []string{"delete"}, byTenant},
		// The rotation lock: a record whose KV version is the lock.
		{FolderCredLocks, "data", []string{"create", "read", "update"}, byTenant},
		{FolderCredLocks, "metadata", []string{"delete"}, byTenant},
		// A credential's rotation record goes with it.
		{FolderRotations, "metadata", []string{"delete"}, byFolder},
		// Every change of a credential is marked and noted in its
		// service's inventory delta.
		{FolderInventory, "data", []string{"create", "read", "update"}, byFolder},
		// A connect's state, written and taken by credgate's system
		// principal (never a grant's: a state is a PKCE verifier).
		{FolderConnect, "data", []string{"create", "read", "update"}, notGranted},
		{FolderConnect, "metadata", []string{"delete"}, notGranted},
		idempotencyRules[0], idempotencyRules[1],
		// The monitor (through the system principal) removes what is past
		// keeping; never a grant's: its holder would find others' answers.
		{FolderIdempotency, "metadata", []string{"list"}, notGranted},
	},
	WebhooksManage: {
		{FolderWebhooks, "data", []string{"create", "read", "update"}, notGranted},
		{FolderWebhooks, "metadata", []string{"list", "delete"}, notGranted},
		{FolderDeliveries, "data", []string{"create", "read", "update"}, notGranted},
		{FolderDeliveries, "metadata", []string{"delete"}, notGranted},
		{FolderOutbox, "data", []string{"create", "read", "update"}, notGranted},
		{FolderOutbox, "metadata", []string{"list", "delete"}, notGranted},
		idempotencyRules[0], idempotencyRules[1],
	},
	RotatorsManage: {
		{FolderRotators, "data", []string{"create", "read", "update"}, notGranted},
		{FolderRotators, "metadata", []string{"list", "delete"}, notGranted},
		{FolderRotations, "data", []string{"create", "read", "update"}, byFolder},
		idempotencyRules[0], idempotencyRules[1],
	},
	UsageRead: {
		{FolderLedgers, "data", []string{"create", "read", "update"}, byFolder},
		{FolderReach, "data", []string{"create", "read", "update"}, notGranted},
	},
	GrantsManage: {
		{FolderAccess, "data", []string{"create", "read", "update"}, notGranted},
		{FolderAccess, "metadata", []string{"read"}, notGranted},
		idempotencyRules[0], idempotencyRules[1],
	},
}

// Render returns the Vault ACL policy (HCL) that grants role r in tenant,
// and nothing outside tenants/<tenant>/ of the mount. tenant must be valid
// (credgate.ValidID): it is put into the policy's paths as it is.
func (l Layout) Render(tenant string, r Role) string {
	caps := capabilities{}
	for _, p := range r.Permissions() {
		for _, ru := range permissionRules[p] {
			caps.add(l.path(ru, FolderPath(tenant, ru.folder)+"*"), ru.caps)
		}
	}
	return caps.hcl(fmt.Sprintf("credgate role %s for tenant %q", r, tenant))
}

// capabilities are a policy's paths with their capabilities.
type capabilities map[string]map[string]bool

func (c capabilities) add(path string, caps []string) {
	if c[path] == nil {
		c[path] = map[string]bool{}
	}
	for _, cp := range caps {
		c[path][cp] = true
	}
}

// hcl renders c as a Vault ACL policy, sorted, under a comment saying
// what it is.
func (c capabilities) hcl(what string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s; written by credgate, do not edit.\n", what)
	for _, path := range slices.Sorted(maps.Keys(c)) {
		list := slices.Sorted(maps.Keys(c[path]))
		fmt.Fprintf(&b, "path %q {\n  capabilities = [%s]\n}\n", path, quoteAll(list))
	}
	return b.String()
}

// path is the API path of logical path p for what r reads or writes.
func (l Layout) path(r rule, p string) string {
	if r.api == "metadata" {
		return l.Metadata(p)
	}
	return l.Data(p)
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

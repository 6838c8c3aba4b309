package policy

import "fmt"

// Layout is where records live in Vault: the KV v2 mount, the folders under
// tenants/<tenant>/ and credgate's own records under system/
// (ARCHITECTURE.md). It is written here once: vaultstore builds every path
// from it, and the policies rendered here (the roles', credgate's own)
// grant exactly those paths, so the two cannot disagree.
type Layout struct {
	Mount string
}

// Defaults of what bootstrap creates and the store uses.
const (
	DefaultMount         = "credgate"
	DefaultTokenRole     = "credgate-caller"
	DefaultServicePolicy = "credgate_service"
)

// Folders under a tenant's prefix.
const (
	FolderServices     = "services"
	FolderServiceNames = "service-names"
	FolderCredentials  = "credentials"
	FolderCredIndex    = "credential-index"
	FolderCredLocks    = "credential-locks"
	FolderWebhooks     = "webhooks"    // subscriptions, with their signing secrets
	FolderDeliveries   = "deliveries"  // a delivery log per subscription
	FolderOutbox       = "outbox"      // events not yet delivered everywhere
	FolderAccess       = "access"      // the tenant's grants (one record)
	FolderIdempotency  = "idempotency" // answers kept for Idempotency-Key, by caller and key
	FolderLedgers      = "ledgers"     // who read each credential: ledgers/<service>/<credential>
	FolderReach        = "reach"       // which integrations each principal read lately: reach/shard-NN, 64 a tenant
	FolderRotators     = "rotators"    // the tenant's rotators, with their signing secrets
	FolderConnect      = "connect"     // connects awaiting the provider's redirect, by a hash of their state
	FolderRotations    = "rotations"   // each credential's latest rotation through a rotator, with its pending values: rotations/<service>/<credential>
	FolderInventory    = "inventory"   // the descriptions of each service's credentials: inventory/<service>/base and .../delta
)

// tenantsRoot is the folder every tenant's records are under; systemRoot
// the folder of credgate's own records (the monitor's lease).
const (
	tenantsRoot = "tenants/"
	systemRoot  = "system/"
)

// TenantPrefix is the logical path (inside the mount) of all of a tenant's
// records: tenants/<tenant>/.
func TenantPrefix(tenant string) string { return tenantsRoot + tenant + "/" }

// FolderPath is the logical path of a folder of tenant, for listing:
// tenants/<tenant>/<folder>/.
func FolderPath(tenant, folder string) string { return TenantPrefix(tenant) + folder + "/" }

// Path is the logical path of record name in folder of tenant:
// tenants/<tenant>/<folder>/<name>. name may itself be a path
// (<service>/<credential> in credentials).
func Path(tenant, folder, name string) string { return FolderPath(tenant, folder) + name }

// SystemPath is the logical path of credgate's own record name:
// system/<name>.
func SystemPath(name string) string { return systemRoot + name }

// TenantsPath is the logical path under which each tenant is a folder,
// for listing the tenants.
func TenantsPath() string { return tenantsRoot }

// Data is the API path of a logical path's data: <mount>/data/<p>.
func (l Layout) Data(p string) string { return l.Mount + "/data/" + p }

// Metadata is the API path of a logical path's metadata and listings:
// <mount>/metadata/<p>.
func (l Layout) Metadata(p string) string { return l.Mount + "/metadata/" + p }

// ServicePolicy renders credgate's own policy: mint caller tokens through
// the token role, manage the credgate-* role policies, keep bookkeeping in
// the tenants' metadata (lastAccessedAt, the monitor's notes), list the
// tenants, keep its own records, have Vault generate random values, and
// look itself up. It grants no read of any secret value.
func (l Layout) ServicePolicy(tokenRole string) string {
	return fmt.Sprintf(`# credgate's own identity; written by credgate bootstrap.
path "auth/token/create/%[1]s" {
  capabilities = ["update"]
}
path "sys/policies/acl/credgate-*" {
  capabilities = ["create", "read", "update", "delete"]
}
path %[2]q {
  capabilities = ["read", "patch"]
}
# The monitor: which tenants exist (their ids only), and its lease.
path %[3]q {
  capabilities = ["list"]
}
path %[4]q {
  capabilities = ["create", "read", "update"]
}
path "sys/tools/random*" {
  capabilities = ["update"]
}
path "auth/token/lookup-self" {
  capabilities = ["read"]
}
path "auth/token/renew-self" {
  capabilities = ["update"]
}
`, tokenRole, l.Metadata(tenantsRoot+"*"), l.Metadata(tenantsRoot), l.Data(systemRoot+"*"))
}

// Package policy defines what each credgate role may do, once. The same
// definition answers the local permission check (a clear 403 before Vault is
// asked) and renders the Vault ACL policy that Vault enforces on the caller's
// own token, so the two can never drift apart.
package policy

// Package vaultstore is everything credgate says to Vault. It keeps the
// tenant's records in a KV v2 mount under tenants/<tenant>/, calls Vault with
// a batch token minted for each caller (so Vault enforces the tenant boundary
// and its audit log names the end user), writes the rendered role policies,
// bootstraps a Vault for credgate, and translates Vault's errors into
// credgate error codes by their type, never by their text.
package vaultstore

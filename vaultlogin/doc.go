// Package vaultlogin is credgate's own Vault identity: the ways it logs in
// (a token, a token file kept fresh by Vault Agent, AppRole, JWT,
// Kubernetes), the renewal of its token and a new login when the token
// ends or Vault refuses it. It never holds a caller's token: those are
// vaultstore's. cmd/credgate wires an Identity into the store.
package vaultlogin

//go:build tools

// Package vault pins the Vault server that `make vault` builds into bin/vault.
// credgate's tests and `make dev` run this real Vault; nothing imports it.
package vault

import _ "github.com/hashicorp/vault"

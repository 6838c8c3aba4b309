// Package credgate holds the domain of credgate: the records it keeps for a
// tenant (services), the verified caller (Principal) and the one error type
// every layer returns. Implementations live in sub-packages: auth verifies
// callers, policy decides what they may do, vaultstore keeps the records in
// Vault and httpapi serves them. Only cmd/credgate wires them together.
package credgate

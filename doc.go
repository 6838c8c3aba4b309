// Package credgate holds the domain of credgate: the records it keeps for a
// tenant (Service, Credential) with their rules (which secret fields exist,
// what each auth type requires and may generate, the limits, which status is
// served, the rule of conditional writes), the verified caller (Principal)
// and the one error type every layer returns. Implementations live in
// sub-packages: auth verifies callers, policy decides what they may do,
// vaultstore keeps the records in Vault, httpapi serves them and tokenrefresh
// makes OAuth2 grants. Only cmd/credgate wires them together.
package credgate

// Package tokenrefresh makes OAuth2 refresh-token grants (RFC 6749 section
// 6) against a credential's token endpoint: one of the outbound calls
// credgate makes on a tenant's behalf. It is neither HTTP API nor Vault, so
// it lives apart from both; cmd/credgate hands its grant to httpapi.
package tokenrefresh

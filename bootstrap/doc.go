// Package bootstrap prepares an existing Vault for credgate, idempotently:
// the KV v2 mount its records live in, credgate's own policy (rendered by
// policy from the one layout), the token role its caller tokens are minted
// through, the audited X-Request-Id and X-Credgate-Request headers and, when asked, a file audit
// device and the roles credgate logs in with. Only cmd/credgate (the
// bootstrap and dev commands) and the tests use it.
package bootstrap

// Package auth turns a bearer token into a credgate.Principal. Tokens are
// verified with go-oidc against one or more configured issuers (one per
// realm): signature with an asymmetric algorithm only, iss, aud, exp and
// nbf. The tenant and roles come from configurable claims of the verified
// token, never from request headers.
//
// Two costs are bounded on purpose: a verified token is cached (keyed by a
// hash of the token, never longer than its exp), and an issuer's JWKS is
// fetched again at most once per RefreshInterval, however many tokens with
// unknown key ids arrive, so forged tokens cannot make credgate hammer the
// identity provider.
package auth

// Package outbound is the one way credgate sends HTTP requests on a
// tenant's behalf: OAuth2 token endpoints now, webhooks later. A tenant
// admin chooses those URLs, so a request could be aimed at credgate's own
// host or network (its Vault on loopback, a cloud metadata service, a
// private database). The Guard refuses loopback, private, link-local,
// unspecified and other non-public addresses unless the configuration
// allows them, and checks the address it actually connects to, after name
// resolution, so a name that resolves to a public address when the URL is
// written and to a private one later gains nothing.
package outbound

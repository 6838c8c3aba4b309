// Package webhook delivers a tenant's events to its webhook subscriptions
// as the Standard Webhooks specification says (webhook-id,
// webhook-timestamp, webhook-signature: HMAC-SHA256 over
// "id.timestamp.body" with the subscription's secret), at least once, with
// retries and exponential backoff for a bounded time.
//
// Events wait in the tenant's outbox in Vault. Before it sends anything, a
// replica claims the event there with check-and-set, so each attempt is
// made by exactly one replica; the replica that published an event tries it
// at once, and the sweep (run by the replica that holds the monitor's
// lease) picks up retries and events whose replica went away. Requests go
// through the outbound guard's client: no loopback or private receiver
// unless outbound.allow lists it.
package webhook

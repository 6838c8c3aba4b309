// Package monitor watches every credential of every tenant: it sends
// credential.expiring at each tenant's thresholds (once per credential and
// threshold) and credential.expired, refreshes autoRefresh OAuth2
// credentials ahead of their expiry, revokes credentials whose revokeAt has
// come, and counts the inventory for the metrics.
//
// One replica at a time scans: the one that holds the monitor's lease in
// Vault (check-and-set). The scan walks the tenants in order, rate-limited,
// and saves where it stands with the lease, so a replica that takes over
// resumes there. A refresh goes through the store's locked rotation path
// conditioned on the version the scan saw, so it happens once however many
// replicas run. The replica that holds the lease also sweeps the webhook
// outboxes for retries.
package monitor

package httpapi

import (
	"time"

	"github.com/credgate/credgate"

	"github.com/prometheus/client_golang/prometheus"
)

// The monitoring series: the inventory by status and expiry bucket per
// tenant label (named tenants by name, the rest as other), refreshes,
// webhook deliveries and the monitor's passes.
type monitorMetrics struct {
	credentials *prometheus.GaugeVec
	expiring    *prometheus.GaugeVec
	rotation    *prometheus.GaugeVec
	connection  *prometheus.GaugeVec
	steps       *prometheus.CounterVec
	refreshes   *prometheus.CounterVec
	deliveries  *prometheus.CounterVec
	delivery    prometheus.Histogram
	disabled    *prometheus.CounterVec
	alerts      *prometheus.CounterVec
	passSeconds prometheus.Gauge
	passCreds   prometheus.Gauge
}

func newMonitorMetrics(reg *prometheus.Registry) *monitorMetrics {
	m := &monitorMetrics{
		credentials: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "credgate_credentials", Help: "Credentials by tenant and effective status, as the last monitor pass counted them.",
		}, []string{"tenant", "status"}),
		expiring: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "credgate_credentials_expiry", Help: "Credentials not revoked by tenant and expiry bucket (expired, lt_1d, lt_7d, lt_30d), as the last monitor pass counted them.",
		}, []string{"tenant", "bucket"}),
		rotation: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "credgate_credentials_rotation", Help: "Active credentials with a rotation policy by tenant and rotation bucket (overdue, due, lt_7d, lt_30d), as the last monitor pass counted them.",
		}, []string{"tenant", "bucket"}),
		connection: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "credgate_credentials_connection", Help: "OAuth2 credentials not revoked by tenant and connection state (pending_connection, connected, reconnect_required), as the last monitor pass counted them.",
		}, []string{"tenant", "state"}),
		steps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credgate_rotation_steps_total", Help: "Steps of rotations through rotators by step (create, test, promote, finish) and outcome (ok, retry, failed).",
		}, []string{"step", "outcome"}),
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credgate_credential_refreshes_total", Help: "Automatic OAuth2 refreshes by outcome (ok, error).",
		}, []string{"outcome"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credgate_webhook_deliveries_total", Help: "Webhook delivery attempts by outcome (delivered, retrying, failed).",
		}, []string{"outcome"}),
		delivery: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "credgate_webhook_delivery_duration_seconds", Help: "Webhook delivery attempt latency.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		disabled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credgate_webhooks_disabled_total", Help: "Subscriptions credgate disabled by reason (gone: the receiver answered 410; failing: every delivery failed for webhooks.disable_after).",
		}, []string{"reason"}),
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credgate_usage_alerts_total", Help: "Findings of unusual use by type (credential.new_reader, credential.read_spike, tenant.broad_read).",
		}, []string{"type"}),
		passSeconds: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "credgate_monitor_pass_seconds", Help: "How long the last monitor pass over all credentials took.",
		}),
		passCreds: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "credgate_monitor_pass_credentials", Help: "Credentials the last monitor pass examined.",
		}),
	}
	reg.MustRegister(m.credentials, m.expiring, m.rotation, m.connection, m.steps, m.refreshes, m.deliveries, m.delivery, m.disabled, m.alerts, m.passSeconds, m.passCreds)
	return m
}

// MonitorPass records a finished monitor pass: the inventory of every
// tenant replaces the last one.
func (m *Metrics) MonitorPass(byTenant map[string]credgate.InventoryCounts, credentials int, took time.Duration) {
	status := map[[2]string]int{}
	expiry := map[[2]string]int{}
	rotation := map[[2]string]int{}
	connection := map[[2]string]int{}
	for t, c := range byTenant {
		label := m.tenantLabel(t)
		for k, n := range c.Status {
			status[[2]string{label, k}] += n
		}
		for k, n := range c.Expiry {
			expiry[[2]string{label, k}] += n
		}
		for k, n := range c.Rotation {
			rotation[[2]string{label, k}] += n
		}
		for k, n := range c.Connection {
			connection[[2]string{label, k}] += n
		}
	}
	mm := m.monitor
	mm.credentials.Reset()
	mm.expiring.Reset()
	mm.rotation.Reset()
	mm.connection.Reset()
	for k, n := range connection {
		mm.connection.WithLabelValues(k[0], k[1]).Set(float64(n))
	}
	for k, n := range rotation {
		mm.rotation.WithLabelValues(k[0], k[1]).Set(float64(n))
	}
	for k, n := range status {
		mm.credentials.WithLabelValues(k[0], k[1]).Set(float64(n))
	}
	for k, n := range expiry {
		mm.expiring.WithLabelValues(k[0], k[1]).Set(float64(n))
	}
	mm.passSeconds.Set(took.Seconds())
	mm.passCreds.Set(float64(credentials))
}

// MonitorLost withdraws the inventory this replica reported: another
// replica holds the monitor's lease and reports it.
func (m *Metrics) MonitorLost() {
	m.monitor.credentials.Reset()
	m.monitor.expiring.Reset()
	m.monitor.rotation.Reset()
	m.monitor.connection.Reset()
	m.monitor.passSeconds.Set(0)
	m.monitor.passCreds.Set(0)
}

// RotationStep records a step of a rotation through a rotator (ok,
// retry, failed).
func (m *Metrics) RotationStep(step, outcome string) {
	m.monitor.steps.WithLabelValues(step, outcome).Inc()
}

// CredentialRefresh records an automatic refresh (ok, error).
func (m *Metrics) CredentialRefresh(outcome string) {
	m.monitor.refreshes.WithLabelValues(outcome).Inc()
}

// WebhookDelivery records a delivery attempt.
func (m *Metrics) WebhookDelivery(outcome string, d time.Duration) {
	m.monitor.deliveries.WithLabelValues(outcome).Inc()
	m.monitor.delivery.Observe(d.Seconds())
}

// UsageAlert records a finding of unusual use.
func (m *Metrics) UsageAlert(typ string) {
	m.monitor.alerts.WithLabelValues(typ).Inc()
}

// UsageReadsLost exports lost, the reads the store could not count in a
// credential's usage ledger (gathered past its bound, or their write
// failed), as credgate_usage_reads_lost_total.
func (m *Metrics) UsageReadsLost(lost func() int64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "credgate_usage_reads_lost_total", Help: "Reads of values this replica could not count in the credentials' usage ledgers (gathered past vaultstore's bound of pending reads, or their ledger write failed).",
	}, func() float64 { return float64(lost()) }))
}

// WebhookDisabled records a subscription credgate disabled (gone, failing).
func (m *Metrics) WebhookDisabled(reason string) {
	m.monitor.disabled.WithLabelValues(reason).Inc()
}

func (m *Metrics) tenantLabel(t string) string {
	if m.namedTenants[t] {
		return t
	}
	return "other"
}

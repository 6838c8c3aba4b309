package main

import (
	"context"
	"os"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/httpapi"
	"github.com/credgate/credgate/monitor"
	"github.com/credgate/credgate/outbound"
	"github.com/credgate/credgate/rotation"
	"github.com/credgate/credgate/tokenrefresh"
	"github.com/credgate/credgate/vaultstore"
	"github.com/credgate/credgate/webhook"
)

// monitoring is the replica's part in watching credentials: the webhook
// dispatcher (events published here are tried here first) and the monitor
// (which works only while this replica holds its lease).
type monitoring struct {
	events    *webhook.Dispatcher
	monitor   *monitor.Monitor
	rotations *rotation.Runner
}

// replicaName names this replica in leases and claims: host and a random
// suffix, so two processes on one host differ.
func replicaName() string {
	h, _ := os.Hostname()
	return h + "-" + uuid.NewString()[:8]
}

func newMonitoring(cfg Config, store *vaultstore.Store, guard *outbound.Guard, metrics *httpapi.Metrics, log *zap.Logger) (*monitoring, error) {
	holder := replicaName()
	w := cfg.Webhooks
	d, err := webhook.New(webhook.Options{
		Store: store, Client: guard.Client(w.Timeout), Logger: log.Named("webhook"), Holder: holder,
		Timeout: w.Timeout, Backoff: w.Backoff, MaxBackoff: w.MaxBackoff, RetryFor: w.RetryFor, MaxAttempts: w.MaxAttempts,
		Workers: w.Workers, DisableAfter: w.DisableAfter,
		Observe: metrics.WebhookDelivery, OnDisabled: metrics.WebhookDisabled,
	})
	if err != nil {
		return nil, err
	}
	rc := cfg.Rotation
	rot, err := rotation.New(rotation.Options{
		Store: store, Events: d, Client: guard.Client, Logger: log.Named("rotation"), Holder: holder,
		Retry: credgate.RetryPolicy{Backoff: rc.Backoff, MaxAttempts: rc.MaxAttempts}, Workers: rc.Workers, OnStep: metrics.RotationStep,
	})
	if err != nil {
		return nil, err
	}
	mc := cfg.Monitor
	mon, err := monitor.New(monitor.Options{
		Rotations: rot, RotationOverdue: rc.overdueOf,
		Store: store, Events: d, Sweep: d, Grant: tokenrefresh.Grant(guard.Client(tokenrefresh.Timeout)),
		Logger: log.Named("monitor"), Holder: holder, Interval: mc.Interval, Rate: mc.Rate, LeaseTTL: mc.LeaseTTL,
		Workers: mc.RefreshWorkers,
		Thresholds: func(tenant string) []int {
			if t, ok := mc.TenantThresholds[tenant]; ok {
				return t
			}
			return mc.ExpiryThresholds
		},
		OnRefresh: metrics.CredentialRefresh, OnLost: metrics.MonitorLost,
		OnPass: func(p monitor.Pass) {
			metrics.MonitorPass(p.Inventory, p.Credentials, p.Took)
			log.Named("monitor").Info("monitor pass", zap.Int("tenants", p.Tenants), zap.Int("credentials", p.Credentials), zap.Duration("took", p.Took))
		},
	})
	if err != nil {
		return nil, err
	}
	return &monitoring{events: d, monitor: mon, rotations: rot}, nil
}

// run delivers and, unless disabled, monitors until ctx ends.
func (m *monitoring) run(ctx context.Context, monitorOn bool) {
	go m.events.Run(ctx)
	go m.rotations.Run(ctx)
	if monitorOn {
		go m.monitor.Run(ctx)
	}
}

// The store keeps each tenant's summary, so that a pass costs what is due.
var _ monitor.SummaryStore = (*vaultstore.Store)(nil)

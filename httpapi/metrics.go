package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are credgate's Prometheus series, on a registry of their own.
// No label ever holds a token, a secret or a raw path: routes are gin's
// templates, Vault operations a fixed set, and tenants are named only when
// the configuration names them (every other tenant is "other"), so the
// label sets stay bounded whatever callers send.
type Metrics struct {
	reg           *prometheus.Registry
	requests      *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	vault         *prometheus.HistogramVec
	vaultErrors   *prometheus.CounterVec
	tokenCache    *prometheus.CounterVec
	verifiedCache *prometheus.CounterVec
	jwks          *prometheus.CounterVec
	vaultLogins   *prometheus.CounterVec
	rateLimited   *prometheus.CounterVec
	rateLimitErrs prometheus.Counter
	limiterState  *prometheus.GaugeVec
	namedTenants  map[string]bool
	monitor       *monitorMetrics
}

// NewMetrics returns the metrics; namedTenants are the tenants that get a
// label value of their own.
func NewMetrics(namedTenants []string) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), namedTenants: map[string]bool{}}
	for _, t := range namedTenants {
		m.namedTenants[t] = true
	}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "credgate_http_requests_total", Help: "HTTP requests by route template, method and status.",
	}, []string{"route", "method", "status"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "credgate_http_request_duration_seconds", Help: "HTTP request latency by route template and method.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"route", "method"})
	m.vault = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "credgate_vault_request_duration_seconds", Help: "Vault call latency by operation.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"operation"})
	m.vaultErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "credgate_vault_errors_total", Help: "Failed Vault calls by operation.",
	}, []string{"operation"})
	m.tokenCache = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "credgate_vault_token_cache_total", Help: "Lookups of per-caller Vault tokens by result (hit, miss).",
	}, []string{"result"})
	m.verifiedCache = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "credgate_verified_token_cache_total", Help: "Lookups of verified bearer tokens by result (hit, miss).",
	}, []string{"result"})
	m.jwks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "credgate_jwks_fetches_total", Help: "JWKS fetches by configured issuer and result (ok, error).",
	}, []string{"issuer", "result"})
	m.rateLimited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "credgate_rate_limited_total", Help: "Requests refused by the rate limit, by tenant (configured tenants by name, others as other).",
	}, []string{"tenant"})
	m.vaultLogins = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "credgate_vault_logins_total", Help: "credgate's own logins to Vault by method and result (ok, error).",
	}, []string{"method", "result"})
	m.rateLimitErrs = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "credgate_rate_limit_store_errors_total", Help: "Requests the rate-limit store gave no answer for (failing, or its breaker open); let through, or refused with rate_limit.on_store_error: deny.",
	})
	m.limiterState = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "credgate_rate_limit_store_state", Help: "1 for the rate-limit store's circuit breaker state (closed: asking; open: not asking, failing open or closed as configured; half-open: one question on its way).",
	}, []string{"state"})
	m.limiterState.WithLabelValues("closed").Set(1)
	m.reg.MustRegister(m.requests, m.latency, m.vault, m.vaultErrors, m.tokenCache, m.verifiedCache, m.jwks, m.vaultLogins, m.rateLimited, m.rateLimitErrs, m.limiterState,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.monitor = newMonitorMetrics(m.reg)
	return m
}

// RateLimitStoreState records the rate-limit store breaker's new state.
func (m *Metrics) RateLimitStoreState(state string) {
	for _, s := range []string{"closed", "open", "half-open"} {
		v := 0.0
		if s == state {
			v = 1
		}
		m.limiterState.WithLabelValues(s).Set(v)
	}
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

func (m *Metrics) request(route, method string, status int, d time.Duration) {
	m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(route, method).Observe(d.Seconds())
}

// ObserveVault records one Vault call (vaultstore.Options.Observe).
func (m *Metrics) ObserveVault(op string, d time.Duration, err error) {
	m.vault.WithLabelValues(op).Observe(d.Seconds())
	if err != nil {
		m.vaultErrors.WithLabelValues(op).Inc()
	}
}

// TokenCache records a per-caller token lookup (vaultstore.Options.OnTokenCache).
func (m *Metrics) TokenCache(hit bool) { m.tokenCache.WithLabelValues(hitOrMiss(hit)).Inc() }

// VerifiedTokenCache records a verified-token lookup (auth.Options.OnCache).
func (m *Metrics) VerifiedTokenCache(hit bool) { m.verifiedCache.WithLabelValues(hitOrMiss(hit)).Inc() }

// JWKSFetch records a JWKS fetch (auth.Options.OnJWKSFetch).
func (m *Metrics) JWKSFetch(issuer string, err error) {
	m.jwks.WithLabelValues(issuer, okOrError(err)).Inc()
}

// VaultLogin records one of credgate's own logins to Vault
// (vaultlogin.IdentityOptions.Report).
func (m *Metrics) VaultLogin(method string, err error) {
	m.vaultLogins.WithLabelValues(method, okOrError(err)).Inc()
}

func okOrError(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}

func (m *Metrics) limited(tenant string) {
	m.rateLimited.WithLabelValues(m.tenantLabel(tenant)).Inc()
}

func hitOrMiss(hit bool) string {
	if hit {
		return "hit"
	}
	return "miss"
}

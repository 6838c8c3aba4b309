package httpapi_test

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/redis/go-redis/v9"

	"github.com/credgate/credgate/httpapi"
	"github.com/credgate/credgate/httpapi/ratelimit"
	"github.com/credgate/credgate/httpapi/ratelimit/redistest"
)

func redisStore(t *testing.T, addr string) *ratelimit.Redis {
	c := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 200 * time.Millisecond, ReadTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { c.Close() })
	return ratelimit.NewRedis(c)
}

func TestRateLimitHoldsAcrossReplicasThroughRedis(t *testing.T) {
	addr := redistest.Start(t)
	ten, other := tenant(t), tenant(t)
	const limit = 20 // one request back every 3 s
	rl := func() httpapi.RateLimit {
		return httpapi.RateLimit{Store: redisStore(t, addr), Default: 1000, Tenants: map[string]int{ten: limit}}
	}
	replicas := []*testAPI{newAPI(t, apiOptions{rateLimit: rl()}), newAPI(t, apiOptions{rateLimit: rl()})}
	tok := token(t, "rl", ten, "integration_viewer")
	otherTok := token(t, "rl", other, "integration_viewer")

	for i := range limit {
		r := replicas[i%2].do("GET", "/debug/auth", tok, nil)
		if r.Status != 200 || r.Header.Get("X-RateLimit-Limit") != strconv.Itoa(limit) || r.Header.Get("X-RateLimit-Remaining") != strconv.Itoa(limit-1-i) {
			t.Fatalf("request %d: %d, limit %q remaining %q", i+1, r.Status, r.Header.Get("X-RateLimit-Limit"), r.Header.Get("X-RateLimit-Remaining"))
		}
		reset, _ := strconv.ParseInt(r.Header.Get("X-RateLimit-Reset"), 10, 64)
		if reset < time.Now().Unix() || reset > time.Now().Add(61*time.Second).Unix() {
			t.Fatalf("X-RateLimit-Reset %d is not a Unix time within the minute", reset)
		}
	}
	// Spent on both replicas, whatever the caller claims to be.
	for i, hdr := range [][]string{nil, {"X-Forwarded-For", "203.0.113.7"}, {"X-Forwarded-For", "10.0.0.1", "X-Real-Ip", "10.0.0.2"}} {
		r := replicas[i%2].do("GET", "/debug/auth", tok, nil, hdr...)
		wantError(t, r, 429, "RATE_LIMITED")
		if ra, _ := strconv.Atoi(r.Header.Get("Retry-After")); ra < 1 || ra > 3 {
			t.Fatalf("Retry-After %q; want 1 to 3 seconds", r.Header.Get("Retry-After"))
		}
		if r.Header.Get("X-RateLimit-Remaining") != "0" {
			t.Fatalf("429 with X-RateLimit-Remaining %q", r.Header.Get("X-RateLimit-Remaining"))
		}
	}
	// Naming another tenant in x-tenantid is refused, not a fresh budget.
	wantError(t, replicas[0].do("GET", "/debug/auth", tok, nil, "X-Tenantid", other), 403, "TENANT_MISMATCH")
	// Another tenant is unaffected, on both replicas.
	for _, a := range replicas {
		if r := a.do("GET", "/debug/auth", otherTok, nil); r.Status != 200 || r.Header.Get("X-RateLimit-Limit") != "1000" {
			t.Fatalf("other tenant: %d limit %q", r.Status, r.Header.Get("X-RateLimit-Limit"))
		}
	}
	// Retry-After is honest: after waiting it, a request goes through.
	r := replicas[0].do("GET", "/debug/auth", tok, nil)
	wait, _ := strconv.Atoi(r.Header.Get("Retry-After"))
	time.Sleep(time.Duration(wait) * time.Second)
	if r := replicas[1].do("GET", "/debug/auth", tok, nil); r.Status != 200 {
		t.Fatalf("after Retry-After (%ds): %d %s", wait, r.Status, r.Raw)
	}
	m := scrape(t, replicas[0])
	if v := m.value("credgate_rate_limited_total", "tenant", ten); v < 1 {
		t.Fatalf("credgate_rate_limited_total{tenant=%q} = %v", ten, v)
	}
}

func TestRateLimitFailsOpenWhenRedisIsDown(t *testing.T) {
	a := newAPI(t, apiOptions{rateLimit: httpapi.RateLimit{Store: redisStore(t, "127.0.0.1:1"), Default: 1}})
	tok := token(t, "fo", tenant(t), "integration_viewer")
	for range 3 {
		if r := a.do("GET", "/debug/auth", tok, nil); r.Status != 200 || r.Header.Get("X-RateLimit-Limit") != "" {
			t.Fatalf("with Redis down: %d, limit header %q; want 200 without limit headers", r.Status, r.Header.Get("X-RateLimit-Limit"))
		}
	}
	if v := scrape(t, a).value("credgate_rate_limit_store_errors_total"); v != 3 {
		t.Fatalf("credgate_rate_limit_store_errors_total = %v; want 3", v)
	}
}

// TestRateLimitCanRefuseWhenRedisIsDown: rate_limit.on_store_error: deny
// refuses what the store gave no answer for, as an outage (503 with
// Retry-After), and through the breaker it stops asking a down Redis.
func TestRateLimitCanRefuseWhenRedisIsDown(t *testing.T) {
	st := ratelimit.NewBreaker(redisStore(t, "127.0.0.1:1"), ratelimit.BreakerOptions{})
	a := newAPI(t, apiOptions{rateLimit: httpapi.RateLimit{Store: st, Default: 100, DenyOnStoreError: true}})
	tok := token(t, "fd", tenant(t), "integration_viewer")
	for range 5 {
		r := a.do("GET", "/debug/auth", tok, nil)
		if r.Status != 503 || r.Header.Get("Retry-After") == "" || !strings.Contains(string(r.Raw), "rate limiter") {
			t.Fatalf("with Redis down and deny: %d %s", r.Status, r.Raw)
		}
	}
	if st.State() != "open" {
		t.Fatalf("breaker %s after 5 failures", st.State())
	}
}

func TestInMemoryRateLimitIsTheDefault(t *testing.T) {
	ten := tenant(t)
	a := newAPI(t, apiOptions{rateLimit: httpapi.RateLimit{Default: 2}})
	tok := token(t, "mem", ten, "integration_viewer")
	a.do("GET", "/debug/auth", tok, nil)
	a.do("GET", "/api/v1/services", tok, nil)
	wantError(t, a.do("GET", "/api/v1/services", tok, nil), 429, "RATE_LIMITED")
	if r := a.do("GET", "/healthz", "", nil); r.Status != 200 || r.Header.Get("X-RateLimit-Limit") != "" {
		t.Fatal("unauthenticated operations routes are not limited")
	}
	if v := scrape(t, a).value("credgate_rate_limited_total", "tenant", "other"); v != 1 {
		t.Fatalf("an unnamed tenant's refusal counts as other: %v", v)
	}
}

func TestMetricsShowTheSeries(t *testing.T) {
	a := newAPI(t, apiOptions{})
	tok, _ := adminWithService(t, a, "metrics-svc")
	for range 3 {
		a.do("GET", "/api/v1/services/metrics-svc", tok, nil)
	}
	a.do("GET", "/api/v1/services/missing", tok, nil)
	key := secret("metric-secret-" + randHex(8))
	a.mustCreateCredential(tok, map[string]any{"integrationId": "metrics-svc", "credentialName": "m", "authType": "api_key", "apiKey": key})
	a.do("GET", "/api/v1/credentials/metrics-svc", tok, nil)
	m := scrape(t, a)
	checks := []struct {
		name   string
		labels []string
		min    float64
	}{
		{"credgate_http_requests_total", []string{"route", "/api/v1/services/:id", "method", "GET", "status", "200"}, 3},
		{"credgate_http_requests_total", []string{"route", "/api/v1/services/:id", "method", "GET", "status", "404"}, 1},
		{"credgate_http_request_duration_seconds_count", []string{"route", "/api/v1/credentials/:id", "method", "GET"}, 1},
		{"credgate_vault_request_duration_seconds_count", []string{"operation", "service_read"}, 4},
		{"credgate_vault_request_duration_seconds_count", []string{"operation", "credential_read"}, 1},
		{"credgate_vault_token_cache_total", []string{"result", "miss"}, 1},
		{"credgate_vault_token_cache_total", []string{"result", "hit"}, 5},
		{"credgate_verified_token_cache_total", []string{"result", "hit"}, 5},
		{"credgate_jwks_fetches_total", []string{"issuer", s.idp.IssuerURL, "result", "ok"}, 1},
	}
	for _, c := range checks {
		if v := m.value(c.name, c.labels...); v < c.min {
			t.Errorf("%s%v = %v; want at least %v", c.name, c.labels, v, c.min)
		}
	}
	if strings.Contains(m.raw, key) || strings.Contains(m.raw, tok) || strings.Contains(m.raw, "missing") {
		t.Fatal("/metrics holds a secret, a token or a raw path")
	}
}

type scraped struct {
	raw     string
	samples map[string][]sample
}

type sample struct {
	labels map[string]string
	value  float64
}

// scrape reads /metrics with Prometheus's own text parser.
func scrape(t *testing.T, a *testAPI) scraped {
	t.Helper()
	r := a.do("GET", "/metrics", "", nil)
	if r.Status != 200 {
		t.Fatalf("/metrics: %d", r.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(r.Raw))
	if err != nil {
		t.Fatal(err)
	}
	out := scraped{raw: string(r.Raw), samples: map[string][]sample{}}
	for name, f := range fams {
		for _, m := range f.Metric {
			labels := map[string]string{}
			for _, l := range m.Label {
				labels[l.GetName()] = l.GetValue()
			}
			switch {
			case m.Counter != nil:
				out.samples[name] = append(out.samples[name], sample{labels, m.Counter.GetValue()})
			case m.Histogram != nil:
				out.samples[name+"_count"] = append(out.samples[name+"_count"], sample{labels, float64(m.Histogram.GetSampleCount())})
			case m.Gauge != nil:
				out.samples[name] = append(out.samples[name], sample{labels, m.Gauge.GetValue()})
			}
		}
	}
	return out
}

// value sums the samples of name whose labels include kv (name, value...).
func (s scraped) value(name string, kv ...string) float64 {
	total := 0.0
	for _, smp := range s.samples[name] {
		match := true
		for i := 0; i+1 < len(kv); i += 2 {
			if smp.labels[kv[i]] != kv[i+1] {
				match = false
			}
		}
		if match {
			total += smp.value
		}
	}
	return total
}

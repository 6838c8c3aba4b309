package httpapi

import (
	"context"
	"math"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/httpapi/ratelimit"
)

// Limiter is a rate-limit store (ratelimit.Memory, ratelimit.Redis). A
// store that asks a server bounds the question itself.
type Limiter interface {
	Allow(ctx context.Context, key string, limit int) (ratelimit.Decision, error)
}

// RateLimit configures the per-tenant limit.
type RateLimit struct {
	Store   Limiter        // default: in memory
	Default int            // requests per minute; default 100
	Tenants map[string]int // per-tenant overrides
	// DenyOnStoreError refuses a request the store gave no answer for
	// (503 BACKEND_UNAVAILABLE with Retry-After); by default it goes
	// through (fail open).
	DenyOnStoreError bool
}

// DefaultRateLimit is the default per-tenant limit (requests per minute).
const DefaultRateLimit = 100

// rateLimit spends one request of the verified tenant's budget. The key is
// the tenant of the token, never a header or an address. When the store
// cannot be asked (Redis down, or its breaker open), the request goes
// through by default: an outage of the limiter must not become an outage
// of the secrets; credgate_rate_limit_store_errors_total counts it (the
// store's breaker logs its changes of state, never a line per request).
// With DenyOnStoreError it is refused instead.
func rateLimit(rl RateLimit, m *Metrics) gin.HandlerFunc {
	return func(c *gin.Context) {
		tenant := credgate.PrincipalFrom(c.Request.Context()).Tenant
		limit := rl.Default
		if n, ok := rl.Tenants[tenant]; ok {
			limit = n
		}
		d, err := rl.Store.Allow(c.Request.Context(), "credgate:ratelimit:"+tenant, limit)
		if err != nil {
			m.rateLimitErrs.Inc()
			if rl.DenyOnStoreError {
				fail(c, &credgate.Error{Code: credgate.EBackendUnavailable, Message: "the rate limiter is unavailable; retry later", Err: err})
				return
			}
			c.Next()
			return
		}
		h := c.Writer.Header()
		h.Set("X-RateLimit-Limit", strconv.Itoa(d.Limit))
		h.Set("X-RateLimit-Remaining", strconv.Itoa(d.Remaining))
		h.Set("X-RateLimit-Reset", strconv.FormatInt(time.Now().Add(d.ResetAfter).Unix(), 10))
		if !d.Allowed {
			m.limited(tenant)
			h.Set("Retry-After", strconv.Itoa(int(math.Ceil(d.RetryAfter.Seconds()))))
			fail(c, credgate.Errorf(credgate.ERateLimited, "the tenant's limit of %d requests per minute is spent; retry later", d.Limit))
			return
		}
		c.Next()
	}
}

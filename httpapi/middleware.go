package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/internal/deadline"
)

// HeaderTenant, when sent, must name the caller's own tenant.
const HeaderTenant = "X-Tenantid"

// HeaderRealm selects the issuer that verifies the token.
const HeaderRealm = "Realmname"

// saneRequestID reports whether a caller's request id may be kept: 1 to
// 128 of [A-Za-z0-9._:-].
func saneRequestID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

// requestDeadline bounds the whole request: every Vault call, wait and retry it
// makes ends at d, and what did not finish is answered 503
// BACKEND_UNAVAILABLE with Retry-After (the store's answer to a context
// that ended), so a slow Vault gives fast, honest failures instead of
// requests that pile up.
//
// A write is not cut short by its client going away: a client that gave up
// (its timeout, a dropped connection) would otherwise leave a change half
// made; it finishes within the deadline, and a retry with an
// Idempotency-Key gets its answer. A read ends with its client.
func requestDeadline(d time.Duration) gin.HandlerFunc {
	return func(c *gin.Context) {
		base := c.Request.Context()
		if m := c.Request.Method; m != http.MethodGet && m != http.MethodHead && m != http.MethodOptions {
			base = context.WithoutCancel(base)
		}
		ctx, cancel := deadline.Within(base, d) // its timer armed only if something waits on it
		defer cancel()
		c.Request = c.Request.WithContext(ctx)
		c.Next()
	}
}

// requestID keeps the caller's X-Request-Id when it is sane, else makes one.
func requestID() gin.HandlerFunc {
	return func(c *gin.Context) {
		id := c.GetHeader(credgate.RequestIDHeader)
		if !saneRequestID(id) {
			id = uuid.NewString()
		}
		c.Header(credgate.RequestIDHeader, id)
		c.Request = c.Request.WithContext(credgate.WithRequestID(c.Request.Context(), id))
		c.Next()
	}
}

// accessLog renders the error a handler recorded, then writes one log line
// per request and records its metrics. It never logs a header value, a
// body or a token.
func accessLog(log *zap.Logger, m *Metrics) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		var err error
		if len(c.Errors) > 0 {
			err = c.Errors.Last().Err
			if !c.Writer.Written() {
				writeError(c, err)
			}
		}
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		m.request(route, c.Request.Method, c.Writer.Status(), time.Since(start))
		fields := make([]zap.Field, 0, 10)
		fields = append(fields,
			zap.String("method", c.Request.Method),
			zap.String("route", route),
			zap.Int("status", c.Writer.Status()),
			zap.Duration("latency", time.Since(start)),
			zap.String("request_id", credgate.RequestIDFrom(c.Request.Context())),
			zap.String("client_ip", c.ClientIP()),
		)
		if p := credgate.PrincipalFrom(c.Request.Context()); p != nil {
			fields = append(fields, zap.String("tenant", p.Tenant), zap.String("subject", p.Subject))
		}
		if integration, credential := loggedIDs(c, route); integration != "" || credential != "" {
			fields = append(fields, zap.String("integration_id", integration), zap.String("credential_id", credential))
		}
		if err != nil {
			code := credgate.ErrorCode(err)
			fields = append(fields, zap.String("code", code))
			if code == credgate.EInternal || code == credgate.EBackendUnavailable {
				// The cause is for operators; it never carries secret values
				// (store errors name paths and Vault's status, nothing more).
				fields = append(fields, zap.String("cause", err.Error()))
			}
		}
		switch {
		case c.Writer.Status() >= 500:
			log.Error("request", fields...)
		default:
			log.Info("request", fields...)
		}
	}
}

// answeredKey is where a credentials-family answer leaves the credential
// view it carried, for the access log to name (ids only).
const answeredKey = "credgate.answered"

// loggedIDs is what the access log names: the integration and credential
// of the credential an answer carried, else the ids of the route, when
// valid.
func loggedIDs(c *gin.Context, route string) (integration, credential string) {
	if v, ok := c.Get(answeredKey); ok {
		view := v.(*credentialView)
		return view.IntegrationID, view.ID
	}
	id := c.Param("id")
	names := familyOf(route).logs
	if route == "/api/v1/credentials/:id" && c.Request.Method == http.MethodGet {
		names = "integration" // the one credentials route whose :id is the integration
	}
	switch {
	case id == "":
	case names == "integration" && credgate.ValidID(id):
		integration = id
	case names == "credential":
		credential, _ = credgate.CanonicalCredentialID(id)
	}
	if integration == "" && route == "/api/v1/credentials" {
		if v := c.Query("integrationId"); credgate.ValidID(v) {
			integration = v
		}
	}
	return integration, credential
}

// recovery turns a panic into INTERNAL_ERROR; the panic value goes to the
// log through the error, never to the client.
func recovery() gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler {
					panic(r)
				}
				fail(c, &credgate.Error{Code: credgate.EInternal, Message: "internal error", Err: fmt.Errorf("panic: %v", r)})
			}
		}()
		c.Next()
	}
}

// bodyLimit refuses bodies over max with PAYLOAD_TOO_LARGE.
func bodyLimit(max int64) gin.HandlerFunc {
	return func(c *gin.Context) {
		if c.Request.ContentLength > max {
			fail(c, credgate.Errorf(credgate.EPayloadTooLarge, "request body is larger than %d bytes", max))
			return
		}
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, max)
		c.Next()
	}
}

// bearerError is the context key of the RFC 6750 error code a 401 names
// in its WWW-Authenticate challenge: "invalid_token" unless authenticate
// said otherwise.
const bearerError = "credgate.bearer_error"

// authenticate verifies the bearer token and puts the principal in the
// request context. Nothing past it runs for an unverified caller.
func authenticate(a Authenticator) gin.HandlerFunc {
	return func(c *gin.Context) {
		token, bearer := bearerToken(c)
		switch {
		case !bearer:
			// No bearer credentials at all: the challenge names no error
			// (RFC 6750 3.1).
			c.Set(bearerError, "")
			fail(c, credgate.Errorf(credgate.EUnauthorized, "a bearer token is required"))
			return
		case token == "":
			c.Set(bearerError, "invalid_request")
			fail(c, credgate.Errorf(credgate.EUnauthorized, "the bearer token is empty"))
			return
		}
		p, err := a.Verify(c.Request.Context(), token, c.GetHeader(HeaderRealm))
		if err != nil {
			fail(c, err)
			return
		}
		c.Request = c.Request.WithContext(credgate.WithPrincipal(c.Request.Context(), p))
		c.Next()
	}
}

// bearerToken is the token of the request's bearer credentials, trimmed;
// bearer is false when it carries none.
func bearerToken(c *gin.Context) (token string, bearer bool) {
	h := c.GetHeader("Authorization")
	scheme, token, _ := strings.Cut(h, " ")
	if h == "" || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimSpace(token), true
}

// queryCheck refuses a query string that does not parse: Go's parser drops
// malformed pairs, so a mangled cursor would otherwise read the first page.
func queryCheck() gin.HandlerFunc {
	return func(c *gin.Context) {
		if _, err := url.ParseQuery(c.Request.URL.RawQuery); err != nil {
			fail(c, credgate.Errorf(familyOf(c.Request.URL.Path).badID.Code, "the query string is malformed (bad percent-encoding or separator)"))
			return
		}
		c.Next()
	}
}

// tenantCheck refuses an x-tenantid that names another tenant than the
// token's.
func tenantCheck() gin.HandlerFunc {
	return func(c *gin.Context) {
		if t := c.GetHeader(HeaderTenant); t != "" && t != credgate.PrincipalFrom(c.Request.Context()).Tenant {
			fail(c, credgate.Errorf(credgate.ETenantMismatch, "x-tenantid does not match the tenant of the token"))
			return
		}
		c.Next()
	}
}

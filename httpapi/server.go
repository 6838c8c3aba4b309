package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/httpapi/ratelimit"
	"github.com/credgate/credgate/policy"
)

// ServiceStore is what the services family needs of a store. The principal
// and request id travel in the context.
type ServiceStore interface {
	GetService(ctx context.Context, id string) (*credgate.Service, error)
	ListServices(ctx context.Context, f credgate.ServiceFilter) (*credgate.ServicePage, error)
	CreateService(ctx context.Context, svc *credgate.Service) (*credgate.Service, error)
	UpdateService(ctx context.Context, id string, fn func(*credgate.Service) error) (*credgate.Service, error)
	DeleteService(ctx context.Context, id string, ifMatch int) error
}

// Authenticator verifies a bearer token; realm is the realmname header.
type Authenticator interface {
	Verify(ctx context.Context, token, realm string) (*credgate.Principal, error)
}

// ReadyCheck is one condition of /readyz.
type ReadyCheck struct {
	Name  string
	Check func(context.Context) error
}

// Options configures the handler.
type Options struct {
	Store       ServiceStore
	Credentials CredentialStore
	Rotator     Rotator
	Access      AccessRecorder // optional
	// TokenClient makes the OAuth2 refresh-token grants of rotation;
	// default NewTokenEndpointClient().
	TokenClient *http.Client
	Auth        Authenticator
	Logger      *zap.Logger
	Ready       []ReadyCheck
	// TrustedProxies are the proxies whose X-Forwarded-For is believed for
	// the client address in the access log; none by default.
	TrustedProxies []string
	// MaxBodyBytes bounds request bodies; default 1 MiB.
	MaxBodyBytes int64
	RateLimit    RateLimit
	// Metrics, when set, are recorded and served at /metrics.
	Metrics *Metrics
}

// DefaultMaxBodyBytes is the default request body limit.
const DefaultMaxBodyBytes = 1 << 20

// New returns the HTTP handler of the API.
func New(o Options) (http.Handler, error) {
	if o.Store == nil || o.Credentials == nil || o.Rotator == nil || o.Auth == nil || o.Logger == nil {
		return nil, errors.New("httpapi: Store, Credentials, Rotator, Auth and Logger are required")
	}
	if o.TokenClient == nil {
		o.TokenClient = NewTokenEndpointClient()
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	if o.RateLimit.Default <= 0 {
		o.RateLimit.Default = DefaultRateLimit
	}
	if o.RateLimit.Store == nil {
		o.RateLimit.Store = ratelimit.NewMemory(100000, nil)
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	// Match on the escaped path so that an id holding %2F stays one path
	// segment and is refused by id validation instead of routing elsewhere;
	// never redirect, so /services/ is a malformed id, not the list.
	r.UseRawPath = true
	r.UnescapePathValues = true
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	if err := r.SetTrustedProxies(o.TrustedProxies); err != nil {
		return nil, err
	}
	r.Use(requestID(), accessLog(o.Logger, o.Metrics), recovery(), bodyLimit(o.MaxBodyBytes))

	r.GET("/metrics", gin.WrapH(o.Metrics.Handler()))
	if err := docsRoutes(r); err != nil {
		return nil, err
	}
	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.GET("/readyz", readyz(o.Ready, o.Logger))

	h := &handlers{store: o.Store, creds: o.Credentials, rotator: o.Rotator, access: o.Access, grant: refreshGrant(o.TokenClient)}
	authed := r.Group("", authenticate(o.Auth), tenantCheck(), rateLimit(o.RateLimit, o.Metrics, o.Logger))
	authed.GET("/debug/auth", debugAuth)

	svc := authed.Group("/api/v1/services")
	svc.GET("", require(policy.ServicesRead), h.listServices)
	svc.POST("", require(policy.ServicesWrite), h.createService)
	svc.GET("/:id", require(policy.ServicesRead), h.getService)
	svc.PUT("/:id", require(policy.ServicesWrite), h.putService)
	svc.PATCH("/:id", require(policy.ServicesWrite), h.patchService)
	svc.DELETE("/:id", require(policy.ServicesWrite), h.deleteService)
	svc.GET("/:id/credentials", require(policy.CredentialsRead), h.getServiceCredentials)
	svc.PUT("/:id/credentials", require(policy.CredentialsWrite), h.putServiceCredentials)
	svc.GET("/:id/credentials/versions", require(policy.CredentialsMetaRead), h.serviceCredentialVersions)

	cred := authed.Group("/api/v1/credentials")
	cred.GET("", require(policy.CredentialsMetaRead), h.listCredentials)
	cred.POST("", require(policy.CredentialsWrite), h.createCredential)
	cred.GET("/:id", require(policy.CredentialsRead), h.getCredential) // :id is the integrationId here
	cred.PATCH("/:id", require(policy.CredentialsWrite), h.patchCredential)
	cred.DELETE("/:id", require(policy.CredentialsWrite), h.deleteCredential)
	cred.GET("/:id/versions", require(policy.CredentialsMetaRead), h.credentialVersions)
	cred.POST("/:id/rotate", require(policy.CredentialsWrite), h.rotateCredential)

	r.NoRoute(func(c *gin.Context) {
		switch p := c.Request.URL.Path; {
		case strings.HasPrefix(p, "/api/v1/services/"):
			// Only a malformed id (empty, or holding a slash) reaches here.
			fail(c, credgate.Errorf(credgate.EInvalidRequest, "malformed service id in the path"))
			return
		case strings.HasPrefix(p, "/api/v1/credentials/"):
			fail(c, credgate.Errorf(credgate.EInvalidParameter, "malformed id in the path"))
			return
		}
		fail(c, credgate.Errorf(credgate.ENotFound, "no such route"))
	})
	return r, nil
}

type handlers struct {
	store   ServiceStore
	creds   CredentialStore
	rotator Rotator
	access  AccessRecorder
	grant   credgate.RefreshGrant
}

package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/credgate/credgate"
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
	Store  ServiceStore
	Auth   Authenticator
	Logger *zap.Logger
	Ready  []ReadyCheck
	// TrustedProxies are the proxies whose X-Forwarded-For is believed for
	// the client address in the access log; none by default.
	TrustedProxies []string
	// MaxBodyBytes bounds request bodies; default 1 MiB.
	MaxBodyBytes int64
}

// DefaultMaxBodyBytes is the default request body limit.
const DefaultMaxBodyBytes = 1 << 20

// New returns the HTTP handler of the API.
func New(o Options) (http.Handler, error) {
	if o.Store == nil || o.Auth == nil || o.Logger == nil {
		return nil, errors.New("httpapi: Store, Auth and Logger are required")
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
	r.Use(requestID(), accessLog(o.Logger), recovery(), bodyLimit(o.MaxBodyBytes))

	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.GET("/readyz", readyz(o.Ready, o.Logger))

	h := &handlers{store: o.Store}
	authed := r.Group("", authenticate(o.Auth), tenantCheck())
	authed.GET("/debug/auth", debugAuth)

	svc := authed.Group("/api/v1/services")
	svc.GET("", require(policy.ServicesRead), h.listServices)
	svc.POST("", require(policy.ServicesWrite), h.createService)
	svc.GET("/:id", require(policy.ServicesRead), h.getService)
	svc.PUT("/:id", require(policy.ServicesWrite), h.putService)
	svc.PATCH("/:id", require(policy.ServicesWrite), h.patchService)
	svc.DELETE("/:id", require(policy.ServicesWrite), h.deleteService)

	r.NoRoute(func(c *gin.Context) {
		if strings.HasPrefix(c.Request.URL.Path, "/api/v1/services/") {
			// Only a malformed id (empty, or holding a slash) reaches here.
			fail(c, credgate.Errorf(credgate.EInvalidRequest, "malformed service id in the path"))
			return
		}
		fail(c, credgate.Errorf(credgate.ENotFound, "no such route"))
	})
	return r, nil
}

type handlers struct {
	store ServiceStore
}

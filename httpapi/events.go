package httpapi

import (
	"context"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/policy"
)

// EventPublisher publishes what happened to credentials to the tenant's
// webhooks (webhook.Dispatcher).
type EventPublisher interface {
	Publish(ctx context.Context, e credgate.Event) error
}

// publish tells the tenant's webhooks that typ happened to cr. The change
// is made already, so a failure to publish is logged, never answered.
func (h *handlers) publish(c *gin.Context, typ string, cr *credgate.Credential) {
	if h.events == nil {
		return
	}
	h.send(c, credgate.NewEvent(c.Request.Context(), typ, cr))
}

func (h *handlers) send(c *gin.Context, e credgate.Event) {
	if err := h.events.Publish(context.WithoutCancel(c.Request.Context()), e); err != nil {
		h.log.Warn("publishing an event failed", zap.String("event", e.Type), zap.String("request_id", e.Data.RequestID), zap.Error(err))
	}
}

// denied publishes credential.access_denied: the caller was refused the
// values of the credential of service (cred, or its primary one).
func (h *handlers) denied(c *gin.Context, service, cred, why string) {
	if h.events == nil {
		return
	}
	e := credgate.NewEvent(c.Request.Context(), credgate.EventAccessDenied, nil)
	e.Data.IntegrationID, e.Data.Reason = service, why
	if id, ok := credgate.CanonicalCredentialID(cred); ok {
		e.Data.CredentialID = id
	}
	h.send(c, e)
}

// requireValues is require(policy.CredentialsRead) for the routes that
// answer values (:id is the service): a refusal is also an event.
func (h *handlers) requireValues() gin.HandlerFunc {
	check := require(policy.CredentialsRead)
	return func(c *gin.Context) {
		check(c)
		if c.IsAborted() && credgate.ValidID(c.Param("id")) { // refused: the answer is written later
			h.denied(c, c.Param("id"), c.Query("credentialId"), "the caller's roles do not grant "+string(policy.CredentialsRead))
		}
	}
}

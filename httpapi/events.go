package httpapi

import (
	"context"
	"time"

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

// send publishes e, trying again twice (the change it tells of is made:
// a brief Vault hiccup should not lose the event); what still fails is
// logged.
func (h *handlers) send(c *gin.Context, e credgate.Event) {
	ctx := context.WithoutCancel(c.Request.Context())
	var err error
	for attempt := range 3 {
		if attempt > 0 {
			time.Sleep(time.Duration(attempt) * 200 * time.Millisecond)
		}
		if err = h.events.Publish(ctx, e); err == nil {
			return
		}
	}
	h.log.Warn("publishing an event failed; the change stands, the event is lost", zap.String("event", e.Type), zap.String("request_id", e.Data.RequestID), zap.Error(err))
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
// answer values (:id is the service). A refusal is also an event, and is
// put to Vault: the read is made with the caller's token, which Vault
// refuses too, so that Vault's audit log, the record of who read what,
// holds the attempt (credgate audit shows it as denied). The answer is
// credgate's own 403 either way.
func (h *handlers) requireValues() gin.HandlerFunc {
	check := require(policy.CredentialsRead)
	return func(c *gin.Context) {
		check(c)
		service := c.Param("id")
		if !c.IsAborted() || !credgate.ValidID(service) { // refused: the answer is written later
			return
		}
		cred, _ := credgate.CanonicalCredentialID(c.Query("credentialId"))
		if _, err := h.creds.GetCredential(c.Request.Context(), service, cred, 0); err == nil {
			// Vault served what credgate's roles refuse: the two
			// definitions disagree. The answer stays a refusal.
			h.log.Error("Vault allowed a read credgate's roles refuse", zap.String("integration_id", service))
		}
		h.denied(c, service, cred, "the caller's roles do not grant "+string(policy.CredentialsRead))
	}
}

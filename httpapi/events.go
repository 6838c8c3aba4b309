package httpapi

import (
	"context"

	"github.com/credgate/credgate"
)

// EventPublisher tells the tenant's webhooks what happened to credentials
// (webhook.Dispatcher). Announce is for changes already made: it never
// makes the request wait, and keeps trying (or logs the loss) itself.
type EventPublisher interface {
	Announce(ctx context.Context, e credgate.Event)
}

// publish announces that typ happened to cr, caused by the caller in ctx.
func (h *handlers) publish(ctx context.Context, typ string, cr *credgate.Credential) {
	if h.events != nil {
		h.events.Announce(ctx, credgate.NewEvent(ctx, typ, cr))
	}
}

// denied announces credential.access_denied: the caller in ctx was refused
// the values of the credential of service (cred, or its primary one).
func (h *handlers) denied(ctx context.Context, service, cred, why string) {
	if h.events == nil {
		return
	}
	e := credgate.NewEvent(ctx, credgate.EventAccessDenied, nil)
	e.Data.IntegrationID, e.Data.Reason = service, why
	if id, ok := credgate.CanonicalCredentialID(cred); ok {
		e.Data.CredentialID = id
	}
	h.events.Announce(ctx, e)
}

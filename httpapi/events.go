package httpapi

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/credgate/credgate"
)

// EventPublisher tells the tenant's webhooks what happened to credentials
// (webhook.Dispatcher). Intend records the events of a change before the
// change is made, so that a change that stands is always announced;
// Announce is for what is no change (a refused read): it never makes the
// request wait, and keeps trying (or logs the loss) itself.
type EventPublisher interface {
	Announce(ctx context.Context, e credgate.Event)
	Intend(ctx context.Context, events ...credgate.Event) (credgate.Intent, error)
}

// announcing is the events of one change, recorded before it.
type announcing struct {
	in credgate.Intent // nil: nobody is told anything
}

// intend records that a change of cr (its id; its integration when known)
// is about to be made, which may be each of types, and returns the
// context to make it with. Errors: the store's; the change must then not
// be made, since it could not be announced.
func (h *handlers) intend(ctx context.Context, cr *credgate.Credential, types ...string) (context.Context, *announcing, error) {
	if h.events == nil {
		return ctx, &announcing{}, nil
	}
	evs := make([]credgate.Event, 0, len(types))
	for _, t := range types {
		evs = append(evs, credgate.NewEvent(ctx, t, cr))
	}
	in, err := h.events.Intend(ctx, evs...)
	if err != nil {
		return ctx, nil, err
	}
	return in.Context(ctx), &announcing{in}, nil
}

// happened sends the event of typ about out, the credential as the change
// left it.
func (a *announcing) happened(ctx context.Context, typ string, out *credgate.Credential) {
	if a.in != nil {
		a.in.Confirm(ctx, credgate.NewEvent(ctx, typ, out))
	}
}

// done ends the change: what did not happen is withdrawn, unless err says
// the outcome is unknown (Vault failed or went away while the change was
// being written); then the sweep settles it from the record.
func (a *announcing) done(ctx context.Context, err error) {
	if a.in == nil {
		return
	}
	switch credgate.ErrorCode(err) {
	case credgate.EBackendUnavailable, credgate.EInternal:
		return
	}
	if err != nil && ctx.Err() != nil {
		return
	}
	a.in.Withdraw(ctx)
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

// revokedRead announces credential.revoked_read when err says the caller
// in ctx asked for the values of a revoked credential (or a migration's
// revoked previous version) of service: something still runs on a key
// that was taken away. Once per credential, principal and hour on a
// replica.
func (h *handlers) revokedRead(ctx context.Context, service, cred string, err error) {
	var ce *credgate.Error
	if h.events == nil || !errors.As(err, &ce) || ce.Status != credgate.CredRevoked {
		return
	}
	p := credgate.PrincipalFrom(ctx)
	hour := time.Now().UTC().Truncate(time.Hour)
	key := strings.Join([]string{p.Tenant, cred, service, p.Issuer, p.Subject, hour.Format(time.RFC3339)}, "\x00")
	if seen, _ := h.revokedReads.ContainsOrAdd(key, true); seen {
		return
	}
	e := credgate.NewEvent(ctx, credgate.EventRevokedRead, nil)
	e.Data.IntegrationID, e.Data.Reason = service, ce.Message
	if id, ok := credgate.CanonicalCredentialID(cred); ok {
		e.Data.CredentialID = id
	}
	e.Data.Readers = []credgate.EventReader{{Subject: p.Subject, Name: p.Name, Email: p.Email, LastRead: time.Now().UTC()}}
	h.events.Announce(ctx, e)
}

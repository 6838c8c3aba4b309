package credgate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/google/uuid"
)

// Event types: what credgate tells a tenant's webhooks about its
// credentials. An event names tenant, integration, credential, actor and
// request id, never a value.
const (
	EventCreated       = "credential.created"
	EventRotated       = "credential.rotated"
	EventRefreshed     = "credential.refreshed"
	EventRefreshFailed = "credential.refresh_failed"
	EventRevoked       = "credential.revoked"
	EventDeleted       = "credential.deleted"
	EventExpiring      = "credential.expiring"
	EventExpired       = "credential.expired"
	EventAccessDenied  = "credential.access_denied"
	EventGrantCreated  = "grant.created"
	EventGrantDeleted  = "grant.deleted"
	EventGrantExpired  = "grant.expired"
	// EventWebhookDisabled tells a tenant's other subscriptions that
	// credgate disabled one whose receiver kept failing or answered 410.
	EventWebhookDisabled = "webhook.disabled"
	// EventMigrationStalled names, a day before a rotation's
	// previousRevokeAt, the readers still on the previous version.
	EventMigrationStalled = "credential.migration_stalled"
	// EventRotationDue: a credential's rotation policy says it is due
	// (once per due date); EventRotationOverdue: it is still not rotated
	// the overdue period later.
	EventRotationDue     = "credential.rotation_due"
	EventRotationOverdue = "credential.rotation_overdue"
	// EventRotationFailed: a rotation through a rotator failed (a step
	// refused, or its attempts spent); the current values still serve.
	EventRotationFailed = "credential.rotation_failed"
)

// EventTypes lists the event types.
var EventTypes = []string{EventCreated, EventRotated, EventRefreshed, EventRefreshFailed, EventRevoked, EventDeleted, EventExpiring, EventExpired, EventAccessDenied,
	EventGrantCreated, EventGrantDeleted, EventGrantExpired, EventWebhookDisabled, EventMigrationStalled,
	EventRotationDue, EventRotationOverdue, EventRotationFailed,
	EventConnected, EventConnectionBroken, EventConnectionRestored,
	EventNewReader, EventReadSpike, EventBroadRead, EventRevokedRead}

// SystemSubject is the actor of what credgate does by itself (refresh,
// scheduled revocation, expiry notices); it is also the subject Vault's
// audit log names for the monitor's calls.
const SystemSubject = "credgate"

// Event is one thing that happened to a credential, in the shape of the
// Standard Webhooks payload: {"type", "timestamp", "data"}. ID is the
// webhook-id of every delivery of it, so a receiver can drop a repeat.
type Event struct {
	ID        string    `json:"id"`
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Data      EventData `json:"data"`
}

// EventData names what the event is about. It never holds a secret value.
type EventData struct {
	Tenant        string     `json:"tenant"`
	IntegrationID string     `json:"integrationId,omitempty"`
	CredentialID  string     `json:"credentialId,omitempty"`
	Actor         EventActor `json:"actor"`
	RequestID     string     `json:"requestId,omitempty"`
	Version       int        `json:"version,omitempty"`
	ExpiresAt     *time.Time `json:"expiresAt,omitempty"`
	// ThresholdDays is the threshold a credential.expiring crossed.
	ThresholdDays int `json:"thresholdDays,omitempty"`
	// Reason says why: the error code of a failed refresh, the refusal
	// of an access, "revokeAt" for a scheduled revocation.
	Reason string `json:"reason,omitempty"`
	// Failures counts the refreshes that failed in a row.
	Failures int `json:"failures,omitempty"`
	// Grant is the grant a grant.* event is about, without secrets (a
	// grant holds none).
	Grant *Grant `json:"grant,omitempty"`
	// WebhookID is the subscription a webhook.* event is about.
	WebhookID string `json:"webhookId,omitempty"`
	// Readers are the principals an event about a credential's use names
	// (credential.migration_stalled: those still on the previous version).
	Readers []EventReader `json:"readers,omitempty"`
	// Count and Threshold are the numbers that tripped an alert of
	// unusual use, and the threshold they crossed.
	Count     int64   `json:"count,omitempty"`
	Threshold float64 `json:"threshold,omitempty"`
	// RotationDueAt is the due date a rotation notice is about; Rotation
	// the rotation a credential.rotation_failed is about (never a value).
	RotationDueAt *time.Time      `json:"rotationDueAt,omitempty"`
	Rotation      *RotationStatus `json:"rotation,omitempty"`
}

// EventReader is a principal that read a credential, as an event names it.
type EventReader struct {
	Subject     string    `json:"subject"`
	Name        string    `json:"name,omitempty"`
	Email       string    `json:"email,omitempty"`
	LastVersion int       `json:"lastVersion,omitempty"`
	LastRead    time.Time `json:"lastRead"`
}

// EventActor is who caused an event.
type EventActor struct {
	Subject string `json:"subject"`
	Email   string `json:"email,omitempty"`
}

// NewEvent returns an event of typ about c (nil: none) caused by the caller
// in ctx (the principal and request id it carries), with a new id.
func NewEvent(ctx context.Context, typ string, c *Credential) Event {
	e := Event{ID: "evt_" + uuid.NewString(), Type: typ, Timestamp: time.Now().UTC().Truncate(time.Millisecond)}
	if p := PrincipalFrom(ctx); p != nil {
		e.Data.Tenant = p.Tenant
		e.Data.Actor = EventActor{Subject: p.Subject, Email: p.Email}
	}
	e.Data.RequestID = RequestIDFrom(ctx)
	if c != nil {
		e.Data.IntegrationID, e.Data.CredentialID, e.Data.Version = c.IntegrationID, c.ID, c.Version
		e.Data.ExpiresAt = c.ExpiresAt
	}
	return e
}

// NewGrantEvent returns an event of typ about g, caused by the caller in
// ctx.
func NewGrantEvent(ctx context.Context, typ string, g *Grant) Event {
	e := NewEvent(ctx, typ, nil)
	e.Data.Grant = g
	return e
}

// OnceID gives e an id derived from parts, so that the same event
// published twice (by two replicas, or after a restart) is one event: the
// outbox keeps the first.
func (e *Event) OnceID(parts ...string) {
	h := sha256.New()
	h.Write([]byte(e.Data.Tenant))
	for _, p := range parts {
		h.Write([]byte{0})
		h.Write([]byte(p))
	}
	e.ID = "evt_" + hex.EncodeToString(h.Sum(nil)[:16])
}

type changeKey struct{}

// WithChange returns a context whose writes belong to change id: the store
// stamps it into every credential version it writes, so that an event
// recorded for the change before it was made (Outgoing.Pending) can be
// proven from the record afterwards.
func WithChange(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, changeKey{}, id)
}

// ChangeFrom returns the change ctx's writes belong to, or "".
func ChangeFrom(ctx context.Context) string {
	id, _ := ctx.Value(changeKey{}).(string)
	return id
}

// Intent is the announcement of a change, recorded before the change is
// made (webhook.Dispatcher.Intend), so that a change that stands is always
// announced and one that was not made never is: the change is written
// with Context's context, then the events that happened are confirmed and
// the others withdrawn; what neither reaches is settled from the record.
type Intent interface {
	// Context is ctx carrying the change, for its writes.
	Context(ctx context.Context) context.Context
	// Confirm sends the event of final's type as final says.
	Confirm(ctx context.Context, final Event)
	// Withdraw drops the events not confirmed: their change was not made.
	Withdraw(ctx context.Context)
}

// NewChangeID returns a new change id.
func NewChangeID() string { return "chg_" + uuid.NewString() }

// SystemPrincipal is credgate acting by itself in tenant: the monitor's
// refreshes, revocations and notices and the delivery of webhooks go
// through a Vault token minted for it with the tenant's integration_admin
// policy, so Vault still confines it to the tenant and its audit log names
// it.
func SystemPrincipal(tenant string) *Principal {
	return &Principal{Subject: SystemSubject, Name: "credgate monitor", Tenant: tenant, TenantName: tenant, Issuer: "credgate", Roles: []string{"integration_admin"}}
}

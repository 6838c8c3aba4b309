package credgate

import (
	"context"
	"time"

	"github.com/google/uuid"
)

// Principal is a verified caller: who they are, which tenant they act in and
// which credgate roles they hold. It exists only after auth has verified a
// token; nothing in a request can set its fields directly.
type Principal struct {
	Subject string
	Name    string
	Email   string
	Tenant  string
	// TenantName is the tenant's display name: from the token's tenant name
	// claim, else from configuration, else the tenant id.
	TenantName string
	Issuer     string
	// Roles are credgate roles (policy.Role names), already mapped from the
	// identity provider's role names and sorted: tenant-wide.
	Roles []string
	// Groups are the values of the issuer's groups claim, which grants
	// may name.
	Groups []string
	// Grants are the grants in force for this caller in its tenant
	// (ApplicableGrants): roles on named integrations only. They are
	// resolved for each request, never taken from the token.
	Grants []Grant
	// Expiry is when the token that proved this principal expires.
	Expiry time.Time
}

// WithGrants returns a copy of p carrying grants: a principal a verified
// token proved is shared by that token's requests and never changed.
func (p *Principal) WithGrants(grants []Grant) *Principal {
	c := *p
	c.Grants = grants
	return &c
}

// Actor returns the principal as the actor of a change.
func (p *Principal) Actor() Actor {
	return Actor{ID: p.Subject, Name: p.Name, Email: p.Email}
}

// RequestIDHeader carries a request's id: accepted from callers, answered,
// logged, and sent to Vault, whose audit log records it.
const RequestIDHeader = "X-Request-Id"

// CorrelationHeader carries credgate's own id of a request to Vault: made
// by credgate, never by a caller, unique per request, and audited by Vault
// (bootstrap), so that credgate audit groups a request's Vault calls by it
// and never by the X-Request-Id a caller chose.
const CorrelationHeader = "X-Credgate-Request"

type principalKey struct{}
type requestIDKey struct{}

// WithPrincipal returns a context that carries p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal carried by ctx, or nil.
func PrincipalFrom(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}

// requestIDs are a request's two ids: the caller's (or one made for it)
// and credgate's own.
type requestIDs struct{ caller, own string }

// WithRequestID returns a context that carries the request id, and starts
// a request: it carries a new id of credgate's own too (CorrelationFrom).
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, requestIDs{caller: id, own: uuid.NewString()})
}

// RequestIDFrom returns the request id carried by ctx, or "".
func RequestIDFrom(ctx context.Context) string {
	ids, _ := ctx.Value(requestIDKey{}).(requestIDs)
	return ids.caller
}

// CorrelationFrom returns credgate's own id of the request ctx carries, or
// "" outside a request.
func CorrelationFrom(ctx context.Context) string {
	ids, _ := ctx.Value(requestIDKey{}).(requestIDs)
	return ids.own
}

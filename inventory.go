package credgate

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// CredentialFilter selects credentials of a tenant's inventory (GET
// /api/v1/credentials). Zero fields select everything.
type CredentialFilter struct {
	IntegrationID string
	Status        string // the effective status (EffectiveStatus)
	AuthType      string
	ExpiresBefore time.Time // only credentials with an expiresAt before this
	// UnusedSince selects the credentials nobody read since then: read
	// last before it, or never read and created before it (candidates to
	// revoke).
	UnusedSince time.Time
	// RotationDue selects the credentials due for rotation
	// (Credential.RotationIsDue).
	RotationDue bool
	// Connection selects the credentials whose connection is in that
	// state (ConnectionStates).
	Connection string
	After      *CredentialPosition
	Limit      int
	// Visible is ServiceFilter.Visible for the integrations listed.
	Visible func(integration string) bool
	// Walk reads each credential's own description rather than its
	// service's inventory (its base and delta), and corrects the base by
	// what it read: the monitor's rebuild. What a caller lists never
	// walks.
	Walk bool
}

// CredentialPage is one page of the inventory; Next is nil on the last page.
type CredentialPage struct {
	Credentials []*Credential
	Next        *CredentialPosition
}

// Check names the fields of f that select nothing that can exist.
func (f CredentialFilter) Check() FieldErrors {
	fe := FieldErrors{}
	if f.IntegrationID != "" && !ValidID(f.IntegrationID) {
		fe.Add("integrationId", "must be a valid service id")
	}
	if f.Status != "" && !slices.Contains(CredentialStatuses, f.Status) {
		fe.Add("status", "must be one of "+strings.Join(CredentialStatuses, ", "))
	}
	if f.AuthType != "" && !slices.Contains(AuthTypes, f.AuthType) {
		fe.Add("authType", "must be one of "+strings.Join(AuthTypes, ", "))
	}
	if f.Connection != "" && !slices.Contains(ConnectionStates, f.Connection) {
		fe.Add("connection", "must be one of "+strings.Join(ConnectionStates, ", "))
	}
	return fe
}

// Matches reports whether c is selected by f at now (After and Limit
// aside).
func (f CredentialFilter) Matches(c *Credential, now time.Time) bool {
	switch {
	case f.IntegrationID != "" && c.IntegrationID != f.IntegrationID:
		return false
	case f.Status != "" && c.EffectiveStatus(now) != f.Status:
		return false
	case f.AuthType != "" && c.AuthType != f.AuthType:
		return false
	case !f.ExpiresBefore.IsZero() && (c.ExpiresAt == nil || !c.ExpiresAt.Before(f.ExpiresBefore)):
		return false
	case !f.UnusedSince.IsZero() && !c.UnusedSince(f.UnusedSince):
		return false
	case f.RotationDue && !c.RotationIsDue(now):
		return false
	case f.Connection != "" && (c.Connection == nil || c.Connection.State != f.Connection):
		return false
	}
	return true
}

// CredentialPosition is a place in the inventory's order: by integration
// id, then newest first, then by credential id. A listing resumes after it.
type CredentialPosition struct {
	IntegrationID string
	CreatedAt     time.Time
	ID            string
}

// PositionOf is the position of c.
func PositionOf(c *Credential) *CredentialPosition {
	return &CredentialPosition{IntegrationID: c.IntegrationID, CreatedAt: c.CreatedAt, ID: c.ID}
}

// EndOf is the position past every credential of c's integration (c its
// last one): a page that ends with it resumes at the next integration
// without reading c's again.
func EndOf(c *Credential) *CredentialPosition {
	return &CredentialPosition{IntegrationID: c.IntegrationID, CreatedAt: time.Unix(0, 0).UTC(), ID: c.ID}
}

// PastEnd reports whether p is an EndOf position.
func (p *CredentialPosition) PastEnd() bool { return p.CreatedAt.Equal(time.Unix(0, 0)) }

// Precedes reports whether c comes after p in the inventory's order, for c
// of p's integration.
func (p *CredentialPosition) Precedes(c *Credential) bool {
	return inventoryBefore(p.CreatedAt, p.ID, c.CreatedAt, c.ID)
}

// SortInventory puts one integration's credentials in the inventory's
// order: newest first, then by id.
func SortInventory(list []*Credential) {
	slices.SortStableFunc(list, func(a, b *Credential) int {
		switch {
		case inventoryBefore(a.CreatedAt, a.ID, b.CreatedAt, b.ID):
			return -1
		case inventoryBefore(b.CreatedAt, b.ID, a.CreatedAt, a.ID):
			return 1
		}
		return 0
	})
}

// inventoryBefore is the inventory's order within an integration.
func inventoryBefore(aCreated time.Time, aID string, bCreated time.Time, bID string) bool {
	if !aCreated.Equal(bCreated) {
		return aCreated.After(bCreated) // newest first
	}
	return aID < bID
}

// String is the position as text: integration/unix-nanoseconds/credential.
func (p *CredentialPosition) String() string {
	return p.IntegrationID + "/" + strconv.FormatInt(p.CreatedAt.UnixNano(), 10) + "/" + p.ID
}

// ParseCredentialPosition reads what String wrote.
func ParseCredentialPosition(s string) (*CredentialPosition, error) {
	parts := strings.Split(s, "/")
	if len(parts) != 3 || !ValidID(parts[0]) {
		return nil, errors.New("not a credential position")
	}
	ns, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return nil, fmt.Errorf("not a credential position: %w", err)
	}
	id, ok := CanonicalCredentialID(parts[2])
	if !ok || id != parts[2] {
		return nil, errors.New("not a credential position")
	}
	return &CredentialPosition{IntegrationID: parts[0], CreatedAt: time.Unix(0, ns).UTC(), ID: id}, nil
}

// InventoryCounts are a tenant's credentials by effective status and, the
// revoked ones aside, by expiry bucket (ExpiryBucket): what the monitor
// counts and the metrics show.
type InventoryCounts struct {
	Status, Expiry map[string]int
	// Rotation counts by rotation bucket (RotationBucket); Connection
	// the OAuth2 credentials by connection state.
	Rotation, Connection map[string]int
	// Overdue is the overdue period the rotation buckets use (0:
	// DefaultRotationOverdue).
	Overdue time.Duration
}

// NewInventoryCounts returns empty counts.
func NewInventoryCounts() InventoryCounts {
	return InventoryCounts{Status: map[string]int{}, Expiry: map[string]int{}, Rotation: map[string]int{}, Connection: map[string]int{}}
}

// Add adds the counts of o.
func (n InventoryCounts) Add(o InventoryCounts) {
	for _, m := range [][2]map[string]int{{n.Status, o.Status}, {n.Expiry, o.Expiry}, {n.Rotation, o.Rotation}, {n.Connection, o.Connection}} {
		for k, v := range m[1] {
			m[0][k] += v
		}
	}
}

// Count adds c as it is at now.
func (n InventoryCounts) Count(c *Credential, now time.Time) {
	st := c.EffectiveStatus(now)
	n.Status[st]++
	if b := c.ExpiryBucket(now); b != "" && st != CredRevoked {
		n.Expiry[b]++
	}
	overdue := n.Overdue
	if overdue == 0 {
		overdue = DefaultRotationOverdue
	}
	if b := c.RotationBucket(now, overdue); b != "" && n.Rotation != nil {
		n.Rotation[b]++
	}
	if c.Connection != nil && n.Connection != nil && st != CredRevoked {
		n.Connection[c.Connection.State]++
	}
}

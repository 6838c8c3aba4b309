package credgate

import (
	"encoding/json"
	"slices"
	"time"
)

// The monitor's rules: which expiry notices a credential is due, and what
// it remembers of a credential between scans (kept in the credential's
// metadata as bookkeeping, never as a version).

// DefaultExpiryThresholds are the days before expiresAt at which
// credential.expiring is sent, unless a tenant has its own.
var DefaultExpiryThresholds = []int{30, 7, 1}

// ExpiryNotices records the notices sent for one expiry of a credential:
// For is that expiresAt (Unix seconds); a new expiresAt starts afresh.
type ExpiryNotices struct {
	For     int64 `json:"x,omitempty"`
	Days    []int `json:"n,omitempty"` // thresholds sent
	Expired bool  `json:"e,omitempty"` // credential.expired sent
}

// NoticeDue says which notice c is due at now with thresholds (days, any
// order): the expired notice, or the smallest threshold crossed and not yet
// sent (0: none). A credential that crosses several thresholds between two
// scans, or is created inside one, is sent the tightest of them only; the
// wider ones count as sent (MarkSent).
func (c *Credential) NoticeDue(now time.Time, thresholds []int) (days int, expired bool) {
	if c.ExpiresAt == nil || c.EffectiveStatus(now) == CredRevoked || c.Status != CredActive {
		return 0, false
	}
	n := c.notices()
	left := c.ExpiresAt.Sub(now)
	if left <= 0 {
		return 0, !n.Expired
	}
	for _, d := range thresholds {
		if d > 0 && left <= time.Duration(d)*24*time.Hour && !slices.Contains(n.Days, d) && (days == 0 || d < days) {
			days = d
		}
	}
	return days, false
}

// notices returns c's notices if they are for its current expiresAt.
func (c *Credential) notices() ExpiryNotices {
	if c.ExpiresAt == nil || c.Notices.For != c.ExpiresAt.Unix() {
		return ExpiryNotices{}
	}
	return c.Notices
}

// MarkSent records on c that the notice NoticeDue named was sent: days and
// every wider threshold, or expired.
func (c *Credential) MarkSent(days int, expired bool, thresholds []int) {
	n := c.notices()
	n.For = c.ExpiresAt.Unix()
	if expired {
		n.Expired = true
	}
	for _, d := range thresholds {
		if d >= days && days > 0 && !slices.Contains(n.Days, d) {
			n.Days = append(n.Days, d)
		}
	}
	slices.Sort(n.Days)
	c.Notices = n
}

// Watch is the monitor's bookkeeping of a credential as stored: its notices
// and the state of its failing refreshes.
type Watch struct {
	ExpiryNotices
	Refresh *RefreshState `json:"r,omitempty"`
	// PreviousRevoked is the previous version whose end was announced;
	// StalledNotice the one whose stalled migration was.
	PreviousRevoked int `json:"p,omitempty"`
	StalledNotice   int `json:"s,omitempty"`
	// Rotation are the rotation notices sent.
	Rotation *RotationNotices `json:"rn,omitempty"`
}

// WatchOf returns what the monitor keeps of c.
func WatchOf(c *Credential) Watch {
	w := Watch{ExpiryNotices: c.Notices, Refresh: c.Refresh, PreviousRevoked: c.PreviousRevoked, StalledNotice: c.StalledNotice}
	if c.RotationSent != (RotationNotices{}) {
		n := c.RotationSent
		w.Rotation = &n
	}
	return w
}

// Encode renders w for a metadata value (at most 512 bytes).
func (w Watch) Encode() string {
	b, _ := json.Marshal(w)
	return string(b)
}

// ApplyWatch sets on c what the stored form s (Watch.Encode) says; a
// malformed one says nothing.
func (c *Credential) ApplyWatch(s string) {
	if s == "" { // a credential the monitor never noted: nothing allocated
		return
	}
	var w Watch
	if json.Unmarshal([]byte(s), &w) != nil {
		return
	}
	c.SetWatch(w)
}

// SetWatch sets on c what the monitor keeps of it (WatchOf's inverse).
func (c *Credential) SetWatch(w Watch) {
	c.Notices, c.Refresh, c.PreviousRevoked, c.StalledNotice = w.ExpiryNotices, w.Refresh, w.PreviousRevoked, w.StalledNotice
	c.RotationSent = RotationNotices{}
	if w.Rotation != nil {
		c.RotationSent = *w.Rotation
	}
}

// PreviousEnded reports whether the previous version c kept servable has
// reached its PreviousRevokeAt at now without the end being announced.
func (c *Credential) PreviousEnded(now time.Time) bool {
	return c.PreviousVersion > 0 && c.PreviousRevokeAt != nil && !now.Before(*c.PreviousRevokeAt) && c.PreviousRevoked != c.PreviousVersion
}

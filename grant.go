package credgate

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Grant gives one application (a token subject) or one group (a value of
// its issuer's groups claim) a credgate role on named integrations only:
// ids, or prefixes ending in * ("sendgrid_*"). A caller's access is its
// tenant-wide roles plus its grants; what a role permits on the
// integrations a grant names is policy's rule, and the Vault policy a
// grant renders grants exactly those integrations' paths.
type Grant struct {
	ID           string     `json:"id"`
	Subject      string     `json:"subject,omitempty"`
	Group        string     `json:"group,omitempty"`
	Role         string     `json:"role"`
	Integrations []string   `json:"integrations"`
	ExpiresAt    *time.Time `json:"expiresAt,omitempty"`
	Description  string     `json:"description,omitempty"`
	CreatedAt    time.Time  `json:"createdAt"`
	CreatedBy    Actor      `json:"createdBy"`
	// Source is "api" for a grant made through /api/v1/grants, "config"
	// for one loaded from credgate's configuration (changed there only).
	Source string `json:"source"`
	// Version is the grant's version: a grant is never changed, only
	// made and deleted, so it is 1.
	Version int `json:"version"`
}

// Grant sources.
const (
	GrantFromAPI    = "api"
	GrantFromConfig = "config"
)

// Limits of grants.
const (
	MaxGrants            = 1000 // per tenant, configured ones included
	MaxGrantIntegrations = 32
	MaxGrantDescription  = 500
	MaxGrantLife         = 10 * 365 * 24 * time.Hour
)

// NewGrantID returns grant_<uuid v4>.
func NewGrantID() string { return "grant_" + uuid.NewString() }

// ConfigGrantID is the id of a grant from configuration: grant_cfg_ and a
// digest of what it grants, so it is the same on every replica and after
// every restart.
func ConfigGrantID(tenant string, g Grant) string {
	h := sha256.New()
	for _, part := range append([]string{tenant, g.Subject, g.Group, g.Role}, g.Integrations...) {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return "grant_cfg_" + hex.EncodeToString(h.Sum(nil)[:12])
}

// ValidGrantID reports whether id may name a grant: grant_ and a UUID in
// lower case (NewGrantID), or a configured grant's (ConfigGrantID).
func ValidGrantID(id string) bool {
	if rest, ok := strings.CutPrefix(id, "grant_cfg_"); ok {
		return len(rest) == 24 && strings.Trim(rest, "0123456789abcdef") == ""
	}
	u, ok := strings.CutPrefix(id, "grant_")
	if !ok || len(u) != 36 || strings.ToLower(u) != u {
		return false
	}
	_, err := uuid.Parse(u)
	return err == nil
}

// ValidIntegrationPattern reports whether p may name integrations in a
// grant: an integration id (ValidID), a prefix of one followed by * (a
// prefix of at least one character), or * alone (every integration).
func ValidIntegrationPattern(p string) bool {
	prefix, glob := strings.CutSuffix(p, "*")
	switch {
	case !glob:
		return ValidID(p)
	case prefix == "":
		return true
	}
	// A prefix is a valid id as far as it goes: the same characters, no
	// "..", and may end in any of them.
	return ValidID(prefix) || ValidID(prefix+"x")
}

// Validate reports every field of g that breaks the rules of a grant
// (VALIDATION_FAILED), or nil, at now: one subject or one group, a role
// knownRole accepts, 1 to MaxGrantIntegrations integration patterns
// without repeats, an expiry in the future (at most MaxGrantLife away).
func (g *Grant) Validate(now time.Time, knownRole func(string) bool) error {
	g.Subject, g.Group, g.Description = strings.TrimSpace(g.Subject), strings.TrimSpace(g.Group), strings.TrimSpace(g.Description)
	fe := FieldErrors{}
	switch {
	case (g.Subject == "") == (g.Group == ""):
		fe.Add("subject", "or group: exactly one of them names who the grant is for")
	case g.Subject == SystemSubject:
		fe.Add("subject", "is credgate's own; grant it nothing")
	}
	checkText(fe, "subject", g.Subject, 512)
	checkText(fe, "group", g.Group, 256)
	checkText(fe, "description", g.Description, MaxGrantDescription)
	if !knownRole(g.Role) {
		fe.Add("role", "must be a credgate role: credential_reader, integration_viewer or integration_admin")
	}
	switch n := len(g.Integrations); {
	case n == 0:
		fe.Add("integrations", "name at least one integration id, or a prefix ending in *")
	case n > MaxGrantIntegrations:
		fe.Add("integrations", fmt.Sprintf("at most %d", MaxGrantIntegrations))
	}
	for i, p := range g.Integrations {
		if !ValidIntegrationPattern(p) {
			fe.Add("integrations", "each is an integration id, a prefix ending in * (sendgrid_*), or *")
		} else if slices.Index(g.Integrations, p) != i {
			fe.Add("integrations", "names "+p+" twice")
		}
	}
	if g.ExpiresAt != nil && (!g.ExpiresAt.After(now) || g.ExpiresAt.Sub(now) > MaxGrantLife) {
		fe.Add("expiresAt", "must be in the future, at most 10 years away")
	}
	return fe.Err()
}

// Live reports whether g is in force at now: not expired.
func (g *Grant) Live(now time.Time) bool { return g.ExpiresAt == nil || now.Before(*g.ExpiresAt) }

// For reports whether g is for p: its subject, or one of its groups, in
// p's tenant (grants are a tenant's records).
func (g *Grant) For(p *Principal) bool {
	if g.Subject != "" {
		return g.Subject == p.Subject
	}
	return slices.Contains(p.Groups, g.Group)
}

// ApplicableGrants returns the grants of all that are for p and live at
// now.
func ApplicableGrants(all []Grant, p *Principal, now time.Time) []Grant {
	var out []Grant
	for _, g := range all {
		if g.For(p) && g.Live(now) {
			out = append(out, g)
		}
	}
	return out
}

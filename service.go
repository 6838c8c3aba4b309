package credgate

import (
	"strings"
	"time"
)

// Service is an external service a tenant integrates with. It is the
// non-secret record of the services family; the credentials family calls it
// an integration.
type Service struct {
	ID          string         `json:"id"`
	Name        string         `json:"name"`
	Description string         `json:"description"`
	Type        string         `json:"type"`
	Status      string         `json:"status"`
	BaseURL     string         `json:"base_url"`
	APIVersion  string         `json:"api_version"`
	TenantID    string         `json:"tenant_id"`
	Metadata    map[string]any `json:"metadata"`
	CreatedAt   time.Time      `json:"created_at"`
	UpdatedAt   time.Time      `json:"updated_at"`
	CreatedBy   Actor          `json:"created_by"`
	// Version is the Vault KV version of the record; writes may name it as
	// the version they expect (If-Match).
	Version int `json:"version"`
}

// Actor names who did something, as the verified token said.
type Actor struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Email string `json:"email"`
}

// Service statuses.
const (
	StatusActive   = "active"
	StatusInactive = "inactive"
)

// ServiceFilter selects services in a listing.
type ServiceFilter struct {
	Type   string
	Status string
	Limit  int
	After  string // list ids strictly after this one (the cursor)
	// Visible, when set, is the only services the caller may see (a
	// caller whose access is grants on named integrations): the others
	// are left out as if they did not exist, and the store does not ask
	// the caller's own token for the list of every id.
	Visible func(id string) bool
}

// ServicePage is one page of a listing; Next is empty on the last page.
type ServicePage struct {
	Services []*Service
	Next     string
}

// Limits of a service's fields.
const (
	MaxNameBytes        = 200
	MaxDescriptionBytes = 2000
	MaxServiceTypeBytes = 64
)

// Validate trims the spaces around the name and base_url, then reports every
// field that breaks the rules of a service (VALIDATION_FAILED), or nil.
func (s *Service) Validate() error {
	s.Name = strings.TrimSpace(s.Name)
	s.BaseURL = strings.TrimSpace(s.BaseURL)
	fe := FieldErrors{}
	if s.Name == "" {
		fe.Add("name", "is required")
	}
	checkText(fe, "name", s.Name, MaxNameBytes)
	checkText(fe, "description", s.Description, MaxDescriptionBytes)
	checkText(fe, "type", s.Type, MaxServiceTypeBytes)
	checkText(fe, "api_version", s.APIVersion, MaxServiceTypeBytes)
	if s.Status != StatusActive && s.Status != StatusInactive {
		fe.Add("status", "must be active or inactive")
	}
	checkURL(fe, "base_url", s.BaseURL)
	ServiceMetadataLimits.check(fe, "metadata", s.Metadata)
	return fe.Err()
}

// IDPattern is the rule of tenant and service ids, without "..".
const IDPattern = `^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`

// ValidID reports whether id may name a tenant or a service: it matches
// IDPattern and holds no "..". Such ids become parts of Vault paths, so
// nothing else is accepted. (Every request checks ids: this is IDPattern
// by hand; a fuzz target holds the two to each other.)
func ValidID(id string) bool {
	if len(id) == 0 || len(id) > 128 || !isAlnum(id[0]) {
		return false
	}
	for i := 1; i < len(id); i++ {
		switch c := id[i]; {
		case isAlnum(c), c == '_', c == '-':
		case c == '.':
			if id[i-1] == '.' {
				return false
			}
		default:
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

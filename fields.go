package credgate

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"strings"
	"unicode"
)

// The rules of the fields services and credentials share: free text, URLs
// and metadata. Service.Validate and Credential.Validate apply them.

// checkText refuses text over max bytes or holding control characters other
// than newline and tab.
func checkText(fe FieldErrors, field, s string, max int) {
	if len(s) > max {
		fe.Add(field, fmt.Sprintf("is at most %d bytes", max))
		return
	}
	for _, r := range s {
		if unicode.IsControl(r) && r != '\n' && r != '\t' {
			fe.Add(field, "must not contain control characters")
			return
		}
	}
}

// MaxURLBytes bounds every URL field.
const MaxURLBytes = 2048

// checkURL refuses what URLProblem finds.
func checkURL(fe FieldErrors, field, s string) {
	if p := URLProblem(s); p != "" {
		fe.Add(field, p)
	}
}

// URLProblem says what is wrong with a URL field's value, or "": it allows
// an absolute https URL, and http only to a loopback host. A URL with user
// information is refused: it would put a secret into a non-secret field.
func URLProblem(s string) string {
	if s == "" {
		return ""
	}
	if len(s) > MaxURLBytes {
		return fmt.Sprintf("is at most %d bytes", MaxURLBytes)
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return "must be an absolute URL"
	}
	if u.User != nil {
		return "must not carry user information; store credentials as credentials"
	}
	switch u.Scheme {
	case "https":
		return ""
	case "http":
		if !IsLoopbackHost(u.Hostname()) {
			return "must use https (http is allowed only for loopback hosts)"
		}
		return ""
	}
	return "must use https"
}

// IsLoopbackHost reports whether host is localhost or a loopback address.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// MetadataLimits bound a metadata object: Vault keeps it, so it is bounded
// before Vault sees it.
type MetadataLimits struct {
	MaxBytes int // as compact JSON
	MaxDepth int // nesting of objects and arrays; the object itself is 1
	MaxKeys  int // object keys at every level together
}

// Limits of metadata. A credential's metadata is small because its
// description is projected into Vault's custom_metadata, which Vault keeps
// small.
var (
	ServiceMetadataLimits    = MetadataLimits{MaxBytes: 16 << 10, MaxDepth: 8, MaxKeys: 256}
	CredentialMetadataLimits = MetadataLimits{MaxBytes: 4 << 10, MaxDepth: 8, MaxKeys: 128}
)

// check refuses m when it exceeds l.
func (l MetadataLimits) check(fe FieldErrors, field string, m map[string]any) {
	keys := 0
	var depth func(v any) int
	depth = func(v any) int {
		d := 0
		switch t := v.(type) {
		case map[string]any:
			keys += len(t)
			for _, e := range t {
				d = max(d, depth(e))
			}
		case []any:
			for _, e := range t {
				d = max(d, depth(e))
			}
		default:
			return 0
		}
		return d + 1
	}
	if d := depth(m); d > l.MaxDepth {
		fe.Add(field, fmt.Sprintf("nests at most %d levels deep", l.MaxDepth))
		return
	}
	if keys > l.MaxKeys {
		fe.Add(field, fmt.Sprintf("has at most %d keys in all", l.MaxKeys))
		return
	}
	b, err := json.Marshal(m)
	if err != nil {
		fe.Add(field, "must be a JSON object")
		return
	}
	if len(b) > l.MaxBytes {
		fe.Add(field, fmt.Sprintf("is at most %d bytes of JSON", l.MaxBytes))
	}
}

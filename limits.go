package credgate

import "fmt"

// What a tenant may keep in all: its records are each bounded by their own
// rules; these bound how many and how much together.

// TenantUsage is what a tenant keeps: its records by kind, and the bytes
// of their current versions.
type TenantUsage struct {
	Services    int   `json:"services"`
	Credentials int   `json:"credentials"`
	Webhooks    int   `json:"webhooks"`
	Bytes       int64 `json:"bytes"`
}

// Plus returns u with d added (d's fields may be negative); nothing goes
// below zero.
func (u TenantUsage) Plus(d TenantUsage) TenantUsage {
	return TenantUsage{
		Services: max(u.Services+d.Services, 0), Credentials: max(u.Credentials+d.Credentials, 0),
		Webhooks: max(u.Webhooks+d.Webhooks, 0), Bytes: max(u.Bytes+d.Bytes, 0),
	}
}

// Neg is the change that takes d back.
func (d TenantUsage) Neg() TenantUsage {
	return TenantUsage{Services: -d.Services, Credentials: -d.Credentials, Webhooks: -d.Webhooks, Bytes: -d.Bytes}
}

// Grows reports whether d, a change, adds to any count.
func (d TenantUsage) Grows() bool {
	return d.Services > 0 || d.Credentials > 0 || d.Webhooks > 0 || d.Bytes > 0
}

// TenantLimits bound what a tenant may keep (0: no bound): each record is
// bounded already, and these bound how many, so that no tenant can fill
// Vault's storage.
type TenantLimits struct {
	Services    int   `yaml:"services"`
	Credentials int   `yaml:"credentials"`
	Webhooks    int   `yaml:"webhooks"`
	Bytes       int64 `yaml:"bytes"`
}

// Or returns l with each field left out (0) taken from d.
func (l TenantLimits) Or(d TenantLimits) TenantLimits {
	pick := func(a, b int64) int64 {
		if a == 0 {
			return b
		}
		return a
	}
	return TenantLimits{
		Services: int(pick(int64(l.Services), int64(d.Services))), Credentials: int(pick(int64(l.Credentials), int64(d.Credentials))),
		Webhooks: int(pick(int64(l.Webhooks), int64(d.Webhooks))), Bytes: pick(l.Bytes, d.Bytes),
	}
}

// Bounds returns l as Exceeded reads it: a configuration's -1 (no bound)
// as 0.
func (l TenantLimits) Bounds() TenantLimits {
	return TenantLimits{Services: max(l.Services, 0), Credentials: max(l.Credentials, 0), Webhooks: max(l.Webhooks, 0), Bytes: max(l.Bytes, 0)}
}

// DefaultTenantLimits are the limits of a tenant the configuration names
// no other for.
var DefaultTenantLimits = TenantLimits{Services: 1000, Credentials: 10000, Webhooks: MaxWebhooks, Bytes: 64 << 20}

// Exceeded names what next, grown from cur, keeps past l ("" when
// nothing): only growth is refused, so a tenant over a lowered limit may
// still shrink.
func (l TenantLimits) Exceeded(cur, next TenantUsage) string {
	switch {
	case l.Services > 0 && next.Services > cur.Services && next.Services > l.Services:
		return fmt.Sprintf("services (%d)", l.Services)
	case l.Credentials > 0 && next.Credentials > cur.Credentials && next.Credentials > l.Credentials:
		return fmt.Sprintf("credentials (%d)", l.Credentials)
	case l.Webhooks > 0 && next.Webhooks > cur.Webhooks && next.Webhooks > l.Webhooks:
		return fmt.Sprintf("webhooks (%d)", l.Webhooks)
	case l.Bytes > 0 && next.Bytes > cur.Bytes && next.Bytes > l.Bytes:
		return fmt.Sprintf("bytes of records (%d)", l.Bytes)
	}
	return ""
}

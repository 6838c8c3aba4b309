package auth

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/credgate/credgate"
)

// Leeways credgate allows for clock skew. go-oidc allows five minutes on
// nbf; credgate allows only timeLeeway, on nbf and iat alike.
const timeLeeway = 30 * time.Second

// principal maps the verified claims of a token of issuer i to the
// principal they prove, at now. Every rule about a claim's content is here:
// the time claims, the subject, the tenant and whether i may assert it, the
// tenant's name, the roles. Errors: UNAUTHORIZED for a token credgate does
// not accept, INSUFFICIENT_PERMISSIONS for one with no usable tenant.
func (i *issuer) principal(claims map[string]any, now time.Time) (*credgate.Principal, error) {
	exp, err := numericDate(claims, "exp")
	if err != nil || exp.IsZero() {
		return nil, unauthorized("token has no usable exp")
	}
	if !now.Before(exp) {
		return nil, unauthorized("token is expired")
	}
	nbf, err := numericDate(claims, "nbf")
	if err != nil {
		return nil, unauthorized("token has an unusable nbf")
	}
	if !nbf.IsZero() && now.Add(timeLeeway).Before(nbf) {
		return nil, unauthorized("token is not valid yet")
	}
	iat, err := numericDate(claims, "iat")
	if err != nil {
		return nil, unauthorized("token has an unusable iat")
	}
	if !iat.IsZero() && now.Add(timeLeeway).Before(iat) {
		return nil, unauthorized("token is issued in the future")
	}
	sub, _ := claims["sub"].(string)
	switch {
	case strings.TrimSpace(sub) == "":
		// Vault's audit log must name somebody.
		return nil, unauthorized("token has no subject")
	case sub == credgate.SystemSubject:
		// credgate's own: its events and audit entries name it.
		return nil, unauthorized("token subject is reserved")
	case strings.ContainsFunc(sub, unicode.IsControl) || len(sub) > 512:
		return nil, unauthorized("token subject is not printable text")
	}
	tenant, _ := lookup(claims, i.cfg.TenantClaim).(string)
	switch {
	case i.cfg.Tenant != "" && tenant != "" && tenant != i.cfg.Tenant:
		return nil, unauthorized("the token's issuer may not assert its tenant")
	case i.cfg.Tenant != "":
		tenant = i.cfg.Tenant // the issuer speaks for one tenant
	case !credgate.ValidID(tenant):
		return nil, credgate.Errorf(credgate.EInsufficientPermissions, "token carries no valid tenant in claim %q", i.cfg.TenantClaim)
	case !i.mayAssert(tenant):
		return nil, unauthorized("the token's issuer may not assert its tenant")
	}
	var groups []string
	if i.cfg.GroupsClaim != "" {
		groups = stringList(lookup(claims, i.cfg.GroupsClaim))
	}
	return &credgate.Principal{
		Subject:    sub,
		Expiry:     exp,
		Name:       printable(firstString(claims, "name", "preferred_username")),
		Email:      printable(firstString(claims, "email")),
		Tenant:     tenant,
		TenantName: i.tenantName(claims, tenant),
		Roles:      i.opts.RoleMap.Map(stringList(lookup(claims, i.cfg.RolesClaim))),
		Groups:     groups,
	}, nil
}

// numericDate reads an RFC 7519 NumericDate claim: a JSON number, or a
// string holding one (some issuers send that). It is zero when the claim is
// absent, and an error when the claim is there but not a usable time.
func numericDate(claims map[string]any, name string) (time.Time, error) {
	var secs float64
	switch v := claims[name].(type) {
	case nil:
		if _, present := claims[name]; present {
			return time.Time{}, fmt.Errorf("%s is null", name)
		}
		return time.Time{}, nil
	case float64:
		secs = v
	case json.Number:
		f, err := v.Float64()
		if err != nil {
			return time.Time{}, err
		}
		secs = f
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("%s is not a number", name)
		}
		secs = f
	default:
		return time.Time{}, fmt.Errorf("%s is a %T", name, v)
	}
	if math.IsNaN(secs) || math.IsInf(secs, 0) || secs < 0 || secs > 1e12 {
		return time.Time{}, fmt.Errorf("%s is out of range", name)
	}
	whole, frac := math.Modf(secs)
	return time.Unix(int64(whole), int64(frac*1e9)), nil
}

// mayAssert reports whether i may speak for tenant: every tenant when i is
// bound to none (allowed only when it is the one issuer), else one of its
// tenants or one its pattern matches.
func (i *issuer) mayAssert(tenant string) bool {
	if len(i.cfg.Tenants) == 0 && i.pattern == nil {
		return true
	}
	for _, t := range i.cfg.Tenants {
		if t == tenant {
			return true
		}
	}
	return i.pattern != nil && i.pattern.MatchString(tenant)
}

// compileTenantPattern anchors pattern: it must match a whole tenant id.
func compileTenantPattern(pattern string) (*regexp.Regexp, error) {
	if pattern == "" {
		return nil, nil
	}
	return regexp.Compile("^(?:" + pattern + ")$")
}

// maxTenantName bounds a tenant's display name taken from a token.
const maxTenantName = 200

// tenantName is the tenant's display name: the token's tenant name claim
// when it holds printable text, else the configured name, else the id.
func (i *issuer) tenantName(claims map[string]any, tenant string) string {
	if s, ok := lookup(claims, i.cfg.TenantNameClaim).(string); ok {
		if s = strings.TrimSpace(s); s != "" && len(s) <= maxTenantName && !strings.ContainsFunc(s, unicode.IsControl) {
			return s
		}
	}
	if s := i.opts.TenantNames[tenant]; s != "" {
		return s
	}
	return tenant
}

// lookup follows a dotted path (realm_access.roles) through nested objects.
func lookup(claims map[string]any, path string) any {
	var cur any = claims
	for _, part := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[part]
	}
	return cur
}

// stringList accepts a JSON array of strings or a single string (some
// providers send one role as a plain string).
func stringList(v any) []string {
	switch t := v.(type) {
	case string:
		return strings.Fields(t)
	case []any:
		out := make([]string, 0, len(t))
		for _, e := range t {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		sort.Strings(out)
		return out
	}
	return nil
}

// printable drops control characters from a claim shown or kept as text
// (in Vault's token metadata, in answers, in audit tables) and bounds it.
func printable(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
	if len(s) > 256 {
		s = strings.ToValidUTF8(s[:256], "")
	}
	return s
}

func firstString(claims map[string]any, names ...string) string {
	for _, n := range names {
		if s, ok := claims[n].(string); ok && s != "" {
			return s
		}
	}
	return ""
}

package vaultstore

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/vault/api"

	"github.com/credgate/credgate"
)

// BootstrapOptions says what Bootstrap sets up.
type BootstrapOptions struct {
	Mount         string // KV v2 mount; default DefaultMount
	TokenRole     string // token role for caller tokens; default DefaultTokenRole
	ServicePolicy string // credgate's own policy; default DefaultServicePolicy
	// AuditFile, when set, enables a file audit device writing there.
	AuditFile string
	// IssueToken asks for a token carrying ServicePolicy, for credgate serve.
	IssueToken bool
	// Login names the roles credgate may log in with (AppRole, JWT).
	Login LoginRoles
}

// BootstrapResult says what Bootstrap did; each step is "created",
// "updated" or "present".
type BootstrapResult struct {
	Steps map[string]string
	// Token is the token issued for credgate when IssueToken was set.
	Token string
	// AppRoleID is the role id of Login.AppRole, when one was written.
	AppRoleID string
}

// AuditDevicePath is where Bootstrap enables the file audit device.
const AuditDevicePath = "credgate-file"

// Bootstrap prepares a Vault for credgate with an administrator's client:
// the KV v2 mount, credgate's own policy, the token role for per-caller batch
// tokens, the audited X-Request-Id header and, when asked, a file audit
// device and the roles credgate logs in with (AppRole, JWT). It is idempotent: running it twice changes nothing the second time.
func Bootstrap(ctx context.Context, c *api.Client, o BootstrapOptions) (*BootstrapResult, error) {
	if o.Mount == "" {
		o.Mount = DefaultMount
	}
	o.Mount = strings.Trim(o.Mount, "/")
	if o.TokenRole == "" {
		o.TokenRole = DefaultTokenRole
	}
	if o.ServicePolicy == "" {
		o.ServicePolicy = DefaultServicePolicy
	}
	res := &BootstrapResult{Steps: map[string]string{}}

	mounts, err := c.Sys().ListMountsWithContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing mounts: %w", err)
	}
	if m, ok := mounts[o.Mount+"/"]; ok {
		if m.Type != "kv" || m.Options["version"] != "2" {
			return nil, fmt.Errorf("mount %q exists but is not KV version 2 (type %q, version %q)", o.Mount, m.Type, m.Options["version"])
		}
		res.Steps["kv mount "+o.Mount] = "present"
	} else {
		err := c.Sys().MountWithContext(ctx, o.Mount, &api.MountInput{
			Type: "kv", Description: "credgate: services and credentials", Options: map[string]string{"version": "2"},
		})
		if err != nil {
			return nil, fmt.Errorf("mounting KV v2 at %q: %w", o.Mount, err)
		}
		res.Steps["kv mount "+o.Mount] = "created"
	}

	if err := putPolicy(ctx, c, o.ServicePolicy, ServicePolicy(o), res); err != nil {
		return nil, err
	}

	role := map[string]any{
		"allowed_policies_glob":   []string{"credgate-*"},
		"disallowed_policies":     []string{"root", o.ServicePolicy},
		"orphan":                  true,
		"renewable":               false,
		"token_type":              "batch",
		"token_no_default_policy": true,
	}
	rolePath := "auth/token/roles/" + o.TokenRole
	if err := writeIfChanged(ctx, c, rolePath, rolePath, role, "token role "+o.TokenRole, res, nil); err != nil {
		return nil, err
	}

	// Vault answers 400 for a header it does not audit yet, so the list is
	// read instead: {"headers": {"x-request-id": {"hmac": false}}}.
	hdrs := "sys/config/auditing/request-headers"
	nested := func(have map[string]any) map[string]any {
		all, _ := have["headers"].(map[string]any)
		m, _ := all[strings.ToLower(credgate.RequestIDHeader)].(map[string]any)
		return m
	}
	if err := writeIfChanged(ctx, c, hdrs, hdrs+"/"+strings.ToLower(credgate.RequestIDHeader), map[string]any{"hmac": false}, "audited header "+credgate.RequestIDHeader, res, nested); err != nil {
		return nil, err
	}

	if o.AuditFile != "" {
		audits, err := c.Sys().ListAuditWithContext(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing audit devices: %w", err)
		}
		if a, ok := audits[AuditDevicePath+"/"]; ok {
			if a.Type != "file" || a.Options["file_path"] != o.AuditFile {
				return nil, fmt.Errorf("audit device %q exists with another type or file", AuditDevicePath)
			}
			res.Steps["audit device "+AuditDevicePath] = "present"
		} else {
			err := c.Sys().EnableAuditWithOptionsWithContext(ctx, AuditDevicePath, &api.EnableAuditOptions{
				Type: "file", Description: "credgate audit log", Options: map[string]string{"file_path": o.AuditFile},
			})
			if err != nil {
				return nil, fmt.Errorf("enabling file audit device: %w", err)
			}
			res.Steps["audit device "+AuditDevicePath] = "created"
		}
	}

	if err := writeLoginRoles(ctx, c, o, res); err != nil {
		return nil, err
	}

	if o.IssueToken {
		sec, err := c.Auth().Token().CreateOrphanWithContext(ctx, &api.TokenCreateRequest{
			Policies:    []string{o.ServicePolicy},
			Period:      "24h",
			DisplayName: "credgate-service",
		})
		if err != nil {
			return nil, fmt.Errorf("issuing credgate's token: %w", err)
		}
		res.Token = sec.Auth.ClientToken
	}
	return res, nil
}

// ServicePolicy renders credgate's own policy: mint caller tokens through
// the token role, manage the credgate-* role policies, keep bookkeeping
// metadata (lastAccessedAt), have Vault generate random values, and look
// itself up. It grants no read of any secret value.
func ServicePolicy(o BootstrapOptions) string {
	return fmt.Sprintf(`# credgate's own identity; written by credgate bootstrap.
path "auth/token/create/%[1]s" {
  capabilities = ["update"]
}
path "sys/policies/acl/credgate-*" {
  capabilities = ["create", "read", "update"]
}
path "%[2]s/metadata/tenants/*" {
  capabilities = ["read", "patch"]
}
# The monitor: which tenants exist (their ids only), and its lease.
path "%[2]s/metadata/tenants/" {
  capabilities = ["list"]
}
path "%[2]s/data/system/*" {
  capabilities = ["create", "read", "update"]
}
path "sys/tools/random*" {
  capabilities = ["update"]
}
path "auth/token/lookup-self" {
  capabilities = ["read"]
}
path "auth/token/renew-self" {
  capabilities = ["update"]
}
`, o.TokenRole, o.Mount)
}

func putPolicy(ctx context.Context, c *api.Client, name, text string, res *BootstrapResult) error {
	old, err := c.Sys().GetPolicyWithContext(ctx, name)
	if err != nil {
		return fmt.Errorf("reading policy %q: %w", name, err)
	}
	step := "policy " + name
	if old == text {
		res.Steps[step] = "present"
		return nil
	}
	if err := c.Sys().PutPolicyWithContext(ctx, name, text); err != nil {
		return fmt.Errorf("writing policy %q: %w", name, err)
	}
	res.Steps[step] = map[bool]string{true: "created", false: "updated"}[old == ""]
	return nil
}

// writeIfChanged writes data to path unless every field already reads back
// the same, so that a second bootstrap reports "present". view, when set,
// picks the fields out of what Vault reads back.
func writeIfChanged(ctx context.Context, c *api.Client, readPath, path string, data map[string]any, step string, res *BootstrapResult, view func(map[string]any) map[string]any) error {
	cur, err := c.Logical().ReadWithContext(ctx, readPath)
	if err != nil {
		return fmt.Errorf("reading %s: %w", step, err)
	}
	var have map[string]any
	if cur != nil {
		have = cur.Data
		if view != nil {
			have = view(have)
		}
	}
	if have != nil && sameFields(have, data) {
		res.Steps[step] = "present"
		return nil
	}
	if _, err := c.Logical().WriteWithContext(ctx, path, data); err != nil {
		return fmt.Errorf("writing %s: %w", step, err)
	}
	res.Steps[step] = map[bool]string{true: "created", false: "updated"}[have == nil]
	return nil
}

func sameFields(have, want map[string]any) bool {
	for k, w := range want {
		if fmt.Sprint(normalize(have[k])) != fmt.Sprint(normalize(w)) {
			return false
		}
	}
	return true
}

// normalize makes Vault's read-back forms comparable with what was written:
// lists come back as []any, sorted.
func normalize(v any) any {
	var out []string
	switch t := v.(type) {
	case []any:
		for _, e := range t {
			out = append(out, fmt.Sprint(e))
		}
	case []string:
		out = append(out, t...)
	default:
		return v
	}
	sort.Strings(out)
	return out
}

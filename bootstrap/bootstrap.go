package bootstrap

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/vault/api"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/policy"
)

// Options says what Bootstrap sets up.
type Options struct {
	Mount         string // KV v2 mount; default policy.DefaultMount
	TokenRole     string // token role for caller tokens; default policy.DefaultTokenRole
	ServicePolicy string // credgate's own policy; default policy.DefaultServicePolicy
	// AuditFile, when set, enables a file audit device writing there.
	AuditFile string
	// IssueToken asks for a token carrying ServicePolicy, for credgate serve.
	IssueToken bool
	// Login names the roles credgate may log in with (AppRole, JWT).
	Login LoginRoles
}

// Result says what Bootstrap did; each step is "created",
// "updated" or "present".
type Result struct {
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
// tokens, the audited X-Request-Id and X-Credgate-Request headers and, when asked, a file audit
// device and the roles credgate logs in with (AppRole, JWT). It is idempotent: running it twice changes nothing the second time.
func Bootstrap(ctx context.Context, c *api.Client, o Options) (*Result, error) {
	if o.Mount == "" {
		o.Mount = policy.DefaultMount
	}
	o.Mount = strings.Trim(o.Mount, "/")
	if o.TokenRole == "" {
		o.TokenRole = policy.DefaultTokenRole
	}
	if o.ServicePolicy == "" {
		o.ServicePolicy = policy.DefaultServicePolicy
	}
	res := &Result{Steps: map[string]string{}}

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

	if err := putPolicy(ctx, c, o.ServicePolicy, policy.Layout{Mount: o.Mount}.ServicePolicy(o.TokenRole), res); err != nil {
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
	// Both ids of a request: the caller's, and credgate's own, which
	// credgate audit groups a request's calls by.
	hdrs := "sys/config/auditing/request-headers"
	for _, h := range []string{credgate.RequestIDHeader, credgate.CorrelationHeader} {
		nested := func(have map[string]any) map[string]any {
			all, _ := have["headers"].(map[string]any)
			m, _ := all[strings.ToLower(h)].(map[string]any)
			return m
		}
		if err := writeIfChanged(ctx, c, hdrs, hdrs+"/"+strings.ToLower(h), map[string]any{"hmac": false}, "audited header "+h, res, nested); err != nil {
			return nil, err
		}
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

func putPolicy(ctx context.Context, c *api.Client, name, text string, res *Result) error {
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
func writeIfChanged(ctx context.Context, c *api.Client, readPath, path string, data map[string]any, step string, res *Result, view func(map[string]any) map[string]any) error {
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

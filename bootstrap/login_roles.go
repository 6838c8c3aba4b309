package bootstrap

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/credgate/credgate/vaultlogin"
)

// LoginRoles says which roles for credgate's own login Bootstrap writes.
// Every role gives credgate's policy (Options.ServicePolicy) and
// nothing else, with tokens renewable up to MaxTTL.
type LoginRoles struct {
	// AppRole is the name of an AppRole role to write; the approle method
	// is enabled at AppRoleMount (default vaultlogin.DefaultAppRoleMount) if needed.
	AppRole      string
	AppRoleMount string
	// JWT is the name of a jwt role to write; the jwt method is enabled at
	// JWTMount (default vaultlogin.DefaultJWTMount) if needed and, when
	// JWTDiscoveryURL or JWTJWKSURL is set, configured to trust it.
	JWT             string
	JWTMount        string
	JWTDiscoveryURL string
	JWTJWKSURL      string
	JWTIssuer       string // bound_issuer, when set
	JWTAudience     string // required with JWT: the token's aud
	JWTSubject      string // bound_subject, when set: the one workload allowed
	// TTL and MaxTTL of the tokens a login gives; default 1h and 24h.
	TTL, MaxTTL string
}

// writeLoginRoles is Bootstrap's part for LoginRoles. It records the
// AppRole's role id in res.AppRoleID.
func writeLoginRoles(ctx context.Context, c *api.Client, o Options, res *Result) error {
	r := o.Login
	ttl, err := time.ParseDuration(cmp.Or(r.TTL, "1h"))
	if err != nil {
		return fmt.Errorf("login token ttl: %w", err)
	}
	maxTTL, err := time.ParseDuration(cmp.Or(r.MaxTTL, "24h"))
	if err != nil {
		return fmt.Errorf("login token max ttl: %w", err)
	}
	token := map[string]any{ // durations in seconds, as Vault reads them back
		"token_policies": []string{o.ServicePolicy},
		"token_ttl":      int(ttl.Seconds()),
		"token_max_ttl":  int(maxTTL.Seconds()),
		"token_type":     "service",
	}
	if r.AppRole != "" {
		mount := strings.Trim(cmp.Or(r.AppRoleMount, vaultlogin.DefaultAppRoleMount), "/")
		if err := enableAuth(ctx, c, mount, "approle", res); err != nil {
			return err
		}
		path := "auth/" + mount + "/role/" + r.AppRole
		role := maps.Clone(token)
		maps.Copy(role, map[string]any{"bind_secret_id": true, "secret_id_ttl": 0, "secret_id_num_uses": 0})
		if err := writeIfChanged(ctx, c, path, path, role, "approle role "+r.AppRole, res, nil); err != nil {
			return err
		}
		sec, err := c.Logical().ReadWithContext(ctx, path+"/role-id")
		if err != nil || sec == nil {
			return fmt.Errorf("reading the role id of %s: %v", r.AppRole, err)
		}
		res.AppRoleID, _ = sec.Data["role_id"].(string)
	}
	if r.JWT != "" {
		if r.JWTAudience == "" {
			return fmt.Errorf("jwt role %s: an audience is required", r.JWT)
		}
		mount := strings.Trim(cmp.Or(r.JWTMount, vaultlogin.DefaultJWTMount), "/")
		if err := enableAuth(ctx, c, mount, "jwt", res); err != nil {
			return err
		}
		if r.JWTDiscoveryURL != "" || r.JWTJWKSURL != "" {
			conf := map[string]any{"bound_issuer": r.JWTIssuer}
			if r.JWTDiscoveryURL != "" {
				conf["oidc_discovery_url"] = r.JWTDiscoveryURL
			} else {
				conf["jwks_url"] = r.JWTJWKSURL
			}
			path := "auth/" + mount + "/config"
			if err := writeIfChanged(ctx, c, path, path, conf, "jwt config "+mount, res, nil); err != nil {
				return err
			}
		}
		role := maps.Clone(token)
		maps.Copy(role, map[string]any{
			"role_type":       "jwt",
			"user_claim":      "sub",
			"bound_audiences": []string{r.JWTAudience},
		})
		if r.JWTSubject != "" {
			role["bound_subject"] = r.JWTSubject
		}
		path := "auth/" + mount + "/role/" + r.JWT
		if err := writeIfChanged(ctx, c, path, path, role, "jwt role "+r.JWT, res, nil); err != nil {
			return err
		}
	}
	return nil
}

// IssueSecretID returns a new secret id of an AppRole role (for a file
// credgate reads at login).
func IssueSecretID(ctx context.Context, c *api.Client, mount, role string) (string, error) {
	mount = strings.Trim(cmp.Or(mount, vaultlogin.DefaultAppRoleMount), "/")
	sec, err := c.Logical().WriteWithContext(ctx, "auth/"+mount+"/role/"+role+"/secret-id", nil)
	if err != nil {
		return "", fmt.Errorf("issuing a secret id for %s: %w", role, err)
	}
	var id string
	if sec != nil {
		id, _ = sec.Data["secret_id"].(string)
	}
	if id == "" {
		return "", fmt.Errorf("issuing a secret id for %s: no secret_id in the answer", role)
	}
	return id, nil
}

func enableAuth(ctx context.Context, c *api.Client, mount, typ string, res *Result) error {
	step := "auth method " + mount
	auths, err := c.Sys().ListAuthWithContext(ctx)
	if err != nil {
		return fmt.Errorf("listing auth methods: %w", err)
	}
	if a, ok := auths[mount+"/"]; ok {
		if a.Type != typ {
			return fmt.Errorf("auth method %q exists with type %q, not %q", mount, a.Type, typ)
		}
		res.Steps[step] = "present"
		return nil
	}
	if err := c.Sys().EnableAuthWithOptionsWithContext(ctx, mount, &api.EnableAuthOptions{Type: typ, Description: "credgate's own login"}); err != nil {
		return fmt.Errorf("enabling %s auth at %q: %w", typ, mount, err)
	}
	res.Steps[step] = "created"
	return nil
}

// Package vaultidp makes a Vault into an OIDC identity provider for credgate:
// Vault's identity token issuer signs tokens whose tenant_id, roles, email and
// name claims are templated from Vault entities and groups. credgate dev and
// the tests use it, so they exercise a real issuer (discovery, JWKS, RS256)
// with no extra software. It is for development and tests, not production.
package vaultidp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/hashicorp/vault/api"
)

// Config names what Setup creates in Vault. Zero values take the defaults.
type Config struct {
	// VaultAddr is the address clients reach Vault at; the issuer URL is
	// VaultAddr/v1/identity/oidc.
	VaultAddr     string
	Key           string // default "credgate-dev"
	Role          string // default "credgate"
	UserpassMount string // default "credgate-users"
	TTL           string // token life; default "1h"
}

// Template is the claims template of the role: tenant and identity from the
// entity's metadata, roles from the names of the entity's groups.
const Template = `{"tenant_id": {{identity.entity.metadata.tenant_id}}, "tenant_name": {{identity.entity.metadata.tenant_name}}, "email": {{identity.entity.metadata.email}}, "name": {{identity.entity.metadata.name}}, "roles": {{identity.entity.groups.names}}}`

// TokenPolicy lets the dev users read their identity token.
const TokenPolicy = "vaultidp-token-reader"

// IdP is a configured Vault identity issuer.
type IdP struct {
	c        *api.Client
	cfg      Config
	accessor string
	// IssuerURL is the iss of the tokens; discovery is below it.
	IssuerURL string
	// Audience is the aud of the tokens (the role's client id).
	Audience string

	mu sync.Mutex // serializes user and group changes
}

// User is someone to mint a token for.
type User struct {
	Name   string // login name, also the entity name
	Tenant string
	// TenantName is the tenant's display name (the tenant_name claim);
	// empty leaves the claim empty.
	TenantName string
	Email      string
	Roles      []string // identity-provider role names: groups of the entity
}

// Setup configures the issuer, key, role and userpass mount idempotently.
// c must be allowed to do so (a root or admin token).
func Setup(ctx context.Context, c *api.Client, cfg Config) (*IdP, error) {
	if cfg.VaultAddr == "" {
		cfg.VaultAddr = c.Address()
	}
	cfg.VaultAddr = strings.TrimRight(cfg.VaultAddr, "/")
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&cfg.Key, "credgate-dev")
	def(&cfg.Role, "credgate")
	def(&cfg.UserpassMount, "credgate-users")
	def(&cfg.TTL, "1h")

	l := c.Logical()
	steps := []struct {
		path string
		data map[string]any
	}{
		{"identity/oidc/config", map[string]any{"issuer": cfg.VaultAddr}},
		{"identity/oidc/key/" + cfg.Key, map[string]any{"algorithm": "RS256", "allowed_client_ids": "*", "rotation_period": "24h", "verification_ttl": "24h"}},
		{"identity/oidc/role/" + cfg.Role, map[string]any{"key": cfg.Key, "template": Template, "ttl": cfg.TTL}},
	}
	for _, s := range steps {
		if _, err := l.WriteWithContext(ctx, s.path, s.data); err != nil {
			return nil, fmt.Errorf("vaultidp: writing %s: %w", s.path, err)
		}
	}
	// Logged-in users may read their own identity token, nothing else. The
	// name stays outside credgate's "credgate-*" role policies on purpose.
	readToken := fmt.Sprintf("path \"identity/oidc/token/%s\" {\n  capabilities = [\"read\"]\n}\n", cfg.Role)
	if err := c.Sys().PutPolicyWithContext(ctx, TokenPolicy, readToken); err != nil {
		return nil, fmt.Errorf("vaultidp: writing policy: %w", err)
	}
	role, err := l.ReadWithContext(ctx, "identity/oidc/role/"+cfg.Role)
	if err != nil || role == nil {
		return nil, fmt.Errorf("vaultidp: reading role: %v", err)
	}
	aud, _ := role.Data["client_id"].(string)
	if aud == "" {
		return nil, errors.New("vaultidp: role has no client_id")
	}

	auths, err := c.Sys().ListAuthWithContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("vaultidp: listing auth methods: %w", err)
	}
	m, ok := auths[cfg.UserpassMount+"/"]
	if !ok {
		if err := c.Sys().EnableAuthWithOptionsWithContext(ctx, cfg.UserpassMount, &api.EnableAuthOptions{Type: "userpass"}); err != nil {
			return nil, fmt.Errorf("vaultidp: enabling userpass: %w", err)
		}
		if auths, err = c.Sys().ListAuthWithContext(ctx); err != nil {
			return nil, fmt.Errorf("vaultidp: listing auth methods: %w", err)
		}
		m = auths[cfg.UserpassMount+"/"]
	}
	if m == nil {
		return nil, errors.New("vaultidp: userpass mount missing")
	}
	return &IdP{c: c, cfg: cfg, accessor: m.Accessor, IssuerURL: cfg.VaultAddr + "/v1/identity/oidc", Audience: aud}, nil
}

// Token makes (or updates) u in Vault, logs in as u and returns a signed
// identity token for u.
func (i *IdP) Token(ctx context.Context, u User) (string, error) {
	if u.Name == "" {
		return "", errors.New("vaultidp: user needs a name")
	}
	i.mu.Lock()
	password, err := i.ensureUser(ctx, u)
	i.mu.Unlock()
	if err != nil {
		return "", err
	}
	login, err := i.c.Logical().WriteWithContext(ctx, "auth/"+i.cfg.UserpassMount+"/login/"+u.Name, map[string]any{"password": password})
	if err != nil || login == nil || login.Auth == nil {
		return "", fmt.Errorf("vaultidp: login as %s: %v", u.Name, err)
	}
	userClient, err := i.c.Clone()
	if err != nil {
		return "", err
	}
	userClient.SetToken(login.Auth.ClientToken)
	defer func() { _ = userClient.Auth().Token().RevokeSelfWithContext(ctx, "") }()
	tok, err := userClient.Logical().ReadWithContext(ctx, "identity/oidc/token/"+i.cfg.Role)
	if err != nil || tok == nil {
		return "", fmt.Errorf("vaultidp: minting identity token: %v", err)
	}
	s, _ := tok.Data["token"].(string)
	if s == "" {
		return "", errors.New("vaultidp: no token in answer")
	}
	return s, nil
}

func (i *IdP) ensureUser(ctx context.Context, u User) (string, error) {
	l := i.c.Logical()
	password, err := randomHex(16)
	if err != nil {
		return "", err
	}
	if _, err := l.WriteWithContext(ctx, "auth/"+i.cfg.UserpassMount+"/users/"+u.Name, map[string]any{"password": password, "token_policies": TokenPolicy}); err != nil {
		return "", fmt.Errorf("vaultidp: writing user: %w", err)
	}
	meta := map[string]any{"tenant_id": u.Tenant, "tenant_name": u.TenantName, "email": u.Email, "name": u.Name}
	if _, err := l.WriteWithContext(ctx, "identity/entity/name/"+u.Name, map[string]any{"metadata": meta}); err != nil {
		return "", fmt.Errorf("vaultidp: writing entity: %w", err)
	}
	ent, err := l.ReadWithContext(ctx, "identity/entity/name/"+u.Name)
	if err != nil || ent == nil {
		return "", fmt.Errorf("vaultidp: reading entity: %v", err)
	}
	entityID, _ := ent.Data["id"].(string)
	hasAlias := false
	if aliases, ok := ent.Data["aliases"].([]any); ok {
		for _, a := range aliases {
			am, _ := a.(map[string]any)
			if am["mount_accessor"] == i.accessor {
				hasAlias = true
			}
		}
	}
	if !hasAlias {
		_, err := l.WriteWithContext(ctx, "identity/entity-alias", map[string]any{
			"name": u.Name, "canonical_id": entityID, "mount_accessor": i.accessor,
		})
		if err != nil {
			return "", fmt.Errorf("vaultidp: writing entity alias: %w", err)
		}
	}
	// Group membership is the roles claim: join the named groups, leave others.
	groups, err := l.ListWithContext(ctx, "identity/group/name")
	if err != nil {
		return "", fmt.Errorf("vaultidp: listing groups: %w", err)
	}
	names := map[string]bool{}
	for _, r := range u.Roles {
		names[r] = true
	}
	if groups != nil {
		if keys, ok := groups.Data["keys"].([]any); ok {
			for _, k := range keys {
				if s, ok := k.(string); ok && !names[s] {
					names[s] = false // a group u is not to be in
				}
			}
		}
	}
	for name, member := range names {
		if err := i.setMember(ctx, name, entityID, member); err != nil {
			return "", err
		}
	}
	return password, nil
}

func (i *IdP) setMember(ctx context.Context, group, entityID string, member bool) error {
	l := i.c.Logical()
	path := "identity/group/name/" + group
	g, err := l.ReadWithContext(ctx, path)
	if err != nil {
		return fmt.Errorf("vaultidp: reading group %s: %w", group, err)
	}
	var ids []string
	if g != nil {
		if raw, ok := g.Data["member_entity_ids"].([]any); ok {
			for _, r := range raw {
				if s, ok := r.(string); ok {
					ids = append(ids, s)
				}
			}
		}
	}
	has := slices.Contains(ids, entityID)
	if has == member && g != nil {
		return nil
	}
	if member {
		ids = append(ids, entityID)
	} else {
		ids = slices.DeleteFunc(ids, func(s string) bool { return s == entityID })
	}
	_, err = l.WriteWithContext(ctx, path, map[string]any{"type": "internal", "member_entity_ids": ids})
	if err != nil {
		return fmt.Errorf("vaultidp: writing group %s: %w", group, err)
	}
	return nil
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

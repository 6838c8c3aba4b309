package vaultlogin

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/hashicorp/vault/api"
)

// A LoginMethod proves credgate's own identity to Vault. Login returns
// Vault's auth answer (token, whether it is renewable, its lease) and reads
// whatever it needs (a token file, a secret id, a JWT) afresh each time, so
// a rotated source is picked up by the next login. c carries no token.
type LoginMethod interface {
	// Name is the method's configuration name: token, token_file,
	// approle, jwt or kubernetes.
	Name() string
	Login(ctx context.Context, c *api.Client) (*api.SecretAuth, error)
}

// Default mounts of the login methods and the pod's service-account token.
const (
	DefaultAppRoleMount        = "approle"
	DefaultJWTMount            = "jwt"
	DefaultKubernetesMount     = "kubernetes"
	DefaultServiceAccountToken = "/var/run/secrets/kubernetes.io/serviceaccount/token"
)

// StaticToken is a token handed to credgate (VAULT_TOKEN). It cannot be
// replaced: once it expires or is revoked credgate is unavailable until
// restarted with another.
type StaticToken struct{ Token string }

func (StaticToken) Name() string { return "token" }

func (m StaticToken) Login(ctx context.Context, c *api.Client) (*api.SecretAuth, error) {
	return lookupToken(ctx, c, m.Token)
}

// TokenFile is a token that something else keeps fresh in a file (Vault
// Agent's or Vault Proxy's file sink); the file is read again whenever it
// changes and whenever Vault refuses the token.
type TokenFile struct{ Path string }

func (TokenFile) Name() string { return "token_file" }

func (m TokenFile) Login(ctx context.Context, c *api.Client) (*api.SecretAuth, error) {
	tok, err := readSecretFile(m.Path)
	if err != nil {
		return nil, err
	}
	return lookupToken(ctx, c, tok)
}

// Source is the file whose changes mean a new token is waiting.
func (m TokenFile) Source() string { return m.Path }

// Inputs are the files a login reads.
func (m TokenFile) Inputs() []string { return []string{m.Path} }

// lookupToken turns a token into the auth answer a login would have given.
func lookupToken(ctx context.Context, c *api.Client, tok string) (*api.SecretAuth, error) {
	if tok == "" {
		return nil, errors.New("no token")
	}
	c = c.WithRequestCallbacks(func(r *api.Request) { r.ClientToken = tok })
	sec, err := c.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("looking up the token: %w", err)
	}
	renewable, _ := sec.TokenIsRenewable()
	ttl, _ := sec.TokenTTL()
	lease := int(ttl.Seconds())
	if sec.Data["expire_time"] != nil && lease < 1 {
		lease = 1 // under a second left: expiring, not eternal (ttl 0)
	}
	policies, _ := sec.TokenPolicies()
	return &api.SecretAuth{ClientToken: tok, Renewable: renewable, LeaseDuration: lease, Policies: policies}, nil
}

// AppRole logs in with Vault's AppRole method: a role id (inline or from a
// file) and a secret id from a file, read at each login. When
// SecretIDWrapped is set, the file holds a response-wrapping token whose
// answer is the secret id; it is unwrapped once per distinct file content
// (a wrapping token works once) and the secret id kept for later logins.
type AppRole struct {
	Mount           string
	RoleID          string
	RoleIDFile      string
	SecretIDFile    string
	SecretIDWrapped bool

	mu        sync.Mutex
	wrapToken string
	unwrapped string
}

func (*AppRole) Name() string { return "approle" }

// Inputs are the files a login reads.
func (m *AppRole) Inputs() []string { return nonEmpty(m.RoleIDFile, m.SecretIDFile) }

func (m *AppRole) Login(ctx context.Context, c *api.Client) (*api.SecretAuth, error) {
	roleID := m.RoleID
	if m.RoleIDFile != "" {
		var err error
		if roleID, err = readSecretFile(m.RoleIDFile); err != nil {
			return nil, err
		}
	}
	secretID, err := m.secretID(ctx, c)
	if err != nil {
		return nil, err
	}
	return login(ctx, c, cmp.Or(m.Mount, DefaultAppRoleMount), map[string]any{"role_id": roleID, "secret_id": secretID})
}

func (m *AppRole) secretID(ctx context.Context, c *api.Client) (string, error) {
	if m.SecretIDFile == "" {
		return "", nil // a role may be bound by CIDR alone
	}
	v, err := readSecretFile(m.SecretIDFile)
	if err != nil || !m.SecretIDWrapped {
		return v, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if v == m.wrapToken && m.unwrapped != "" {
		return m.unwrapped, nil
	}
	// Unwrap with the wrapping token as the client's token, on a copy:
	// UnwrapWithContext would otherwise set it on c for good.
	uc, err := c.Clone()
	if err != nil {
		return "", err
	}
	uc.SetToken(v)
	sec, err := uc.Logical().UnwrapWithContext(ctx, "")
	if err != nil {
		return "", fmt.Errorf("unwrapping the secret id: %w", err)
	}
	var id string
	if sec != nil {
		id, _ = sec.Data["secret_id"].(string)
	}
	if id == "" {
		return "", errors.New("unwrapping the secret id: the answer holds no secret_id")
	}
	m.wrapToken, m.unwrapped = v, id
	return id, nil
}

// JWT logs in with Vault's jwt method: a JWT read from a file at each login
// (a Kubernetes projected service-account token, a workload identity
// token) and the role it is bound to.
type JWT struct {
	Mount string
	Role  string
	Path  string
}

func (JWT) Name() string { return "jwt" }

// Inputs are the files a login reads.
func (m JWT) Inputs() []string { return []string{m.Path} }

func (m JWT) Login(ctx context.Context, c *api.Client) (*api.SecretAuth, error) {
	return jwtLogin(ctx, c, cmp.Or(m.Mount, DefaultJWTMount), m.Role, m.Path)
}

// Kubernetes logs in with Vault's kubernetes method: the pod's
// service-account token (read at each login, since the kubelet rotates it)
// and the role it is bound to.
type Kubernetes struct {
	Mount string
	Role  string
	// Path of the service-account token; default DefaultServiceAccountToken.
	Path string
}

func (Kubernetes) Name() string { return "kubernetes" }

// Inputs are the files a login reads.
func (m Kubernetes) Inputs() []string { return []string{cmp.Or(m.Path, DefaultServiceAccountToken)} }

func (m Kubernetes) Login(ctx context.Context, c *api.Client) (*api.SecretAuth, error) {
	return jwtLogin(ctx, c, cmp.Or(m.Mount, DefaultKubernetesMount), m.Role, cmp.Or(m.Path, DefaultServiceAccountToken))
}

// jwtLogin is the request the jwt and kubernetes methods share:
// auth/<mount>/login with the role and the token.
func jwtLogin(ctx context.Context, c *api.Client, mount, role, path string) (*api.SecretAuth, error) {
	jwt, err := readSecretFile(path)
	if err != nil {
		return nil, err
	}
	return login(ctx, c, mount, map[string]any{"role": role, "jwt": jwt})
}

func login(ctx context.Context, c *api.Client, mount string, body map[string]any) (*api.SecretAuth, error) {
	path := "auth/" + strings.Trim(mount, "/") + "/login"
	sec, err := c.Logical().WriteWithContext(ctx, path, body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if sec == nil || sec.Auth == nil || sec.Auth.ClientToken == "" {
		return nil, fmt.Errorf("%s: the answer holds no token", path)
	}
	return sec.Auth, nil
}

func nonEmpty(paths ...string) []string {
	var out []string
	for _, p := range paths {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

// readSecretFile reads a token or id from a file. The error names the file,
// never its content.
func readSecretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err // *PathError names the path only
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return v, nil
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/vault/api"

	"github.com/credgate/credgate/bootstrap"
	"github.com/credgate/credgate/policy"
	"github.com/credgate/credgate/vaultlogin"
	"github.com/credgate/credgate/vaultstore/devvault"
	"github.com/credgate/credgate/vaultstore/vaultidp"
)

func bootstrapCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bootstrap", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := bootstrap.Options{}
	fs.StringVar(&o.Mount, "mount", policy.DefaultMount, "KV v2 mount for credgate's records")
	fs.StringVar(&o.TokenRole, "token-role", policy.DefaultTokenRole, "token role for per-caller batch tokens")
	fs.StringVar(&o.ServicePolicy, "service-policy", policy.DefaultServicePolicy, "name of credgate's own policy")
	fs.StringVar(&o.AuditFile, "audit-file", "", "enable a file audit device writing to this path")
	fs.BoolVar(&o.IssueToken, "issue-token", false, "print a periodic token with credgate's policy for `credgate serve`")
	tokenFile := fs.String("token-file", "", "with -issue-token: write the token to this file (mode 0600) instead of printing it")
	l := &o.Login
	fs.StringVar(&l.AppRole, "approle", "", "write an AppRole role of this name for credgate's own login")
	fs.StringVar(&l.AppRoleMount, "approle-mount", vaultlogin.DefaultAppRoleMount, "mount of the approle auth method")
	roleIDFile := fs.String("role-id-file", "", "with -approle: write the role id to this file")
	secretIDFile := fs.String("secret-id-file", "", "with -approle: write a new secret id to this file (mode 0600)")
	fs.StringVar(&l.JWT, "jwt-role", "", "write a jwt role of this name for credgate's own login")
	fs.StringVar(&l.JWTMount, "jwt-mount", vaultlogin.DefaultJWTMount, "mount of the jwt auth method")
	fs.StringVar(&l.JWTDiscoveryURL, "jwt-discovery-url", "", "OIDC discovery URL the jwt method trusts")
	fs.StringVar(&l.JWTJWKSURL, "jwt-jwks-url", "", "JWKS URL the jwt method trusts (instead of discovery)")
	fs.StringVar(&l.JWTIssuer, "jwt-issuer", "", "bound issuer of credgate's JWTs")
	fs.StringVar(&l.JWTAudience, "jwt-audience", "", "audience of credgate's JWTs (required with -jwt-role)")
	fs.StringVar(&l.JWTSubject, "jwt-subject", "", "the one subject allowed to log in with the jwt role")
	fs.StringVar(&l.TTL, "login-ttl", "1h", "life of a login token (renewed by credgate)")
	fs.StringVar(&l.MaxTTL, "login-max-ttl", "24h", "maximum life of a login token (credgate logs in again)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c, err := api.NewClient(api.DefaultConfig()) // VAULT_ADDR, VAULT_TOKEN, VAULT_CACERT, ...
	if err != nil {
		return err
	}
	if c.Token() == "" {
		return errors.New("bootstrap needs an administrator's token in VAULT_TOKEN")
	}
	res, err := bootstrap.Bootstrap(ctx, c, o)
	if err != nil {
		return err
	}
	steps := make([]string, 0, len(res.Steps))
	for s := range res.Steps {
		steps = append(steps, s)
	}
	sort.Strings(steps)
	for _, s := range steps {
		fmt.Fprintf(stdout, "%-8s %s\n", res.Steps[s], s)
	}
	if res.AppRoleID != "" {
		fmt.Fprintf(stdout, "approle %s role id: %s\n", l.AppRole, res.AppRoleID)
		if *roleIDFile != "" {
			if err := os.WriteFile(*roleIDFile, []byte(res.AppRoleID+"\n"), 0o600); err != nil {
				return err
			}
		}
		if *secretIDFile != "" {
			id, err := bootstrap.IssueSecretID(ctx, c, l.AppRoleMount, l.AppRole)
			if err != nil {
				return err
			}
			if err := os.WriteFile(*secretIDFile, []byte(id+"\n"), 0o600); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "approle %s: a new secret id is in %s\n", l.AppRole, *secretIDFile)
		}
	}
	switch {
	case res.Token != "" && *tokenFile != "":
		if err := os.WriteFile(*tokenFile, []byte(res.Token+"\n"), 0o600); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "credgate token (policy %s) written to %s\n", o.ServicePolicy, *tokenFile)
	case res.Token != "":
		fmt.Fprintf(stdout, "credgate token (policy %s): %s\n", o.ServicePolicy, res.Token)
	}
	return nil
}

// devOutboundAllow is what the dev stack may call on a tenant's behalf
// besides public addresses: loopback, where a developer runs a token
// server to try rotation against.
func devOutboundAllow() []string { return []string{"127.0.0.0/8", "::1"} }

// devState is what `credgate dev` leaves for `credgate dev token`. It holds
// the dev Vault's root token: a throwaway in-memory server's, nothing more.
type devState struct {
	VaultAddr     string `json:"vault_addr"`
	RootToken     string `json:"root_token"`
	CredgateURL   string `json:"credgate_url"`
	IssuerURL     string `json:"issuer_url"`
	Audience      string `json:"audience"`
	UserpassMount string `json:"userpass_mount"`
}

const defaultStateFile = ".credgate-dev/state.json"

func devCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8080", "where credgate listens")
	vaultListen := fs.String("vault-listen", "127.0.0.1:8200", "where the Vault dev server listens (a free port if taken)")
	vaultBin := fs.String("vault-bin", "", "vault binary (default: bin/vault of this checkout, then PATH)")
	statePath := fs.String("state", defaultStateFile, "file for the dev stack's state, read by `credgate dev token`")
	auditPath := fs.String("audit-file", "", "where Vault writes its audit log (default: audit.log beside the state file)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if l, err := net.Listen("tcp", *listen); err != nil {
		return fmt.Errorf("cannot listen on %s (%v); pass -listen 127.0.0.1:PORT", *listen, err)
	} else {
		l.Close()
	}

	addr, token := os.Getenv("VAULT_ADDR"), os.Getenv("VAULT_TOKEN")
	if addr == "" || token == "" {
		bin := *vaultBin
		if bin == "" {
			wd, _ := os.Getwd()
			bin = devvault.FindBinary(wd)
		}
		if bin == "" {
			return errors.New("no vault binary: run `make vault` (builds bin/vault), pass -vault-bin, or set VAULT_ADDR and VAULT_TOKEN")
		}
		if l, err := net.Listen("tcp", *vaultListen); err != nil {
			*vaultListen = "127.0.0.1:0"
		} else {
			l.Close()
		}
		fmt.Fprintf(stderr, "starting Vault dev server (%s)...\n", bin)
		srv, err := devvault.Start(bin, *vaultListen)
		if err != nil {
			return err
		}
		defer srv.Stop()
		addr, token = srv.Addr, srv.RootToken
	}
	root, err := rootClient(addr, token)
	if err != nil {
		return err
	}
	stateDir := filepath.Dir(*statePath)
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return err
	}
	auditFile := *auditPath
	if auditFile == "" {
		if auditFile, err = filepath.Abs(filepath.Join(stateDir, "audit.log")); err != nil {
			return err
		}
	}
	res, err := bootstrap.Bootstrap(ctx, root, bootstrap.Options{AuditFile: auditFile, IssueToken: true})
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	idp, err := vaultidp.Setup(ctx, root, vaultidp.Config{VaultAddr: addr})
	if err != nil {
		return err
	}
	devToken, err := idp.Token(ctx, vaultidp.User{Name: "dev", Tenant: "acme", TenantName: "Acme Corporation", Email: "dev@acme.example", Roles: []string{"integration_admin"}})
	if err != nil {
		return err
	}

	cfg := DefaultConfig()
	cfg.Listen = *listen
	cfg.Vault.Address, cfg.Vault.Token = addr, res.Token
	cfg.Auth.Issuers = []IssuerConfig{{Name: "vault-dev", URL: idp.IssuerURL, Audiences: []string{idp.Audience}}}
	// Token servers on this machine may be tried out; nowhere else
	// non-public.
	cfg.Outbound.Allow = devOutboundAllow()
	// Rate limits shared through Redis when one is named (the compose stack).
	cfg.RateLimit.Redis.Address = os.Getenv("CREDGATE_REDIS_ADDR")
	if err := cfg.Validate(); err != nil {
		return err
	}
	log, err := NewLogger("info", stderr)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	m := &Main{Config: cfg, Logger: log}
	if err := m.Run(ctx); err != nil {
		return err
	}
	defer m.Close()

	base := "http://" + m.Addr()
	st := devState{VaultAddr: addr, RootToken: token, CredgateURL: base, IssuerURL: idp.IssuerURL, Audience: idp.Audience, UserpassMount: "credgate-users"}
	if err := writeState(*statePath, st); err != nil {
		return err
	}
	fmt.Fprintf(stdout, `
credgate dev stack is up.
  credgate  %[1]s
  Vault     %[2]s  (dev server, in memory; root token in %[3]s)
  issuer    %[4]s  (audience %[5]s)
  audit log %[6]s
  user      dev, tenant acme, role integration_admin (token valid 1h)
  outbound  token endpoints on loopback allowed (outbound.allow: %[9]s)
  OAuth     connects come back to %[1]s/oauth/callback (register it as the redirect URI)

export TOKEN='%[7]s'

curl -s -X POST %[1]s/api/v1/services -H "Authorization: Bearer $TOKEN" \
  -H 'Content-Type: application/json' \
  -d '{"name":"Stripe","type":"payment_gateway","base_url":"https://api.stripe.com"}'
curl -s %[1]s/api/v1/services -H "Authorization: Bearer $TOKEN"

API docs:  %[1]s/docs (Authorize with the token above)
Another user: %[8]s dev token --tenant globex --roles integration_viewer --user bob
Stop with Ctrl-C.
`, base, addr, *statePath, idp.IssuerURL, idp.Audience, auditFile, devToken, os.Args[0], strings.Join(devOutboundAllow(), ", "))

	select {
	case <-ctx.Done():
		fmt.Fprintln(stderr, "stopping")
		return nil
	case err := <-m.served:
		return err
	}
}

func rootClient(addr, token string) (*api.Client, error) {
	conf := api.DefaultConfig()
	conf.Address = addr
	c, err := api.NewClient(conf)
	if err != nil {
		return nil, err
	}
	c.SetToken(token)
	return c, nil
}

func writeState(path string, st devState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

func tokenCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dev token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	tenant := fs.String("tenant", "acme", "tenant_id claim")
	roles := fs.String("roles", "integration_admin", "comma-separated role names (the roles claim)")
	user := fs.String("user", "dev", "user name (sub is the user's Vault entity)")
	email := fs.String("email", "", "email claim (default USER@TENANT.example)")
	statePath := fs.String("state", defaultStateFile, "state file written by `credgate dev`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	b, err := os.ReadFile(*statePath)
	if err != nil {
		return fmt.Errorf("no dev stack state (%v): is `make dev` running here?", err)
	}
	var st devState
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("%s: %w", *statePath, err)
	}
	root, err := rootClient(st.VaultAddr, st.RootToken)
	if err != nil {
		return err
	}
	idp, err := vaultidp.Setup(ctx, root, vaultidp.Config{VaultAddr: st.VaultAddr, UserpassMount: st.UserpassMount})
	if err != nil {
		return err
	}
	if *email == "" {
		*email = *user + "@" + *tenant + ".example"
	}
	var rl []string
	for _, r := range strings.Split(*roles, ",") {
		if r = strings.TrimSpace(r); r != "" {
			rl = append(rl, r)
		}
	}
	tok, err := idp.Token(ctx, vaultidp.User{Name: *user, Tenant: *tenant, Email: *email, Roles: rl})
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}

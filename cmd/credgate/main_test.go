package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/bootstrap"
	"github.com/credgate/credgate/vaultlogin"
	"github.com/credgate/credgate/vaultstore/devvault"
	"github.com/credgate/credgate/vaultstore/vaultidp"
	"github.com/credgate/credgate/vaultstore/vaulttest"
)

func TestValidateReportsEveryProblemAtOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "credgate.yaml")
	bad := `
listen: "nonsense"
log_level: loud
vault:
  address: "ftp://vault"
  max_token_ttl: 10s
  inventory_cache_mb: -1
auth:
  issuers:
    - url: "http://idp.example.com/realms/acme"
      audiences: []
    - name: twice
      url: https://a.example
      audiences: [x]
    - name: twice
      url: https://b.example
      audiences: [y]
  role_map:
    admins: [superuser]
outbound:
  proxy: socks5://proxy.corp.example:1080
cors:
  allowed_origins: ["https://app.example.com/", "*"]
`
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(path, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	err = cfg.Validate()
	if err == nil {
		t.Fatal("Validate accepted a broken configuration")
	}
	for _, want := range []string{"listen:", "log_level:", "vault.address", "vault token", "vault.max_token_ttl", "vault.inventory_cache_mb", "auth.issuers[0].url", "auth.issuers[0].audiences", "auth.issuers[2].name", "superuser", "outbound.proxy", `cors.allowed_origins: "https://app.example.com/"`, `cors.allowed_origins: "*"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the report lacks %q:\n%v", want, err)
		}
	}
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"serve", "-check-config", "-config", path}, &out, &errOut); err == nil || !strings.Contains(err.Error(), "log_level") {
		t.Fatalf("serve -check-config: %v", err)
	}
}

func TestConfigFileTyposAndEnvironment(t *testing.T) {
	path := filepath.Join(t.TempDir(), "credgate.yaml")
	if err := os.WriteFile(path, []byte("vault:\n  adress: http://x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(path, func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), "adress") {
		t.Fatalf("a misspelt key: %v; want an error naming it", err)
	}
	env := map[string]string{
		"VAULT_ADDR": "https://vault.internal:8200", "VAULT_TOKEN": "s.own",
		"CREDGATE_OIDC_ISSUER": "https://idp.example.com/realms/acme", "CREDGATE_OIDC_AUDIENCE": "credgate,credgate-cli",
		"CREDGATE_LISTEN": "0.0.0.0:9000",
	}
	cfg, err := LoadConfig("", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("a configuration from the environment alone: %v", err)
	}
	if cfg.Listen != "0.0.0.0:9000" || cfg.Vault.Address != "https://vault.internal:8200" || len(cfg.Auth.Issuers[0].Audiences) != 2 {
		t.Fatalf("environment not applied: %+v", cfg)
	}
}

func TestMainServesAndClosesGracefully(t *testing.T) {
	v := vaulttest.Start(t)
	root := v.Client(t)
	ctx := context.Background()
	mount := fmt.Sprintf("cg-main-%d", time.Now().UnixNano())
	res, err := bootstrap.Bootstrap(ctx, root, bootstrap.Options{Mount: mount, IssueToken: true})
	if err != nil {
		t.Fatal(err)
	}
	idp, err := vaultidp.Setup(ctx, root, vaultidp.Config{VaultAddr: v.Addr})
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.Vault.Address, cfg.Vault.Token, cfg.Vault.Mount = v.Addr, res.Token, mount
	cfg.Auth.Issuers = []IssuerConfig{{URL: idp.IssuerURL, Audiences: []string{idp.Audience}}}
	cfg.Usage.PendingReads = 1 // the ledgers gather one (reader, credential) pair a minute
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	m := &Main{Config: cfg, Logger: zap.NewNop()}
	if err := m.Run(ctx); err != nil {
		t.Fatal(err)
	}
	base := "http://" + m.Addr()
	tok, err := idp.Token(ctx, vaultidp.User{Name: "main-test", Tenant: "acme", Email: "m@acme.example", Roles: []string{"integration_admin"}})
	if err != nil {
		t.Fatal(err)
	}
	call := func(method, path, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(r.Body).Decode(&out)
		return r.StatusCode, out
	}
	st, svc := call("POST", "/api/v1/services", `{"name":"Okta"}`)
	if st != 201 {
		t.Fatalf("create through the real wiring: %d", st)
	}
	// usage.pending_reads and the lost reads' metric are wired: past a
	// bound of one pair, the second credential's read is answered and
	// counted as lost.
	for _, name := range []string{"one", "two"} {
		st, out := call("POST", "/api/v1/credentials", fmt.Sprintf(`{"integrationId":%q,"credentialName":%q,"authType":"api_key","apiKey":"k-%s"}`, svc["id"], name, name))
		if st != 201 {
			t.Fatalf("credential %s: %d %v", name, st, out)
		}
		id, _ := out["data"].(map[string]any)["id"].(string)
		if st, _ := call("GET", fmt.Sprint("/api/v1/credentials/", svc["id"], "?credentialId=", id), ""); st != 200 {
			t.Fatalf("read of %s: %d", name, st)
		}
	}
	if n := metric(t, base, "credgate_usage_reads_lost_total"); n != 1 {
		t.Fatalf("credgate_usage_reads_lost_total %v; want 1 (usage.pending_reads: 1)", n)
	}
	if r, err := http.Get(base + "/readyz"); err != nil || r.StatusCode != 200 {
		t.Fatalf("readyz: %v %v", r, err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Fatal("still serving after Close")
	}
}

// TestDevStackPrintedCurlWorks is `make dev` followed by the printed
// commands, run as printed.
func TestDevStackPrintedCurlWorks(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl is needed to run the printed commands (.ci/run installs it)")
	}
	t.Setenv("VAULT_ADDR", "")
	t.Setenv("VAULT_TOKEN", "")
	port, err := devvault.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(t.TempDir(), "state.json")
	ctx, cancel := context.WithCancel(context.Background())
	out := &devvault.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"dev", "-listen", fmt.Sprintf("127.0.0.1:%d", port), "-vault-listen", "127.0.0.1:0", "-state", state}, out, io.Discard)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("credgate dev: %v", err)
		}
	})
	deadline := time.Now().Add(90 * time.Second)
	for !strings.Contains(out.String(), "Stop with Ctrl-C") {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("credgate dev ended: %v\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("credgate dev did not come up:\n%s", out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Run the printed export and curls exactly as a user would paste them.
	printed := out.String()
	script := regexp.MustCompile(`(?s)export TOKEN=.*?\n\n(curl .*?)\n\n`).FindString(printed)
	if script == "" {
		t.Fatalf("no export and curl in:\n%s", printed)
	}
	sh := exec.Command("bash", "-c", "set -e\n"+script)
	got, err := sh.Output()
	if err != nil {
		t.Fatalf("printed commands failed: %v\n%s", err, got)
	}
	lines := strings.Split(strings.TrimSpace(strings.ReplaceAll(string(got), "}{", "}\n{")), "\n")
	var created struct {
		ID       string `json:"id"`
		TenantID string `json:"tenant_id"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &created); err != nil || created.TenantID != "acme" || created.ID == "" {
		t.Fatalf("the printed POST answered %s", lines[0])
	}
	if !strings.Contains(lines[len(lines)-1], created.ID) {
		t.Fatalf("the printed GET does not list the new service: %s", lines[len(lines)-1])
	}

	// credgate dev token mints tokens for other users of the running stack.
	var tokOut bytes.Buffer
	if err := run(context.Background(), []string{"dev", "token", "-state", state, "--tenant", "globex", "--roles", "integration_viewer", "--user", "bob"}, &tokOut, io.Discard); err != nil {
		t.Fatal(err)
	}
	bob := strings.TrimSpace(tokOut.String())
	req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/debug/auth", port), nil)
	req.Header.Set("Authorization", "Bearer "+bob)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var who struct {
		Tenant string   `json:"tenant"`
		Roles  []string `json:"roles"`
	}
	if err := json.NewDecoder(res.Body).Decode(&who); err != nil || who.Tenant != "globex" || len(who.Roles) != 1 || who.Roles[0] != "integration_viewer" {
		t.Fatalf("bob's token: %d %+v %v", res.StatusCode, who, err)
	}
	if st, err := os.Stat(state); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("state file: %v %v; want mode 0600", st, err)
	}
}

func TestExampleConfigurationIsValid(t *testing.T) {
	cfg, err := LoadConfig("../../deploy/credgate.example.yaml", func(k string) string {
		return map[string]string{"VAULT_TOKEN": "s.example"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("deploy/credgate.example.yaml: %v", err)
	}
	if cfg.Auth.Issuers[0].RolesClaim != "realm_access.roles" || cfg.RateLimit.Tenants["acme"] != 1000 || cfg.Vault.LoginMethod().Name() != "kubernetes" ||
		cfg.Monitor.TenantThresholds["acme"][1] != 14 || cfg.Webhooks.MaxAttempts != 15 {
		t.Fatalf("example not read as written: %+v", cfg)
	}
	if acme, other := cfg.Limits.of("acme"), cfg.Limits.of("globex"); acme.Credentials != 50000 || acme.Services != 1000 || other.Credentials != 10000 || other.Webhooks != 20 {
		t.Fatalf("limits: acme %+v, another tenant %+v", acme, other)
	}
}

// TestTenantLimitsConfiguration: a tenant's entry takes what it leaves
// out from default, -1 lifts a bound, and nonsense is refused by name.
func TestTenantLimitsConfiguration(t *testing.T) {
	path := filepath.Join(t.TempDir(), "credgate.yaml")
	write := func(text string) (Config, error) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := LoadConfig(path, func(k string) string {
			return map[string]string{"VAULT_ADDR": "http://127.0.0.1:8200", "VAULT_TOKEN": "s.x", "CREDGATE_OIDC_ISSUER": "https://idp.example.com", "CREDGATE_OIDC_AUDIENCE": "credgate"}[k]
		})
		if err != nil {
			t.Fatal(err)
		}
		return cfg, cfg.Validate()
	}
	cfg, err := write("limits:\n  default: {bytes: -1}\n  tenants:\n    acme: {services: 5, webhooks: 3}\n")
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Limits.of("acme"); got != (credgate.TenantLimits{Services: 5, Credentials: 10000, Webhooks: 3, Bytes: 0}) {
		t.Fatalf("acme: %+v", got)
	}
	if got := cfg.Limits.of("globex"); got != (credgate.TenantLimits{Services: 1000, Credentials: 10000, Webhooks: 20, Bytes: 0}) {
		t.Fatalf("another tenant: %+v", got)
	}
	for text, want := range map[string]string{
		"usage:\n  pending_reads: -1\n":                   "usage.pending_reads",
		"usage:\n  pending_reads: 2000000\n":              "usage.pending_reads",
		"limits:\n  default: {credentials: 0}\n":          "limits.default",
		"limits:\n  default: {webhooks: 1000}\n":          "limits.default.webhooks",
		"limits:\n  tenants:\n    acme: {webhooks: -1}\n": "limits.tenants.acme.webhooks",
		"limits:\n  tenants:\n    acme: {services: -5}\n": "limits.tenants.acme",
		"limits:\n  tenants:\n    'a/b': {services: 5}\n": "limits.tenants.a/b",
	} {
		if _, err := write(text); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v; want an error naming %s", text, err, want)
		}
	}
}

// TestREADMEConfigurationPassesCheckConfig runs the configuration block of
// the README through `credgate serve -check-config`, so that the README
// cannot drift from what credgate accepts.
func TestREADMEConfigurationPassesCheckConfig(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "### Configuration")
	if !ok {
		t.Fatal("the README has no Configuration section")
	}
	_, block, ok := strings.Cut(rest, "```yaml\n")
	if ok {
		block, _, ok = strings.Cut(block, "```")
	}
	if !ok || !strings.Contains(block, "auth:") || !strings.Contains(block, "vault:") {
		t.Fatalf("no yaml block with vault: and auth: in the Configuration section:\n%s", block)
	}
	path := filepath.Join(t.TempDir(), "credgate.yaml")
	if err := os.WriteFile(path, []byte(block), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("VAULT_ADDR", "")
	t.Setenv("VAULT_TOKEN", "s.example") // a secret never goes in the file
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"serve", "-config", path, "-check-config"}, &stdout, &stderr); err != nil {
		t.Fatalf("credgate serve -check-config on the README's block: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "configuration is valid") {
		t.Fatalf("check-config said %q", stdout.String())
	}
}

// TestVaultAuthMethodIsChosenAndChecked: the login method follows the
// configuration (VAULT_TOKEN wins over a token file, as before), and what
// a method needs is asked for by name.
func TestVaultAuthMethodIsChosenAndChecked(t *testing.T) {
	load := func(yaml string, env map[string]string) Config {
		t.Helper()
		path := filepath.Join(t.TempDir(), "credgate.yaml")
		if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := LoadConfig(path, func(k string) string { return env[k] })
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	chosen := []struct {
		yaml string
		env  map[string]string
		want string
	}{
		{"vault: {token_file: /run/vault-token}", nil, "token_file"},
		{"vault: {token_file: /run/vault-token}", map[string]string{"VAULT_TOKEN": "s.x"}, "token"},
		{"vault: {auth: {method: approle, role_id: r, secret_id_file: /run/sid}}", map[string]string{"VAULT_TOKEN": "s.x"}, "approle"},
		{"vault: {auth: {method: kubernetes, role: credgate}}", nil, "kubernetes"},
		{"vault: {auth: {method: jwt, role: credgate, jwt_file: /run/jwt}}", nil, "jwt"},
	}
	for _, c := range chosen {
		if got := load(c.yaml, c.env).Vault.LoginMethod().Name(); got != c.want {
			t.Errorf("%s with %v: %s, want %s", c.yaml, c.env, got, c.want)
		}
	}
	if p := load("vault: {auth: {method: kubernetes, role: credgate}}", nil).Vault.LoginMethod().(vaultlogin.Kubernetes); p.Role != "credgate" {
		t.Errorf("kubernetes: %+v", p)
	}
	refused := map[string]string{
		"vault: {auth: {method: approle, secret_id_file: /run/sid}}":         "role_id or role_id_file",
		"vault: {auth: {method: approle, role_id: r}}":                       "vault.auth.secret_id_file",
		"vault: {auth: {method: jwt, role: credgate}}":                       "vault.auth.jwt_file",
		"vault: {auth: {method: kubernetes}}":                                "vault.auth.role",
		"vault: {auth: {method: ldap}}":                                      `vault.auth.method: "ldap"`,
		"vault: {auth: {method: token}}":                                     "vault token: set VAULT_TOKEN",
		"vault: {token_file: /a, auth: {token_file: /b}}":                    "name different files",
		"vault: {auth: {method: jwt, role: r, jwt_file: /j, mount: ../sys}}": "vault.auth.mount",
	}
	for yaml, want := range refused {
		err := load(yaml, nil).Validate()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v; want %q", yaml, err, want)
		}
	}
}

// TestREADMEWorkloadIdentityExamplesPassCheckConfig runs every
// configuration example of the README's Least privilege section through
// `credgate serve -check-config`, and checks each binds an issuer to its
// tenant and loads its grants; a broken variant of one is refused.
func TestREADMEWorkloadIdentityExamplesPassCheckConfig(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "## Least privilege\n")
	if !ok {
		t.Fatal("the README has no Least privilege section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var blocks []string
	for rest := section; ; {
		var block string
		if _, rest, ok = strings.Cut(rest, "```yaml\n"); !ok {
			break
		}
		block, rest, _ = strings.Cut(rest, "```")
		blocks = append(blocks, block)
	}
	if len(blocks) < 5 {
		t.Fatalf("%d yaml examples in the Least privilege section; want Kubernetes, GitHub Actions, GitLab CI, SPIFFE and a mixed one", len(blocks))
	}
	t.Setenv("VAULT_ADDR", "https://vault.example.com:8200")
	t.Setenv("VAULT_TOKEN", "s.example")
	check := func(block string) error {
		path := filepath.Join(t.TempDir(), "credgate.yaml")
		if err := os.WriteFile(path, []byte(block), 0o600); err != nil {
			t.Fatal(err)
		}
		var stdout, stderr bytes.Buffer
		return run(context.Background(), []string{"serve", "-config", path, "-check-config"}, &stdout, &stderr)
	}
	for i, block := range blocks {
		if err := check(block); err != nil {
			t.Errorf("example %d: %v\n%s", i+1, err, block)
			continue
		}
		path := filepath.Join(t.TempDir(), "credgate.yaml")
		_ = os.WriteFile(path, []byte(block), 0o600)
		cfg, err := LoadConfig(path, os.Getenv)
		if err != nil {
			t.Fatal(err)
		}
		bound := slices.ContainsFunc(cfg.Auth.Issuers, func(iss IssuerConfig) bool { return iss.Tenant == "acme" })
		grants, err := cfg.grants(time.Now())
		if !bound || err != nil || len(grants["acme"]) == 0 {
			t.Errorf("example %d: an issuer bound to acme %v, grants %v (%v)", i+1, bound, grants, err)
		}
	}
	broken := strings.Replace(blocks[0], "      tenant: acme\n", "      tenant: acme\n      tenants: [acme]\n", 1)
	if err := check(broken); err == nil || !strings.Contains(err.Error(), "tenant") {
		t.Fatalf("an issuer with both tenant and tenants: %v", err)
	}
}

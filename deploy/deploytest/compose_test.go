package deploytest

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
)

// TestComposeFileLoadsAndNamesFilesThatExist loads deploy/compose.yaml
// with compose-go (the library docker compose itself uses), so that it is
// valid Compose, and checks what it refers to: the build context and
// Dockerfile exist, credgate waits for healthy Vault and Redis, shares
// Vault's network (so the issuer URL is a loopback one), runs read-only as
// a non-root user, and is told where Redis is.
func TestComposeFileLoadsAndNamesFilesThatExist(t *testing.T) {
	opts, err := cli.NewProjectOptions([]string{"../compose.yaml"}, cli.WithWorkingDirectory(".."), cli.WithOsEnv)
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("compose-go refused deploy/compose.yaml: %v", err)
	}
	for _, name := range []string{"vault", "redis", "credgate"} {
		if _, err := p.GetService(name); err != nil {
			t.Fatal(err)
		}
	}
	cg, _ := p.GetService("credgate")
	if cg.Build == nil {
		t.Fatal("credgate is not built from the repository")
	}
	df := filepath.Join(cg.Build.Context, cg.Build.Dockerfile)
	for _, f := range []string{cg.Build.Context, df, filepath.Join(cg.Build.Context, "go.mod"), filepath.Join(cg.Build.Context, ".dockerignore")} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("compose.yaml refers to %s: %v", f, err)
		}
	}
	for _, dep := range []string{"vault", "redis"} {
		if d, ok := cg.DependsOn[dep]; !ok || d.Condition != "service_healthy" {
			t.Errorf("credgate does not wait for a healthy %s: %+v", dep, cg.DependsOn)
		}
	}
	if cg.NetworkMode != "service:vault" || !cg.ReadOnly || cg.User == "" || cg.User[0] == '0' {
		t.Errorf("credgate: network %q, read-only %v, user %q", cg.NetworkMode, cg.ReadOnly, cg.User)
	}
	if v := cg.Environment["CREDGATE_REDIS_ADDR"]; v == nil || *v != "redis:6379" {
		t.Errorf("Redis address: %v", v)
	}
	if cmd := cg.Command; len(cmd) == 0 || cmd[0] != "dev" || !slices.Contains(cmd, "-audit-file") {
		t.Errorf("credgate's command: %v", cmd)
	}
	vault, _ := p.GetService("vault")
	if vault.HealthCheck == nil || len(vault.Ports) != 2 {
		t.Errorf("vault: health check %v, ports %v", vault.HealthCheck, vault.Ports)
	}
}

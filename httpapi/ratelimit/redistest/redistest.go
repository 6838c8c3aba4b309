// Package redistest runs a real redis-server (Debian's redis-server
// package; .ci/run installs it) on a free loopback port for a test.
package redistest

import (
	"context"
	"fmt"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/credgate/credgate/vaultstore/devvault"
)

// Start runs redis-server for tb, stopped when tb ends, and returns its
// address.
func Start(tb testing.TB) string {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Fatal("redistest: redis-server is not installed (apt-get install redis-server; .ci/run does it)")
	}
	port, err := devvault.FreePort()
	if err != nil {
		tb.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	out := &devvault.Buffer{}
	cmd := exec.Command(bin, "--bind", "127.0.0.1", "--port", fmt.Sprint(port), "--save", "", "--appendonly", "no", "--protected-mode", "yes")
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if c.Ping(context.Background()).Err() == nil {
			return addr
		}
	}
	tb.Fatalf("redistest: redis-server did not answer:\n%s", out.String())
	return ""
}

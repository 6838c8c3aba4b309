// Package devvault runs a Vault dev server (in memory, unsealed, with a
// known root token) as a child process: for `credgate dev` and for tests.
// Never for production: a dev server keeps nothing across restarts.
package devvault

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/vault/api"
)

// Server is a running dev server.
type Server struct {
	Addr      string
	RootToken string
	UnsealKey string
	CACert    string // with TLS: the CA that signed the server's certificate

	cmd  *exec.Cmd
	logs *Buffer
	once sync.Once
	done chan struct{}
}

// Start runs bin as a dev server listening on listen (host:port; port 0
// picks a free one) and waits until it is unsealed and active.
func Start(bin, listen string) (*Server, error) { return StartTLS(bin, listen, "") }

// StartTLS is Start with -dev-tls when tlsDir is not empty: Vault writes
// its generated CA to tlsDir/vault-ca.pem and serves https.
func StartTLS(bin, listen, tlsDir string) (*Server, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, err
	}
	if port == "0" {
		p, err := FreePort()
		if err != nil {
			return nil, err
		}
		port = fmt.Sprint(p)
	}
	addr := net.JoinHostPort(host, port)
	s := &Server{Addr: "http://" + addr, RootToken: randomToken(), logs: &Buffer{}, done: make(chan struct{})}
	args := []string{"server", "-dev", "-dev-root-token-id=" + s.RootToken, "-dev-listen-address=" + addr, "-dev-no-store-token"}
	if tlsDir != "" {
		args = append(args, "-dev-tls", "-dev-tls-cert-dir="+tlsDir)
		s.Addr = "https://" + addr
		s.CACert = filepath.Join(tlsDir, "vault-ca.pem")
	}
	s.cmd = exec.Command(bin, args...)
	s.cmd.Env = append(os.Environ(), "VAULT_ADDR=", "VAULT_TOKEN=", "SKIP_SETCAP=1")
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	// The dev server dies with its parent, even one that panicked.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("devvault: starting %s: %w", bin, err)
	}
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	if err := WaitReady(s.Addr, s.RootToken, s.CACert, 60*time.Second, s.done, s.logs.String, &s.UnsealKey); err != nil {
		s.Stop()
		return nil, fmt.Errorf("devvault: %w\n%s", err, s.logs.String())
	}
	return s, nil
}

// Logs returns what the server printed so far.
func (s *Server) Logs() string { return s.logs.String() }

// Stop ends the server and waits for it.
func (s *Server) Stop() {
	s.once.Do(func() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	})
}

// Process returns the server's process, for tests that pause it.
func (s *Server) Process() *os.Process { return s.cmd.Process }

var unsealKeyRE = regexp.MustCompile(`Unseal Key: (\S+)`)

// WaitReady waits until the Vault at addr (trusted through caCert when not
// empty) is unsealed and active and output has shown its unseal key, which
// it stores in unsealKey. exited, when
// closed, means the server is gone.
func WaitReady(addr, token, caCert string, limit time.Duration, exited <-chan struct{}, output func() string, unsealKey *string) error {
	cfg := api.DefaultConfig()
	cfg.Address = addr
	cfg.MaxRetries = 0
	if caCert != "" {
		for deadline := time.Now().Add(limit); ; time.Sleep(50 * time.Millisecond) {
			if _, err := os.Stat(caCert); err == nil || time.Now().After(deadline) {
				break
			}
		}
		if err := cfg.ConfigureTLS(&api.TLSConfig{CACert: caCert}); err != nil {
			return err
		}
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		return err
	}
	c.SetToken(token)
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("vault exited")
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		h, err := c.Sys().HealthWithContext(ctx)
		cancel()
		if m := unsealKeyRE.FindStringSubmatch(output()); err == nil && h.Initialized && !h.Sealed && !h.Standby && m != nil {
			*unsealKey = m[1]
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("vault did not become ready in time")
}

// FindBinary returns the vault binary to run: bin/vault of the enclosing
// credgate checkout (searched upwards from dir), else vault on PATH, else "".
func FindBinary(dir string) string {
	for dir != "" {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.Contains(b, []byte("module github.com/credgate/credgate\n")) {
			bin := filepath.Join(dir, "bin", "vault")
			if st, err := os.Stat(bin); err == nil && st.Mode()&0o111 != 0 {
				return bin
			}
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	if p, err := exec.LookPath("vault"); err == nil {
		return p
	}
	return ""
}

// FreePort returns a loopback port that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomToken() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return "root-" + hex.EncodeToString(b)
}

// Buffer collects a process's output while others read it.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

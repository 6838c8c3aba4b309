// Package vaulttest gives tests a real Vault. In order of preference it uses
// an existing Vault named by VAULT_ADDR and VAULT_TOKEN, starts bin/vault
// (built by `make vault`) or vault from PATH as a dev server on a free
// loopback port, or runs the official image with testcontainers-go when a
// Docker engine answers. When none is possible it fails with a message that
// says how to get one; it never skips.
package vaulttest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/credgate/credgate/vaultstore/devvault"
)

// Image is the official image used where a Docker engine is available; it
// matches the version `make vault` builds.
const Image = "hashicorp/vault:1.21.2"

// Server is a Vault the tests may use.
type Server struct {
	Addr      string
	RootToken string
	// UnsealKey is known only for a server this package started.
	UnsealKey string
	// External is true for a Vault named by VAULT_ADDR: it is not ours to
	// seal or stop.
	External bool

	dev       *devvault.Server
	container testcontainers.Container
	closeOnce sync.Once
}

// Start returns a Vault for tb and stops it (if it started one) when tb ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	s, err := New(true)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Close)
	return s
}

// StartOwned returns a Vault this package starts itself, never an external
// one, for tests that seal it or pause it.
func StartOwned(tb testing.TB) *Server {
	tb.Helper()
	s, err := New(false)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Close)
	return s
}

// New returns a Vault; allowExternal lets VAULT_ADDR and VAULT_TOKEN name
// one. The caller must Close it. It is meant for TestMain.
func New(allowExternal bool) (*Server, error) {
	if addr, tok := os.Getenv("VAULT_ADDR"), os.Getenv("VAULT_TOKEN"); allowExternal && addr != "" && tok != "" {
		return &Server{Addr: addr, RootToken: tok, External: true}, nil
	}
	wd, _ := os.Getwd()
	if bin := devvault.FindBinary(wd); bin != "" {
		var err error
		for range 3 { // a free port can be taken between probe and bind
			var d *devvault.Server
			if d, err = devvault.Start(bin, "127.0.0.1:0"); err == nil {
				return &Server{Addr: d.Addr, RootToken: d.RootToken, UnsealKey: d.UnsealKey, dev: d}, nil
			}
		}
		return nil, err
	}
	if dockerReachable() {
		return startContainer()
	}
	return nil, errors.New("vaulttest: no Vault to test against: run `make vault` (it builds bin/vault from Vault's Go module), " +
		"put a vault binary on PATH, or set VAULT_ADDR and VAULT_TOKEN to a disposable Vault")
}

// Client returns a root client of the server.
func (s *Server) Client(tb testing.TB) *api.Client {
	tb.Helper()
	c, err := s.NewClient()
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// NewClient returns a root client of the server.
func (s *Server) NewClient() (*api.Client, error) {
	cfg := api.DefaultConfig()
	cfg.Address = s.Addr
	cfg.MaxRetries = 0
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	c.SetToken(s.RootToken)
	return c, nil
}

// Seal seals the server. Only a server this package started can be sealed.
func (s *Server) Seal(tb testing.TB) {
	tb.Helper()
	if s.UnsealKey == "" {
		tb.Fatal("vaulttest: Seal needs a server from StartOwned")
	}
	if err := s.Client(tb).Sys().Seal(); err != nil {
		tb.Fatal(err)
	}
}

// Unseal unseals a server that Seal sealed.
func (s *Server) Unseal(tb testing.TB) {
	tb.Helper()
	st, err := s.Client(tb).Sys().Unseal(s.UnsealKey)
	if err != nil || st.Sealed {
		tb.Fatalf("vaulttest: unseal: %v", err)
	}
}

// Close stops a server this package started.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		if s.dev != nil {
			s.dev.Stop()
		}
		if s.container != nil {
			_ = testcontainers.TerminateContainer(s.container)
		}
	})
}

func dockerReachable() (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	p, err := testcontainers.ProviderDefault.GetProvider()
	if err != nil {
		return false
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return p.Health(ctx) == nil
}

func startContainer() (*Server, error) {
	ctx := context.Background()
	tok := "root-" + fmt.Sprint(time.Now().UnixNano())
	ctr, err := testcontainers.Run(ctx, Image,
		testcontainers.WithExposedPorts("8200/tcp"),
		testcontainers.WithEnv(map[string]string{"VAULT_DEV_ROOT_TOKEN_ID": tok, "SKIP_SETCAP": "1"}),
		testcontainers.WithWaitStrategy(wait.ForHTTP("/v1/sys/health").WithPort("8200/tcp")),
	)
	if err != nil {
		return nil, fmt.Errorf("vaulttest: starting %s: %w", Image, err)
	}
	s := &Server{RootToken: tok, container: ctr}
	if s.Addr, err = ctr.PortEndpoint(ctx, "8200/tcp", "http"); err != nil {
		s.Close()
		return nil, err
	}
	logs := func() string {
		r, err := ctr.Logs(ctx)
		if err != nil {
			return ""
		}
		defer r.Close()
		b, _ := io.ReadAll(r)
		return string(b)
	}
	if err := devvault.WaitReady(s.Addr, tok, "", 60*time.Second, nil, logs, &s.UnsealKey); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// ReadAuditLog returns the entries of a file audit log, one JSON document a
// line.
func ReadAuditLog(tb testing.TB, path string) []string {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			lines = append(lines, l)
		}
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return lines
}

// AuditEntry is what the tests read of a file audit device's entry.
type AuditEntry struct {
	Type string `json:"type"`
	Auth struct {
		Metadata map[string]string `json:"metadata"`
		Policies []string          `json:"policies"`
	} `json:"auth"`
	Request struct {
		Path      string              `json:"path"`
		Operation string              `json:"operation"`
		Headers   map[string][]string `json:"headers"`
	} `json:"request"`
}

// FindAuditResponse waits up to five seconds for the response entry of a
// request with operation op on path that carried X-Request-Id requestID,
// and fails tb when there is none.
func FindAuditResponse(tb testing.TB, auditFile, op, path, requestID string) *AuditEntry {
	tb.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		for _, line := range ReadAuditLog(tb, auditFile) {
			var e AuditEntry
			if json.Unmarshal([]byte(line), &e) != nil || e.Type != "response" || e.Request.Path != path || e.Request.Operation != op {
				continue
			}
			if h := e.Request.Headers["x-request-id"]; len(h) == 1 && h[0] == requestID {
				return &e
			}
		}
	}
	tb.Fatalf("vaulttest: no audit entry for %s %s with X-Request-Id %s", op, path, requestID)
	return nil
}

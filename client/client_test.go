package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credgate/credgate/client"
)

// The package is importable without credgate's server: no gin, zap,
// Vault or Prometheus among its dependencies.
func TestTheClientPullsNoServerDependency(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/credgate/credgate/client").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, server := range []string{"gin-gonic", "go.uber.org/zap", "hashicorp/vault", "prometheus", "credgate/credgate/httpapi", "credgate/credgate/vaultstore"} {
			if strings.Contains(dep, server) {
				t.Errorf("the client depends on %s", dep)
			}
		}
	}
}

// Reads are retried after a 503 and every call after a 429 (the server
// did nothing), waiting what Retry-After says; a write answered 503 is not
// repeated, since it may have been made.
func TestRetriesOnlyWhatIsSafe(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		w.Header().Set("X-Request-Id", "rid")
		switch {
		case r.URL.Query().Get("case") == "limited" && n == 1:
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"success":false,"error":{"code":"RATE_LIMITED","message":"Too many requests","details":"slow down"}}`))
		case n == 1 || r.Method == http.MethodPost:
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"success":false,"error":{"code":"BACKEND_UNAVAILABLE","message":"Backend unavailable","details":"vault is sealed"}}`))
		default:
			_, _ = w.Write([]byte(`{"success":true,"data":{"id":"cred-1","integrationId":"x","apiKey":"k"}}`))
		}
	}))
	defer srv.Close()
	c, err := client.New(client.Options{Addr: srv.URL, Tokens: client.StaticToken("t"), Backoff: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	got, _, err := c.GetCredential(ctx, client.CredentialRead{Integration: "x"})
	if err != nil || got.Values["apiKey"] != "k" || calls.Load() != 2 {
		t.Fatalf("a read after a 503: %v %+v, %d calls", err, got, calls.Load())
	}
	calls.Store(0)
	_, err = c.CreateCredential(ctx, map[string]any{"integrationId": "x"}, "")
	var e *client.Error
	if !errors.As(err, &e) || e.Code != "BACKEND_UNAVAILABLE" || e.Details != "vault is sealed" || e.RequestID != "rid" || calls.Load() != 1 {
		t.Fatalf("a write answered 503: %v, %d calls", err, calls.Load())
	}
	// A 429: even a write is repeated, after Retry-After.
	var limitedCalls atomic.Int32
	limitedSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if limitedCalls.Add(1) == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"success":false,"error":{"code":"RATE_LIMITED","message":"Too many requests","details":"slow down"}}`))
			return
		}
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"success":true,"data":{"id":"cred-2","integrationId":"x"}}`))
	}))
	defer limitedSrv.Close()
	limited, _ := client.New(client.Options{Addr: limitedSrv.URL, Tokens: client.StaticToken("t"), Backoff: 10 * time.Millisecond})
	start := time.Now()
	made, err := limited.CreateCredential(ctx, map[string]any{"integrationId": "x"}, "")
	if err != nil || made.ID != "cred-2" || limitedCalls.Load() != 2 || time.Since(start) < time.Second {
		t.Fatalf("after a 429: %v %+v, %d calls in %s", err, made, limitedCalls.Load(), time.Since(start))
	}
}

// A token file is read again when it changes.
func TestFileTokenFollowsItsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte("first\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := &client.FileToken{Path: path}
	if tok, err := f.Token(context.Background()); err != nil || tok != "first" {
		t.Fatalf("%q %v", tok, err)
	}
	if err := os.WriteFile(path, []byte("second-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if tok, err := f.Token(context.Background()); err != nil || tok != "second-token" {
		t.Fatalf("after the change: %q %v", tok, err)
	}
}

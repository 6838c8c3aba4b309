package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/credgate/credgate/auth/oidctest"
	"github.com/credgate/credgate/bootstrap"
	"github.com/credgate/credgate/vaultstore/vaulttest"
)

// loginCase is one way credgate logs itself in, with what the test does
// to make logging in fail and to make it work again.
type loginCase struct {
	name string
	auth VaultAuth
	// static says VAULT_TOKEN holds a renewable token (the token method).
	static bool
	// relogin says whether a revoked token is replaced by logging in
	// again (every method but a static token); source, when set, is what
	// the token's source does on a revocation (Vault Agent logs in anew).
	relogin bool
	source  func(t *testing.T)
	// breakLogin makes the next login fail; fixLogin makes it work.
	breakLogin, fixLogin func(t *testing.T)
	// renewals says the token is renewable without a maximum: it must
	// outlive several TTLs without a new login.
	renewals bool
}

// TestOwnLoginStaysValidAndItsFailureIsNeverTheCallersFault runs credgate
// with each Vault login method against the real Vault, with login tokens
// of a 2 s TTL and a 4 s maximum life: new callers (each needs a token
// minted with credgate's own) keep being served across several maximum
// lives; then credgate's own token is revoked while logging in again
// cannot work, which must answer 503 with the cause in the log and never
// 403; once logging in works again, so do requests, without a restart.
func TestOwnLoginStaysValidAndItsFailureIsNeverTheCallersFault(t *testing.T) {
	v := vaulttest.Start(t)
	root := v.Client(t)
	ctx := context.Background()
	iss := oidctest.Start(t)
	dir := t.TempDir()
	n := time.Now().UnixNano()
	mount, policyName := fmt.Sprintf("cg-login-%d", n), fmt.Sprintf("credgate_login_%d", n)
	approleMount, jwtMount := fmt.Sprintf("approle-%d", n), fmt.Sprintf("jwt-%d", n)
	res, err := bootstrap.Bootstrap(ctx, root, bootstrap.Options{
		Mount: mount, ServicePolicy: policyName,
		Login: bootstrap.LoginRoles{
			AppRole: "credgate", AppRoleMount: approleMount,
			JWT: "credgate", JWTMount: jwtMount, JWTJWKSURL: iss.URL + "/keys", JWTIssuer: iss.URL,
			JWTAudience: "vault-login", JWTSubject: "system:serviceaccount:credgate:credgate",
			TTL: "2s", MaxTTL: "4s",
		},
	})
	if err != nil {
		t.Fatal(err)
	}

	// Files are written beside and renamed, as Vault Agent's sink does.
	writeFile := func(path, content string) error {
		if err := os.WriteFile(path+".tmp", []byte(content+"\n"), 0o600); err != nil {
			return err
		}
		return os.Rename(path+".tmp", path)
	}
	write := func(t *testing.T, path, content string) {
		t.Helper()
		if err := writeFile(path, content); err != nil {
			t.Fatal(err)
		}
	}
	newOwnToken := func(ttl, maxTTL string) (string, error) {
		sec, err := root.Auth().Token().CreateOrphanWithContext(ctx, &api.TokenCreateRequest{
			Policies: []string{policyName}, TTL: ttl, ExplicitMaxTTL: maxTTL, Renewable: ptr(true), NoDefaultPolicy: true,
		})
		if err != nil {
			return "", err
		}
		return sec.Auth.ClientToken, nil
	}
	ownToken := func(t *testing.T, ttl, maxTTL string) string {
		t.Helper()
		tok, err := newOwnToken(ttl, maxTTL)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}

	secretIDFile := filepath.Join(dir, "secret-id")
	freshSecretID := func(t *testing.T) {
		id, err := bootstrap.IssueSecretID(ctx, root, approleMount, "credgate")
		if err != nil {
			t.Fatal(err)
		}
		write(t, secretIDFile, id)
	}
	jwtFile := filepath.Join(dir, "sa-token")
	freshJWT := func(t *testing.T) {
		now := time.Now()
		write(t, jwtFile, iss.Sign(t, map[string]any{
			"iss": iss.URL, "aud": "vault-login", "sub": "system:serviceaccount:credgate:credgate",
			"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		}))
	}
	// The stand-in for Vault Agent: a fresh token in the file every 2.5 s
	// while it runs, each living 3 s (renewable to 4 s), so the file never
	// holds an expired one.
	tokenFile := filepath.Join(dir, "vault-token")
	var agentMu sync.Mutex
	agentOn := true
	agentCtx, stopAgent := context.WithCancel(ctx)
	t.Cleanup(stopAgent)
	go func() {
		tick := time.NewTicker(2500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-agentCtx.Done():
				return
			case <-tick.C:
			}
			agentMu.Lock()
			if agentOn {
				if tok, err := newOwnToken("3s", "4s"); err == nil {
					_ = writeFile(tokenFile, tok)
				}
			}
			agentMu.Unlock()
		}
	}()
	setAgent := func(t *testing.T, on bool) {
		agentMu.Lock()
		defer agentMu.Unlock()
		agentOn = on
		if on {
			write(t, tokenFile, ownToken(t, "3s", "4s"))
			return
		}
		b, _ := os.ReadFile(tokenFile) // what the agent wrote last dies too
		_ = root.Auth().Token().RevokeOrphanWithContext(ctx, strings.TrimSpace(string(b)))
	}

	cases := []loginCase{
		{
			name: "token", static: true, renewals: true,
			breakLogin: func(*testing.T) {}, fixLogin: nil,
		},
		{
			name: "token_file", auth: VaultAuth{Method: authTokenFile, TokenFile: tokenFile}, relogin: true,
			source:     func(t *testing.T) { setAgent(t, true) },
			breakLogin: func(t *testing.T) { setAgent(t, false) },
			fixLogin:   func(t *testing.T) { setAgent(t, true) },
		},
		{
			name: "approle", relogin: true,
			auth:       VaultAuth{Method: authAppRole, Mount: approleMount, RoleID: res.AppRoleID, SecretIDFile: secretIDFile},
			breakLogin: func(t *testing.T) { write(t, secretIDFile, "not-a-secret-id") },
			fixLogin:   freshSecretID,
		},
		{
			name: "jwt", relogin: true,
			auth:       VaultAuth{Method: authJWT, Mount: jwtMount, Role: "credgate", JWTFile: jwtFile},
			breakLogin: func(t *testing.T) { write(t, jwtFile, "not.a.jwt") },
			fixLogin:   freshJWT,
		},
	}
	freshSecretID(t)
	freshJWT(t)
	setAgent(t, true)

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			core, logs := observer.New(zap.InfoLevel)
			cfg := DefaultConfig()
			cfg.Listen = "127.0.0.1:0"
			cfg.Vault.Address, cfg.Vault.Mount, cfg.Vault.Auth = v.Addr, mount, tc.auth
			if tc.static {
				cfg.Vault.Token = ownToken(t, "2s", "")
			}
			cfg.Auth.Issuers = []IssuerConfig{{URL: iss.URL, Audiences: []string{iss.Audience}}}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			m := &Main{Config: cfg, Logger: zap.New(core)}
			if err := m.Run(ctx); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = m.Close() })
			base := "http://" + m.Addr()
			callers := 0
			newCaller := func() (int, string) { // a caller credgate has not seen: a token is minted
				callers++
				req, _ := http.NewRequest("GET", base+"/api/v1/services", nil)
				req.Header.Set("Authorization", "Bearer "+iss.Sign(t, iss.Claims(fmt.Sprintf("%s-caller-%d", tc.name, callers), "acme", "integration_admin")))
				r, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer r.Body.Close()
				var body struct {
					Error struct{ Code string } `json:"error"`
				}
				_ = json.NewDecoder(r.Body).Decode(&body)
				return r.StatusCode, body.Error.Code
			}
			first := m.identity.Token()

			// Several maximum lives pass; every new caller is served.
			for end := time.Now().Add(9 * time.Second); time.Now().Before(end); time.Sleep(150 * time.Millisecond) {
				if st, code := newCaller(); st != 200 {
					t.Fatalf("caller %d after %s: %d %s; log: %v", callers, time.Since(end.Add(-9*time.Second)).Round(time.Millisecond), st, code, logs.All())
				}
			}
			// Logged in again before each maximum life ended: Vault never
			// refused credgate's own token on the way.
			if n := metric(t, base, `credgate_vault_errors_total{operation="token_create"}`); n != 0 {
				t.Fatalf("%v of credgate's own calls refused while its token lived out its life", n)
			}
			if n := metric(t, base, fmt.Sprintf(`credgate_vault_logins_total{method=%q,result="ok"}`, m.identity.Method())); n < 1 {
				t.Fatalf("logins not counted: %v", n)
			}
			logins := logs.FilterMessage("logged in to Vault").Len()
			if tc.renewals {
				if logins != 1 || m.identity.Token() != first {
					t.Fatalf("a renewable token was replaced (%d logins)", logins)
				}
				if _, err := root.Auth().Token().LookupWithContext(ctx, first); err != nil {
					t.Fatalf("a renewable token of a 2 s TTL was not kept alive for 9 s: %v", err)
				}
			} else if logins < 3 || m.identity.Token() == first {
				t.Fatalf("%d logins in 9 s of a 4 s maximum life", logins)
			}

			if tc.relogin {
				// Revoked while logging in works: the caller never notices.
				revoke(t, root, m.identity.Token())
				if tc.source != nil {
					tc.source(t)
				}
				if st, code := newCaller(); st != 200 {
					t.Fatalf("after a revocation with a working login: %d %s", st, code)
				}
			}

			// Revoked while logging in cannot work: 503, cause logged, never 403.
			tc.breakLogin(t)
			_ = root.Auth().Token().RevokeOrphanWithContext(ctx, m.identity.Token()) // may be the agent's last, revoked already
			time.Sleep(1100 * time.Millisecond)                                      // past the relogin interval
			if st, code := newCaller(); st != 503 || code != "BACKEND_UNAVAILABLE" {
				t.Fatalf("own token revoked, login failing: %d %s, want 503 BACKEND_UNAVAILABLE", st, code)
			}
			causes := logs.FilterMessage("request").FilterField(zap.String("code", "BACKEND_UNAVAILABLE")).All()
			if len(causes) == 0 || !strings.Contains(fmt.Sprint(causes[len(causes)-1].ContextMap()["cause"]), "refused credgate's own token") {
				t.Fatalf("no cause in the log: %v", causes)
			}
			if r, err := http.Get(base + "/readyz"); err != nil || r.StatusCode != 503 {
				t.Fatalf("readyz with a revoked own token: %v %v", r, err)
			}
			if tc.fixLogin == nil {
				return // a static token cannot be replaced without a restart
			}
			tc.fixLogin(t)
			deadline := time.Now().Add(6 * time.Second)
			for {
				st, code := newCaller()
				if st == 200 {
					break
				}
				if st != 503 || time.Now().After(deadline) {
					t.Fatalf("after login works again: %d %s", st, code)
				}
				time.Sleep(200 * time.Millisecond)
			}
			if r, err := http.Get(base + "/readyz"); err != nil || r.StatusCode != 200 {
				t.Fatalf("readyz after recovery: %v %v", r, err)
			}
			if n := logs.FilterMessage("request").FilterField(zap.Int("status", 403)).Len(); n != 0 {
				t.Fatalf("%d requests answered 403", n)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func revoke(t *testing.T, root *api.Client, token string) {
	t.Helper()
	if err := root.Auth().Token().RevokeOrphanWithContext(context.Background(), token); err != nil {
		t.Fatal(err)
	}
}

// metric reads one sample of credgate's /metrics; absent is 0.
func metric(t *testing.T, base, sample string) float64 {
	t.Helper()
	r, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	return 0
}

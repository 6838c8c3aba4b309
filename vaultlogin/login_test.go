package vaultlogin_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/credgate/credgate/bootstrap"
	"github.com/credgate/credgate/vaultlogin"
	"github.com/credgate/credgate/vaultstore/vaulttest"
)

// TestKubernetesLoginSendsVaultsDocumentedRequest checks the kubernetes
// method against the request Vault documents (POST auth/<mount>/login with
// role and jwt), since no cluster can be had here: the service-account
// token is read at each login (the kubelet rotates it), and a refusal's
// error never carries the token.
func TestKubernetesLoginSendsVaultsDocumentedRequest(t *testing.T) {
	saToken := filepath.Join(t.TempDir(), "token")
	var got []map[string]string
	vault := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]string
		_ = json.NewDecoder(r.Body).Decode(&body)
		if r.Method != "PUT" && r.Method != "POST" || r.URL.Path != "/v1/auth/k8s-prod/login" || r.Header.Get("X-Vault-Token") != "" {
			http.Error(w, `{"errors":["unexpected request"]}`, 400)
			return
		}
		got = append(got, body)
		if body["jwt"] == "expired-sa-token" {
			w.WriteHeader(403)
			_, _ = w.Write([]byte(`{"errors":["permission denied"]}`))
			return
		}
		_, _ = w.Write([]byte(`{"auth":{"client_token":"hvs.from-k8s","lease_duration":3600,"renewable":true,"policies":["credgate_service"]}}`))
	}))
	defer vault.Close()
	c, err := api.NewClient(&api.Config{Address: vault.URL})
	if err != nil {
		t.Fatal(err)
	}
	c.ClearToken()
	m := vaultlogin.Kubernetes{Mount: "k8s-prod", Role: "credgate", Path: saToken}

	for _, tok := range []string{"sa-token-1", "sa-token-2"} {
		if err := os.WriteFile(saToken, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		auth, err := m.Login(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		if auth.ClientToken != "hvs.from-k8s" || !auth.Renewable || auth.LeaseDuration != 3600 {
			t.Fatalf("auth: %+v", auth)
		}
	}
	if len(got) != 2 || got[0]["role"] != "credgate" || got[0]["jwt"] != "sa-token-1" || got[1]["jwt"] != "sa-token-2" {
		t.Fatalf("requests: %v", got)
	}
	_ = os.WriteFile(saToken, []byte("expired-sa-token"), 0o600)
	_, err = m.Login(context.Background(), c)
	if err == nil || strings.Contains(err.Error(), "expired-sa-token") || !strings.Contains(err.Error(), "auth/k8s-prod/login") {
		t.Fatalf("a refused login: %v", err)
	}
	if (vaultlogin.Kubernetes{}).Name() != "kubernetes" || vaultlogin.DefaultServiceAccountToken != "/var/run/secrets/kubernetes.io/serviceaccount/token" {
		t.Fatal("kubernetes defaults changed")
	}
}

// TestAppRoleWithAWrappedSecretID logs in with a response-wrapped secret
// id, as a platform's trusted orchestrator hands one out: a wrapping token
// works once, so credgate keeps the secret id it unwrapped for later
// logins, and unwraps again when the file holds a new wrapping token.
func TestAppRoleWithAWrappedSecretID(t *testing.T) {
	v := vaulttest.Start(t)
	root := v.Client(t)
	ctx := context.Background()
	mount := "approle-wrapped-" + time.Now().Format("150405.000000")
	mount = strings.ReplaceAll(mount, ".", "")
	res, err := bootstrap.Bootstrap(ctx, root, bootstrap.Options{Login: bootstrap.LoginRoles{AppRole: "credgate", AppRoleMount: mount}})
	if err != nil {
		t.Fatal(err)
	}
	wrapped := func() string {
		w, err := root.Clone()
		if err != nil {
			t.Fatal(err)
		}
		w.SetToken(root.Token())
		w.SetWrappingLookupFunc(func(string, string) string { return "60s" })
		sec, err := w.Logical().WriteWithContext(ctx, "auth/"+mount+"/role/credgate/secret-id", nil)
		if err != nil || sec.WrapInfo == nil {
			t.Fatalf("wrapped secret id: %v %+v", err, sec)
		}
		return sec.WrapInfo.Token
	}
	file := filepath.Join(t.TempDir(), "secret-id")
	anon, err := root.Clone()
	if err != nil {
		t.Fatal(err)
	}
	anon.ClearToken()
	m := &vaultlogin.AppRole{Mount: mount, RoleID: res.AppRoleID, SecretIDFile: file, SecretIDWrapped: true}
	var tokens []string
	for i, renew := range []bool{true, false, true} {
		if renew {
			if err := os.WriteFile(file, []byte(wrapped()), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		auth, err := m.Login(ctx, anon)
		if err != nil {
			t.Fatalf("login %d: %v", i+1, err)
		}
		if !auth.Renewable || auth.LeaseDuration <= 0 {
			t.Fatalf("login %d: %+v", i+1, auth)
		}
		tokens = append(tokens, auth.ClientToken)
	}
	if tokens[0] == tokens[1] || tokens[1] == tokens[2] {
		t.Fatal("logins gave the same token")
	}
	// Unwrapped without the cache, the second login fails: the wrapping
	// token was spent by the first.
	plain := &vaultlogin.AppRole{Mount: mount, RoleID: res.AppRoleID, SecretIDFile: file, SecretIDWrapped: true}
	if _, err := plain.Login(ctx, anon); err == nil {
		t.Fatal("a spent wrapping token was accepted")
	}
}

// TestARefusedLoginNeverLocksCredgateOut: with a wrong secret id, credgate
// keeps failing requests (503) but asks Vault again only after a pause, so
// Vault's user lockout (on by default: 5 failures) is never tripped; a new
// secret id in the file is used within seconds. A control shows the
// lockout is real in this Vault: five wrong logins lock a role.
func TestARefusedLoginNeverLocksCredgateOut(t *testing.T) {
	v := vaulttest.Start(t)
	root := v.Client(t)
	ctx := context.Background()
	mount := "approle-lockout-" + strings.ReplaceAll(time.Now().Format("150405.000000"), ".", "")
	res, err := bootstrap.Bootstrap(ctx, root, bootstrap.Options{Login: bootstrap.LoginRoles{AppRole: "credgate", AppRoleMount: mount}})
	if err != nil {
		t.Fatal(err)
	}
	anon, err := root.Clone()
	if err != nil {
		t.Fatal(err)
	}
	anon.ClearToken()

	// The control: another role, five wrong logins, then the right one.
	if _, err := root.Logical().WriteWithContext(ctx, "auth/"+mount+"/role/control", map[string]any{"token_ttl": "5m"}); err != nil {
		t.Fatal(err)
	}
	rid, err := root.Logical().ReadWithContext(ctx, "auth/"+mount+"/role/control/role-id")
	if err != nil {
		t.Fatal(err)
	}
	controlID, _ := rid.Data["role_id"].(string)
	good, err := bootstrap.IssueSecretID(ctx, root, mount, "control")
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		_, _ = anon.Logical().WriteWithContext(ctx, "auth/"+mount+"/login", map[string]any{"role_id": controlID, "secret_id": "wrong"})
	}
	if _, err := anon.Logical().WriteWithContext(ctx, "auth/"+mount+"/login", map[string]any{"role_id": controlID, "secret_id": good}); err == nil {
		t.Fatal("control: five wrong logins did not lock the role; the test shows nothing")
	}

	file := filepath.Join(t.TempDir(), "secret-id")
	if err := os.WriteFile(file, []byte("not-a-secret-id"), 0o600); err != nil {
		t.Fatal(err)
	}
	var attempts atomic.Int64
	id, err := vaultlogin.NewIdentity(vaultlogin.IdentityOptions{
		Method: &vaultlogin.AppRole{Mount: mount, RoleID: res.AppRoleID, SecretIDFile: file}, Client: anon,
		Report: func(string, error) { attempts.Add(1) }, SourceCheck: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go id.Run(runCtx)
	// Requests keep finding credgate without a token for 8 s: each asks
	// for a login (Refused), as a request refused by Vault does.
	for end := time.Now().Add(8 * time.Second); time.Now().Before(end); {
		if id.Refused(ctx, "") {
			t.Fatal("a login with a wrong secret id succeeded")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := attempts.Load(); n > 3 {
		t.Fatalf("%d logins with the same wrong secret id in 8 s", n)
	}
	secretID, err := bootstrap.IssueSecretID(ctx, root, mount, "credgate")
	if err != nil {
		t.Fatal(err)
	}
	fixed := time.Now()
	if err := os.WriteFile(file, []byte(secretID), 0o600); err != nil {
		t.Fatal(err)
	}
	for id.Token() == "" {
		if time.Since(fixed) > 10*time.Second {
			t.Fatalf("no login 10 s after a new secret id (%d attempts): %v", attempts.Load(), id.LastErr())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("logged in %s after the new secret id; %d login attempts in all", time.Since(fixed).Round(10*time.Millisecond), attempts.Load())
	look := root.WithRequestCallbacks(func(r *api.Request) { r.ClientToken = id.Token() })
	if _, err := look.Auth().Token().LookupSelfWithContext(ctx); err != nil {
		t.Fatalf("the new token: %v", err)
	}
}

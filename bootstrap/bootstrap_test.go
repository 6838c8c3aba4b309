package bootstrap_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/credgate/credgate/bootstrap"
	"github.com/credgate/credgate/vaultstore/vaulttest"
)

func TestBootstrapIsIdempotent(t *testing.T) {
	// A Vault of its own: "created" on the first run needs a Vault that was
	// never bootstrapped, whatever else ran before.
	root := vaulttest.StartOwned(t).Client(t)
	jwks := jwksServer(t) // Vault fetches it when the jwt method is configured
	o := bootstrap.Options{Mount: "cg-idem", TokenRole: "cg-idem-caller", ServicePolicy: "cg-idem_service", AuditFile: os.DevNull,
		Login: bootstrap.LoginRoles{AppRole: "cg-idem", JWT: "cg-idem", JWTJWKSURL: jwks, JWTIssuer: "https://issuer.example", JWTAudience: "vault", TTL: "30m"}}
	first, err := bootstrap.Bootstrap(context.Background(), root, o)
	if err != nil {
		t.Fatal(err)
	}
	for step, what := range first.Steps {
		if what != "created" {
			t.Errorf("first run: %s %s; want created", step, what)
		}
	}
	for _, step := range []string{"audited header X-Request-Id", "audited header X-Credgate-Request", "auth method approle", "approle role cg-idem", "auth method jwt", "jwt config jwt", "jwt role cg-idem"} {
		if first.Steps[step] == "" {
			t.Errorf("no step %q: %v", step, first.Steps)
		}
	}
	if first.AppRoleID == "" {
		t.Error("no role id")
	}
	second, err := bootstrap.Bootstrap(context.Background(), root, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(second.Steps) != len(first.Steps) {
		t.Fatalf("second run did %d steps, first %d", len(second.Steps), len(first.Steps))
	}
	for step, what := range second.Steps {
		if what != "present" {
			t.Errorf("second run: %s %s; want present", step, what)
		}
	}
}

// jwksServer serves a JWKS of one RSA key and returns its URL.
func jwksServer(t *testing.T) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig",
		"n": base64.RawURLEncoding.EncodeToString(key.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(key.E)).Bytes()),
	}}})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(body) }))
	t.Cleanup(srv.Close)
	return srv.URL
}

// Package oidctest is an OIDC issuer for tests with keys of its own: it
// serves discovery and a JWKS on a loopback httptest server and signs
// whatever claims a test asks for, including the malformed, forged and
// expired tokens that credgate must refuse.
package oidctest

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Issuer is a running test issuer.
type Issuer struct {
	URL      string
	Audience string
	Key      *rsa.PrivateKey
	KeyID    string

	srv      *httptest.Server
	jwksHits atomic.Int64
}

// Start starts an issuer for tb; it stops when tb ends.
func Start(tb testing.TB) *Issuer {
	tb.Helper()
	iss, err := New()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(iss.Close)
	return iss
}

// New starts an issuer outside a test (a benchmark tool, say); Close stops
// it.
func New() (*Issuer, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	iss := &Issuer{Audience: "credgate-test", Key: key, KeyID: "test-key-1"}
	mux := http.NewServeMux()
	iss.srv = httptest.NewServer(mux)
	iss.URL = iss.srv.URL
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                iss.URL,
			"jwks_uri":                              iss.URL + "/keys",
			"authorization_endpoint":                iss.URL + "/auth",
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) {
		iss.jwksHits.Add(1)
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
			{Key: key.Public(), KeyID: iss.KeyID, Algorithm: string(jose.RS256), Use: "sig"},
		}})
	})
	return iss, nil
}

// Close stops the issuer's server.
func (i *Issuer) Close() { i.srv.Close() }

// SignClaims signs claims with the issuer's published key.
func (i *Issuer) SignClaims(claims map[string]any) (string, error) {
	return sign(i.Key, jose.RS256, i.KeyID, claims)
}

// MustKey returns a new RSA key.
func MustKey(tb testing.TB) *rsa.PrivateKey {
	tb.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// JWKSHits says how often the JWKS was fetched.
func (i *Issuer) JWKSHits() int64 { return i.jwksHits.Load() }

// Claims returns valid claims for subject in tenant with roles, expiring in
// an hour; tests change them to make bad tokens.
func (i *Issuer) Claims(subject, tenant string, roles ...string) map[string]any {
	now := time.Now()
	return map[string]any{
		"iss": i.URL, "aud": i.Audience, "sub": subject,
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"tenant_id": tenant, "roles": roles,
		"email": subject + "@example.test", "name": subject,
	}
}

// ServiceAccountClaims returns the claims of a Kubernetes service-account
// token (a projected token of the cluster's OIDC issuer) for name in
// namespace: sub system:serviceaccount:<namespace>:<name>, and no tenant,
// roles, name or e-mail claim.
func (i *Issuer) ServiceAccountClaims(namespace, name string) map[string]any {
	now := time.Now()
	return map[string]any{
		"iss": i.URL, "aud": []string{i.Audience}, "sub": "system:serviceaccount:" + namespace + ":" + name,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"kubernetes.io": map[string]any{
			"namespace":      namespace,
			"serviceaccount": map[string]any{"name": name, "uid": "0f4c4a1e-9a57-4f39-9a83-6c8b5a2b7f10"},
		},
	}
}

// Sign signs claims with the issuer's published key.
func (i *Issuer) Sign(tb testing.TB, claims map[string]any) string {
	tb.Helper()
	return SignWith(tb, i.Key, jose.RS256, i.KeyID, claims)
}

// SignWith signs claims with any key, algorithm and key id.
func SignWith(tb testing.TB, key any, alg jose.SignatureAlgorithm, kid string, claims map[string]any) string {
	tb.Helper()
	s, err := sign(key, alg, kid, claims)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func sign(key any, alg jose.SignatureAlgorithm, kid string, claims map[string]any) (string, error) {
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

// Unsigned returns claims as an alg=none token.
func Unsigned(tb testing.TB, claims map[string]any) string {
	tb.Helper()
	return compact(tb, map[string]any{"alg": "none", "typ": "JWT"}, claims, nil)
}

// HS256WithPublicKey returns the classic key-confusion forgery: an HS256
// token whose HMAC secret is the issuer's public key in PEM form.
func (i *Issuer) HS256WithPublicKey(tb testing.TB, claims map[string]any) string {
	tb.Helper()
	der, err := x509.MarshalPKIXPublicKey(i.Key.Public())
	if err != nil {
		tb.Fatal(err)
	}
	secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	return compact(tb, map[string]any{"alg": "HS256", "typ": "JWT", "kid": i.KeyID}, claims, func(in []byte) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write(in)
		return m.Sum(nil)
	})
}

func compact(tb testing.TB, header, claims map[string]any, sign func([]byte) []byte) string {
	tb.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		tb.Fatal(err)
	}
	in := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	sig := ""
	if sign != nil {
		sig = base64.RawURLEncoding.EncodeToString(sign([]byte(in)))
	}
	return in + "." + sig
}

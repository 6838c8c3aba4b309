package httpapi_test

import (
	"io"
	"net/http"
	"testing"
)

// benchGet measures GET path with tok, which must answer 200.
func benchGet(b *testing.B, a *testAPI, path, tok string) {
	req, _ := http.NewRequest("GET", a.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	b.ReportAllocs()
	for b.Loop() {
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body) // so the connection is reused
		res.Body.Close()
		if res.StatusCode != 200 {
			b.Fatalf("status %d", res.StatusCode)
		}
	}
}

// BenchmarkGetService is one authenticated read through credgate's whole
// stack: HTTP, cached token verification, cached caller token, and one KV
// read from the real Vault.
func BenchmarkGetService(b *testing.B) {
	a := newAPI(b, apiOptions{unchecked: true})
	tok := token(b, "bench", tenant(b), "integration_admin")
	a.do("POST", "/api/v1/services", tok, map[string]any{"id": "bench", "name": "Bench"})
	benchGet(b, a, "/api/v1/services/bench", tok)
}

// BenchmarkGetCredential is one decrypted credential read without a
// credential id, in the steady state: the store remembers which credential
// the service serves, so it is one Vault read; lastAccessedAt is queued.
func BenchmarkGetCredential(b *testing.B) {
	a := newAPI(b, apiOptions{unchecked: true})
	tok := token(b, "bench", tenant(b), "integration_admin")
	a.do("POST", "/api/v1/services", tok, map[string]any{"id": "bench", "name": "Bench"})
	a.do("POST", "/api/v1/credentials", tok, map[string]any{"integrationId": "bench", "credentialName": "k", "authType": "api_key", "apiKey": secret("bench-" + randHex(8))})
	benchGet(b, a, "/api/v1/credentials/bench", tok)
}

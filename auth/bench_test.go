package auth_test

import (
	"context"
	"testing"

	"github.com/credgate/credgate/auth"
	"github.com/credgate/credgate/auth/oidctest"
)

// BenchmarkVerify compares a token seen before (cache hit: one SHA-256
// and an LRU lookup) with fresh tokens (full RS256 verification).
func BenchmarkVerify(b *testing.B) {
	iss := oidctest.Start(b)
	v := mustVerifier(b, auth.Options{Issuers: []auth.IssuerConfig{{URL: iss.URL, Audiences: []string{iss.Audience}}}})
	ctx := context.Background()
	tok := iss.Sign(b, iss.Claims("bench", "acme", "integration_admin"))
	if _, err := v.Verify(ctx, tok, ""); err != nil {
		b.Fatal(err)
	}
	b.Run("cached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Verify(ctx, tok, ""); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("uncached", func(b *testing.B) {
		fresh := mustVerifier(b, auth.Options{Issuers: []auth.IssuerConfig{{URL: iss.URL, Audiences: []string{iss.Audience}}}, CacheSize: 1})
		toks := make([]string, 64)
		for i := range toks {
			c := iss.Claims("bench", "acme", "integration_admin")
			c["jti"] = i
			toks[i] = iss.Sign(b, c)
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := fresh.Verify(ctx, toks[i%len(toks)], ""); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

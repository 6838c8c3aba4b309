package vaultstore

import (
	"os"
	"testing"
	"time"
)

// BenchmarkDecodeAnswer decodes a recorded Vault answer to a credential
// read, as every credential read does.
func BenchmarkDecodeAnswer(b *testing.B) {
	raw, err := os.ReadFile("testdata/kv-answer.json")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		var d credData
		m, err := decodeAnswer(raw, &d)
		if err != nil || m.Version != 1 || d.Secrets["apiKey"] == "" || credentialOf(&d, m, time.Time{}).LastAccessedAt == nil {
			b.Fatalf("%v %+v", err, m)
		}
	}
}

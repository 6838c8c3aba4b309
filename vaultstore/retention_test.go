package vaultstore_test

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/credgate/credgate"
)

// TestServedCredentialsLeaveNoAnswerInMemory: what a replica remembers of
// the credentials it served (each service's primary, the lastAccessedAt
// throttle, the ledger's pending reads) holds ids, not the answers they
// were decoded from. The decoder's strings point into its copy of Vault's
// whole answer, secret values included: an id kept as it came would keep
// every value of the credential in memory for as long as the id is
// remembered, long after the read.
func TestServedCredentialsLeaveNoAnswerInMemory(t *testing.T) {
	e := mustEnv(t)
	admin := as(principal("acme", "admin", "integration_admin"))
	reader := as(principal("acme", "reader", "credential_reader"))
	const n = 48
	fields := []string{"apiKey", "apiSecret", "clientSecret", "password"}
	perAnswer := len(fields) * (credgate.MaxSecretBytes - 64)
	name := func(i int) string { return fmt.Sprintf("svc%02d", i) }
	for i := range n + 1 { // the last is read before the measure
		svc := name(i)
		if _, err := e.store.CreateService(admin, &credgate.Service{ID: svc, Name: svc, Status: credgate.StatusActive}); err != nil {
			t.Fatal(err)
		}
		sec := credgate.Secrets{}
		for _, f := range fields {
			sec[f] = fmt.Sprintf("%s-%s-", svc, f) + strings.Repeat("v", credgate.MaxSecretBytes-64)
		}
		if _, err := e.store.CreateCredential(admin, &credgate.Credential{IntegrationID: svc, CredentialName: "k", AuthType: credgate.AuthAPIKey, Status: credgate.CredActive, Secrets: sec}); err != nil {
			t.Fatal(err)
		}
	}
	read := func(svc string) {
		c, err := e.store.GetCredential(reader, credgate.CredentialRead{Service: svc})
		if err != nil {
			t.Fatal(err)
		}
		// What the API does after a read (httpapi.getCredential).
		e.store.RecordAccess(reader, svc, c.ID)
		e.store.RecordRead(reader, svc, c.ID, c.Version, "")
	}
	// Before the measure: the reader's token and policy, the connections,
	// the decoders made on first use.
	read(name(n))
	heap := func() int64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return int64(m.HeapAlloc)
	}
	before := heap()
	for i := range n {
		read(name(i))
	}
	kept := heap() - before
	if limit := int64(n * perAnswer / 4); kept > limit {
		t.Fatalf("after reading %d credentials of %d KB of values each, %d KB more stay in memory (at most %d KB expected): the answers are kept", n, perAnswer>>10, kept>>10, limit>>10)
	}
	t.Logf("%d credentials of %d KB read: %d KB more in memory after", n, perAnswer>>10, kept>>10)
}

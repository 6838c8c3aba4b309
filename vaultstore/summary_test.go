package vaultstore_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/credgate/credgate"
)

// Every write of a credential is marked in its tenant's summary head
// before it lands, however many writers of the tenant mark at once: the
// head is one record, and writers that lost its check-and-set too often
// would leave writes the monitor never looks at.
func TestEveryConcurrentWriteIsMarked(t *testing.T) {
	e := mustEnv(t)
	ctx := as(principal("marks", "ann", "integration_admin"))
	if _, err := e.store.CreateService(ctx, &credgate.Service{ID: "svc", Name: "Svc", Status: credgate.StatusActive, Metadata: map[string]any{}}); err != nil {
		t.Fatal(err)
	}
	const n = 64
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			c, err := e.store.CreateCredential(ctx, &credgate.Credential{IntegrationID: "svc", CredentialName: fmt.Sprint("key ", i), AuthType: credgate.AuthAPIKey, Status: credgate.CredActive, Metadata: map[string]any{}, Secrets: credgate.Secrets{"apiKey": fmt.Sprint("k", i)}})
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = c.ID
		})
	}
	wg.Wait()
	h, _, err := e.store.SummaryHead(ctx, "marks")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if stamp := h.Dirty[credgate.SummaryKey("svc", id)]; stamp == "" {
			t.Errorf("credential %s was written without a mark (%d marks of %d writes)", id, len(h.Dirty), n)
		}
	}
}

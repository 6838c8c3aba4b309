package vaultstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/credgate/credgate"
)

// TestCloseSaysWhatItLeftUnwritten: a replica stopped before its ledger
// flush is done (shutdown_grace ended) says so, naming what is lost,
// instead of a bare "context deadline exceeded"; one that had the time
// writes everything and says nothing.
func TestCloseSaysWhatItLeftUnwritten(t *testing.T) {
	gather := func(e *env) {
		admin := as(principal("acme", "admin", "integration_admin"))
		if _, err := e.store.CreateService(admin, &credgate.Service{ID: "pay", Name: "pay", Status: credgate.StatusActive}); err != nil {
			t.Fatal(err)
		}
		c, err := e.store.CreateCredential(admin, &credgate.Credential{IntegrationID: "pay", CredentialName: "k", AuthType: credgate.AuthAPIKey, Status: credgate.CredActive, Secrets: credgate.Secrets{"apiKey": "sk_test_1"}})
		if err != nil {
			t.Fatal(err)
		}
		// 200 readers: 200 ledger entries and up to 64 reach records to write.
		for i := range 200 {
			e.store.RecordRead(as(principal("acme", fmt.Sprint("reader-", i), "credential_reader")), "pay", c.ID, c.Version, "")
		}
	}
	e := mustEnv(t)
	gather(e)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the grace is over
	err := e.store.Close(ctx)
	if err == nil || !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "usage-ledger reads gathered before the stop were not all written") {
		t.Fatalf("Close after the grace: %v", err)
	}

	e = mustEnv(t)
	gather(e)
	if err := e.store.Close(context.Background()); err != nil {
		t.Fatalf("Close with time to write: %v", err)
	}
}

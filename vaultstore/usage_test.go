package vaultstore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/vaultstore"
)

// TestParallelWebhookCreatesStopAtTheLimit: 40 creates at once, through
// two replicas, make exactly credgate.MaxWebhooks subscriptions; the rest
// are told the limit, and a deleted one makes room for one more.
func TestParallelWebhookCreatesStopAtTheLimit(t *testing.T) {
	e := mustEnv(t)
	other, err := vaultstore.New(e.opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := as(principal("acme", "alice", "integration_admin"))
	var mu sync.Mutex
	codes := map[string]int{}
	var made []string
	var wg sync.WaitGroup
	for i := range 40 {
		store := e.store
		if i%2 == 1 {
			store = other
		}
		wg.Go(func() {
			w, err := store.CreateWebhook(ctx, &credgate.Webhook{URL: fmt.Sprintf("https://hooks.example.test/%d", i), EventTypes: []string{"credential.rotated"}, Enabled: true})
			mu.Lock()
			defer mu.Unlock()
			codes[credgate.ErrorCode(err)]++
			if err == nil {
				made = append(made, w.ID)
			} else if !strings.Contains(limitOf(err), "webhooks") {
				t.Errorf("refused with %v", err)
			}
		})
	}
	wg.Wait()
	if codes[""] != credgate.MaxWebhooks || codes[credgate.EValidationFailed] != 40-credgate.MaxWebhooks {
		t.Fatalf("answers %v; want %d made, the rest VALIDATION_FAILED", codes, credgate.MaxWebhooks)
	}
	list, err := e.store.ListWebhooks(ctx)
	if err != nil || len(list) != credgate.MaxWebhooks {
		t.Fatalf("%d webhooks kept (%v)", len(list), err)
	}
	if err := other.DeleteWebhook(ctx, made[0]); err != nil {
		t.Fatal(err)
	}
	if err := other.DeleteWebhook(ctx, made[0]); credgate.ErrorCode(err) != credgate.ENotFound {
		t.Fatalf("a second DELETE: %v", err)
	}
	if _, err := e.store.CreateWebhook(ctx, &credgate.Webhook{URL: "https://hooks.example.test/again", EventTypes: []string{"credential.rotated"}, Enabled: true}); err != nil {
		t.Fatalf("a create after a delete: %v", err)
	}
	if u, _, err := other.Usage(context.Background(), "acme"); err != nil || u.Webhooks != credgate.MaxWebhooks {
		t.Fatalf("usage %+v (%v)", u, err)
	}
}

// TestTenantLimitsBoundWhatItKeeps: a tenant's services, credentials and
// bytes stop at its limits, deletes (a credential's, a service's with its
// credentials) make room again, and another tenant is not counted.
func TestTenantLimitsBoundWhatItKeeps(t *testing.T) {
	e := mustEnvWith(t, func(o *vaultstore.Options) {
		o.Limits = func(tenant string) credgate.TenantLimits {
			if tenant == "acme" {
				return credgate.TenantLimits{Services: 2, Credentials: 3, Bytes: 4 << 10}
			}
			return credgate.DefaultTenantLimits
		}
	})
	acme := as(principal("acme", "alice", "integration_admin"))
	globex := as(principal("globex", "bob", "integration_admin"))
	svc := func(ctx context.Context, id string) error {
		_, err := e.store.CreateService(ctx, &credgate.Service{ID: id, Name: id, Status: credgate.StatusActive})
		return err
	}
	cred := func(ctx context.Context, service, key string) (*credgate.Credential, error) {
		return e.store.CreateCredential(ctx, &credgate.Credential{IntegrationID: service, CredentialName: "k", AuthType: credgate.AuthAPIKey, Status: credgate.CredActive, Secrets: credgate.Secrets{"apiKey": key}})
	}
	refused := func(err error, what string) {
		t.Helper()
		if credgate.ErrorCode(err) != credgate.EValidationFailed || !strings.Contains(limitOf(err), what) {
			t.Fatalf("past the %s limit: %v", what, err)
		}
	}
	for _, id := range []string{"s1", "s2"} {
		if err := svc(acme, id); err != nil {
			t.Fatal(err)
		}
	}
	refused(svc(acme, "s3"), "services")
	if err := svc(globex, "s3"); err != nil {
		t.Fatalf("another tenant: %v", err)
	}
	var first *credgate.Credential
	for i := range 3 {
		c, err := cred(acme, "s1", fmt.Sprintf("key-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		first = c
	}
	_, err := cred(acme, "s2", "key-3")
	refused(err, "credentials")
	if _, err := e.store.DeleteCredential(acme, first.ID, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := cred(acme, "s2", "key-4"); err != nil {
		t.Fatalf("after a delete: %v", err)
	}
	if err := e.store.DeleteService(acme, "s1", 0); err != nil {
		t.Fatal(err)
	}
	u, _, err := e.store.Usage(context.Background(), "acme")
	if err != nil || u.Services != 1 || u.Credentials != 1 {
		t.Fatalf("after deleting s1 and its two credentials: %+v (%v)", u, err)
	}
	// Bytes: a value that would pass the limit is refused, and so is
	// growing a kept one past it; nothing of either is kept.
	_, err = cred(acme, "s2", strings.Repeat("x", 5000))
	refused(err, "bytes")
	list, err := e.store.ListCredentials(acme, credgate.CredentialFilter{IntegrationID: "s2"})
	if err != nil || len(list.Credentials) != 1 {
		t.Fatalf("credentials of s2 after a refused create: %v (%v)", list, err)
	}
	_, err = e.store.UpdateCredential(acme, list.Credentials[0].ID, 0, func(c *credgate.Credential) error {
		c.Secrets = credgate.Secrets{"apiKey": strings.Repeat("y", 5000)}
		return nil
	})
	refused(err, "bytes")
	after, _, err := e.store.Usage(context.Background(), "acme")
	if err != nil || after != u {
		t.Fatalf("usage after refused writes %+v; want %+v (%v)", after, u, err)
	}
}

// TestUsageStartsFromWhatATenantKeeps: a tenant with records and no usage
// record yet (kept before there was one) is counted from its folders.
func TestUsageStartsFromWhatATenantKeeps(t *testing.T) {
	e := mustEnv(t)
	ctx := as(principal("acme", "alice", "integration_admin"))
	for _, id := range []string{"s1", "s2"} {
		if _, err := e.store.CreateService(ctx, &credgate.Service{ID: id, Name: id, Status: credgate.StatusActive}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.store.CreateCredential(ctx, &credgate.Credential{IntegrationID: id, CredentialName: "k", AuthType: credgate.AuthAPIKey, Status: credgate.CredActive, Secrets: credgate.Secrets{"apiKey": "v"}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.root.Logical().Delete(e.mount + "/metadata/system/usage/acme"); err != nil {
		t.Fatal(err)
	}
	fresh, err := vaultstore.New(e.opts)
	if err != nil {
		t.Fatal(err)
	}
	u, _, err := fresh.Usage(context.Background(), "acme")
	if err != nil || u.Services != 2 || u.Credentials != 2 || u.Webhooks != 0 {
		t.Fatalf("counted %+v (%v)", u, err)
	}
}

// limitOf is the message a refusal past a limit gives about the body.
func limitOf(err error) string {
	var e *credgate.Error
	if !errors.As(err, &e) {
		return ""
	}
	return e.Fields["body"]
}

// TestBroadReadsAddUpAcrossReplicasAndPrincipalsStayApart: 300 principals
// of a tenant read 15 integrations each, and one reads 24, half through
// each of two replicas that flush at once. The principals share the
// tenant's reach records (a few dozen for all of them), yet only the one
// over the threshold (20) is reported, once, with the 24 integrations both
// replicas saw; and a replica's flush writes each record once, not one a
// principal.
func TestBroadReadsAddUpAcrossReplicasAndPrincipalsStayApart(t *testing.T) {
	var mu sync.Mutex
	var alerts []credgate.UsageAlert
	var reachWrites atomic.Int64
	e := mustEnvWith(t, func(o *vaultstore.Options) {
		o.OnUsageAlert = func(a credgate.UsageAlert) {
			mu.Lock()
			defer mu.Unlock()
			alerts = append(alerts, a)
		}
		o.Observe = func(op string, _ time.Duration, _ error) {
			if op == "reach_write" {
				reachWrites.Add(1)
			}
		}
	})
	other, err := vaultstore.New(e.opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Close(context.Background()) })
	replicas := []*vaultstore.Store{e.store, other}
	read := func(who string, from, to int) {
		ctx := as(principal("acme", who, "credential_reader"))
		for i := from; i < to; i++ {
			replicas[i%2].RecordRead(ctx, fmt.Sprint("svc", i), fmt.Sprint("cred", i), 1, "")
		}
	}
	const principals = 300
	for p := range principals {
		read(fmt.Sprint("app-", p), p%10, p%10+15)
	}
	read("spread", 0, 24)
	var wg sync.WaitGroup
	wg.Go(e.store.FlushLedgers)
	wg.Go(other.FlushLedgers)
	wg.Wait()
	mu.Lock()
	got := slices.Clone(alerts)
	mu.Unlock()
	if len(got) != 1 || got[0].Type != credgate.EventBroadRead || got[0].Reader.Subject != "spread" || got[0].Count != 24 || got[0].Tenant != "acme" || got[0].Issuer != "https://issuer.test" {
		t.Fatalf("alerts %+v; want one tenant.broad_read of spread, 24 integrations", got)
	}

	// One replica's minute of the same reads: each record it touches is
	// written once (a few dozen), not once a principal.
	reachWrites.Store(0)
	for p := range principals {
		ctx := as(principal("acme", fmt.Sprint("app-", p), "credential_reader"))
		e.store.RecordRead(ctx, "svc0", "cred0", 1, "")
	}
	e.store.FlushLedgers()
	if n := reachWrites.Load(); n == 0 || n > 64 {
		t.Fatalf("%d reach records written for %d principals; want at most 64", n, principals)
	}
	if len(alerts) != 1 {
		t.Fatalf("alerts after the second minute: %+v", alerts)
	}
}

// TestOneTenantReadingWidelyLeavesTheOthersCounted: a replica gathers at
// most PendingReads (reader, credential) pairs between two ledger writes.
// One tenant reading more credentials than that within the minute takes
// the bound, yet another tenant's reads are still counted, up to its share
// of the reserve past it; what is refused is counted as lost, and the next
// minute counts again.
func TestOneTenantReadingWidelyLeavesTheOthersCounted(t *testing.T) {
	const bound = 128 // a tenant's share of the reserve: 128/64 = 2 pairs
	e := mustEnvWith(t, func(o *vaultstore.Options) { o.PendingReads = bound })
	crawler := as(principal("flood", "crawler", "credential_reader"))
	for i := range 200 {
		e.store.RecordRead(crawler, "svc", fmt.Sprint("cred", i), 1, "")
	}
	alice := as(principal("acme", "alice", "credential_reader"))
	for _, c := range []string{"a", "b", "c"} {
		e.store.RecordRead(alice, "svc", c, 1, "")
	}
	e.store.RecordRead(as(principal("globex", "bob", "credential_reader")), "svc", "g", 1, "")
	// The reserve is a quarter of the bound, 32 pairs: alice's 2 and bob's
	// 1 leave room for 29 of 40 more tenants' first reads.
	for i := range 40 {
		e.store.RecordRead(as(principal(fmt.Sprint("small", i), "app", "credential_reader")), "svc", "s", 1, "")
	}
	if n := e.store.LostReads(); n != 72+1+11 {
		t.Fatalf("%d reads lost; want 84 (72 of the crawler's past the bound, alice's third past her share, 11 tenants' past the reserve)", n)
	}
	e.store.FlushLedgers()

	reads := func(tenant, cred string) int64 {
		t.Helper()
		l, err := e.store.CredentialLedger(as(principal(tenant, "admin", "integration_admin")), "svc", cred)
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, r := range l.Readers {
			n += r.Reads
		}
		return n
	}
	for _, c := range []struct {
		tenant, cred string
		want         int64
	}{{"flood", "cred0", 1}, {"flood", "cred127", 1}, {"flood", "cred128", 0}, {"acme", "a", 1}, {"acme", "b", 1}, {"acme", "c", 0}, {"globex", "g", 1}, {"small28", "s", 1}, {"small29", "s", 0}} {
		if got := reads(c.tenant, c.cred); got != c.want {
			t.Errorf("%s's ledger of %s: %d reads; want %d", c.tenant, c.cred, got, c.want)
		}
	}

	// The flush emptied the book: the next minute counts alice's read.
	e.store.RecordRead(alice, "svc", "c", 1, "")
	e.store.FlushLedgers()
	if got := reads("acme", "c"); got != 1 || e.store.LostReads() != 84 {
		t.Fatalf("the next minute: %d reads of c, %d lost; want 1 and still 84", got, e.store.LostReads())
	}
}

// TestAFlushBehindItsIntervalHurries: a flush writes two ledgers at a time
// while it keeps up; one still running after half its interval is behind
// (the next interval's reads wait for it) and writes more at once.
func TestAFlushBehindItsIntervalHurries(t *testing.T) {
	for _, c := range []struct {
		interval time.Duration
		hurries  bool
	}{{time.Hour, false}, {20 * time.Millisecond, true}} {
		t.Run(c.interval.String(), func(t *testing.T) {
			var mu sync.Mutex
			type call struct{ start, end time.Time }
			var calls []call
			e := mustEnvWith(t, func(o *vaultstore.Options) {
				o.LedgerInterval = c.interval
				o.Observe = func(op string, d time.Duration, _ error) {
					if strings.HasPrefix(op, "ledger_") {
						end := time.Now()
						mu.Lock()
						calls = append(calls, call{end.Add(-d), end})
						mu.Unlock()
					}
				}
			})
			t.Cleanup(func() { _ = e.store.Close(context.Background()) }) // stops its ticker
			ctx := as(principal("acme", "app", "credential_reader"))
			const ledgers = 200
			for i := range ledgers {
				e.store.RecordRead(ctx, "svc", fmt.Sprint("cred", i), 1, "")
			}
			e.store.FlushLedgers()
			mu.Lock()
			defer mu.Unlock()
			if len(calls) < 2*ledgers {
				t.Fatalf("%d ledger calls for %d ledgers", len(calls), ledgers)
			}
			// The most calls in flight at once, from their starts and ends.
			type edge struct {
				at time.Time
				in int
			}
			var edges []edge
			for _, c := range calls {
				edges = append(edges, edge{c.start, 1}, edge{c.end, -1})
			}
			slices.SortFunc(edges, func(a, b edge) int {
				if n := a.at.Compare(b.at); n != 0 {
					return n
				}
				return a.in - b.in // an end before a start at the same instant
			})
			most, now := 0, 0
			for _, e := range edges {
				now += e.in
				most = max(most, now)
			}
			if c.hurries && most <= 2 || !c.hurries && most > 2 {
				t.Fatalf("at most %d ledger calls at once with a %v interval (hurrying: %v); want more than 2 only when hurrying", most, c.interval, c.hurries)
			}
		})
	}
}

package monitor_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"go.uber.org/zap"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/bootstrap"
	"github.com/credgate/credgate/monitor"
	"github.com/credgate/credgate/vaultstore"
	"github.com/credgate/credgate/vaultstore/vaulttest"
	"github.com/credgate/credgate/webhook"
)

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// BenchmarkMonitorPass measures one pass of the monitor over
// CREDGATE_SCAN_CREDENTIALS credentials (default 10,000) in
// CREDGATE_SCAN_TENANTS tenants (default 100, ten services each) on a real
// Vault, without its rate limit: the Vault calls a pass costs, in all and
// per credential, its time and credgate's CPU. A third of the credentials
// expire within 30 days, so the first pass (reported apart) publishes
// their notices; the timed passes are the steady state.
func BenchmarkMonitorPass(b *testing.B) {
	tenants := envInt("CREDGATE_SCAN_TENANTS", 100)
	total := envInt("CREDGATE_SCAN_CREDENTIALS", 10000)
	store, calls, _ := benchStore(b, 10*time.Second)
	ctx := context.Background()

	start := time.Now()
	// Expiries spread from 5 days ago to 55 days ahead.
	seed(b, store, func(t int) string { return fmt.Sprintf("scan-%03d", t) }, tenants, total, func(i int) time.Duration { return time.Duration(i%60-5) * 24 * time.Hour })
	b.Logf("seeded %d credentials in %d tenants in %s (%d Vault calls)", total, tenants, time.Since(start).Round(time.Millisecond), calls.Load())

	var last monitor.Pass
	// The monitor's clock a minute ahead: the seeding's marks are old enough
	// to be forgotten once looked at (credgate.MarkGrace), as they are a
	// minute after a bulk import.
	mon := benchMonitor(b, store, func(p monitor.Pass) { last = p }, func() time.Time { return time.Now().Add(credgate.MarkGrace) })
	pass := func() (n int64, took time.Duration, cpu time.Duration) {
		c0, t0, u0 := calls.Load(), time.Now(), cpuTime()
		mon.Step(ctx)
		return calls.Load() - c0, time.Since(t0), cpuTime() - u0
	}
	n, took, cpu := pass()
	if last.Credentials != total {
		b.Fatalf("the first pass saw %d credentials, want %d", last.Credentials, total)
	}
	b.Logf("first pass (publishes the notices due): %d Vault calls (%.2f a credential), %s, credgate CPU %s",
		n, float64(n)/float64(total), took.Round(time.Millisecond), cpu.Round(time.Millisecond))

	b.ResetTimer()
	var sumCalls int64
	var sumCPU time.Duration
	for range b.N {
		n, _, cpu := pass()
		sumCalls += n
		sumCPU += cpu
	}
	b.StopTimer()
	if last.Credentials != total {
		b.Fatalf("a pass saw %d credentials, want %d", last.Credentials, total)
	}
	b.ReportMetric(float64(sumCalls)/float64(b.N), "vault-calls/pass")
	b.ReportMetric(float64(sumCalls)/float64(b.N)/float64(total), "vault-calls/credential")
	b.ReportMetric(float64(sumCPU.Milliseconds())/float64(b.N), "cpu-ms/pass")
}

// benchStore is a store on a fresh real Vault (stopped with b) whose
// Vault calls are counted, each bounded by timeout; replica opens another
// replica on the same Vault, its calls counted with them.
func benchStore(b *testing.B, timeout time.Duration) (store *vaultstore.Store, calls *atomic.Int64, replica func() *vaultstore.Store) {
	addr, token := ownedVault(b)
	calls = new(atomic.Int64)
	replica = func() *vaultstore.Store {
		return storeOn(b, addr, token, timeout, func(string, time.Duration, error) { calls.Add(1) })
	}
	return replica(), calls, replica
}

// ownedVault starts a Vault of tb's own, bootstrapped for credgate, and
// returns its address and credgate's own token.
func ownedVault(tb testing.TB) (addr, token string) {
	v := vaulttest.StartOwned(tb)
	res, err := bootstrap.Bootstrap(context.Background(), v.Client(tb), bootstrap.Options{IssueToken: true})
	if err != nil {
		tb.Fatal(err)
	}
	return v.Addr, res.Token
}

// storeOn is a store (closed with tb) on the Vault at addr with token, its
// Vault calls bounded by timeout and told to observe (nil: none).
func storeOn(tb testing.TB, addr, token string, timeout time.Duration, observe func(string, time.Duration, error)) *vaultstore.Store {
	cfg := api.DefaultConfig()
	cfg.Address, cfg.MaxRetries = addr, 0
	if tr, ok := cfg.HttpClient.Transport.(*http.Transport); ok {
		tr.MaxIdleConnsPerHost = 64
	}
	vc, err := api.NewClient(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	vc.SetToken(token)
	store, err := vaultstore.New(vaultstore.Options{Client: vc, Timeout: timeout, Observe: observe})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { store.Close(context.Background()) })
	return store
}

// benchMonitor is a monitor of store without its rate limit, publishing
// through a real dispatcher, refreshing nothing, telling onPass of each
// pass, on the clock now.
func benchMonitor(b *testing.B, store *vaultstore.Store, onPass func(monitor.Pass), now func() time.Time) *monitor.Monitor {
	d, err := webhook.New(webhook.Options{Store: store, Client: http.DefaultClient, Logger: zap.NewNop(), Holder: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	mon, err := monitor.New(monitor.Options{
		Store: store, Events: d, Grant: func(context.Context, *credgate.Credential) (credgate.Secrets, *time.Time, error) {
			return nil, nil, fmt.Errorf("no refresh in this benchmark")
		},
		Logger: zap.NewNop(), Holder: "bench", Interval: time.Nanosecond, Rate: 1e9, LeaseTTL: time.Minute,
		OnPass: onPass, Now: now,
	})
	if err != nil {
		b.Fatal(err)
	}
	return mon
}

// seed makes total api_key credentials in tenants tenants named by name,
// ten services each; credential i of a tenant expires expiresIn(i) from
// now. At most 16 creations are under way at once: more overload a
// dev server on two cores.
func seed(b *testing.B, store *vaultstore.Store, name func(tenant int) string, tenants, total int, expiresIn func(i int) time.Duration) {
	perTenant := total / tenants
	var wg sync.WaitGroup
	errs := make(chan error, tenants)
	sem := make(chan struct{}, 16)
	bounded := func(f func() error) error {
		sem <- struct{}{}
		defer func() { <-sem }()
		return f()
	}
	now := time.Now().UTC().Truncate(time.Second)
	for t := range tenants {
		wg.Go(func() {
			ctx := credgate.WithPrincipal(context.Background(), credgate.SystemPrincipal(name(t)))
			for s := range 10 {
				if err := bounded(func() error {
					_, err := store.CreateService(ctx, &credgate.Service{ID: fmt.Sprintf("svc-%d", s), Name: fmt.Sprintf("Service %d", s), Type: "payment", Status: credgate.StatusActive, Metadata: map[string]any{}})
					return err
				}); err != nil {
					errs <- err
					return
				}
			}
			for i := range perTenant {
				exp := now.Add(expiresIn(i))
				if err := bounded(func() error {
					_, err := store.CreateCredential(ctx, &credgate.Credential{
						IntegrationID: fmt.Sprintf("svc-%d", i%10), CredentialName: "key " + strconv.Itoa(i), AuthType: credgate.AuthAPIKey,
						Status: credgate.CredActive, Metadata: map[string]any{}, ExpiresAt: &exp, Secrets: credgate.Secrets{"apiKey": "k" + strconv.Itoa(i)},
					})
					return err
				}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// cpuTime is the CPU this process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

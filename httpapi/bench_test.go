package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/httpapi"
)

// benchAPI is a credgate for benchmarks: its rate limit is out of reach
// of any -benchtime (10,000 a minute would refuse a long run with 429).
func benchAPI(b *testing.B) *testAPI {
	return newAPI(b, apiOptions{unchecked: true, rateLimit: httpapi.RateLimit{Default: 1 << 30}})
}

// benchGet measures GET path with tok, which must answer 200. Beside the
// time (mostly Vault's) it reports cpu-µs/op: the CPU this process spent
// a request, credgate's and the client's, one at a time (so mostly waking
// up and going to sleep); B/op and allocs/op are the steadier figures.
func benchGet(b *testing.B, a *testAPI, path, tok string) {
	req, _ := http.NewRequest("GET", a.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	b.ReportAllocs()
	cpu0 := processCPU(b)
	n := 0
	defer func() {
		if n > 0 {
			b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(n), "cpu-µs/op")
		}
	}()
	for b.Loop() {
		n++
		getOK(b, req)
	}
}

// getOK sends req, which must answer 200, and reads the answer through
// (so the connection is reused).
func getOK(b *testing.B, req *http.Request) {
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != 200 {
		b.Fatalf("status %d", res.StatusCode)
	}
}

// processCPU is the user and system CPU this process has spent.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkGetService is one authenticated read through credgate's whole
// stack: HTTP, cached token verification, cached caller token, and one KV
// read from the real Vault.
func BenchmarkGetService(b *testing.B) {
	a := benchAPI(b)
	tok := token(b, "bench", tenant(b), "integration_admin")
	a.do("POST", "/api/v1/services", tok, map[string]any{"id": "bench", "name": "Bench"})
	benchGet(b, a, "/api/v1/services/bench", tok)
}

// BenchmarkGetCredential is one decrypted credential read without a
// credential id, in the steady state: the store remembers which credential
// the service serves, so it is one Vault read; lastAccessedAt is queued.
func BenchmarkGetCredential(b *testing.B) {
	a := benchAPI(b)
	tok := token(b, "bench", tenant(b), "integration_admin")
	benchCredential(a, tok)
	benchGet(b, a, "/api/v1/credentials/bench", tok)
}

// benchCredential makes the service "bench" with one API key, as tok.
func benchCredential(a *testAPI, tok string) {
	a.mustCreate(tok, map[string]any{"id": "bench", "name": "Bench"})
	a.mustCreateCredential(tok, map[string]any{"integrationId": "bench", "credentialName": "k", "authType": "api_key", "apiKey": secret("bench-" + randHex(8))})
}

// BenchmarkGetCredentialByGrant is BenchmarkGetCredential by an
// application with no role but a grant of credential_reader on the one
// integration: what least privilege costs a read.
func BenchmarkGetCredentialByGrant(b *testing.B) {
	a := benchAPI(b)
	ten := tenant(b)
	admin, app := token(b, "bench", ten, "integration_admin"), token(b, "bench-app", ten)
	benchCredential(a, admin)
	if r := a.do("POST", "/api/v1/grants", admin, map[string]any{"subject": subjectOf(b, app), "role": "credential_reader", "integrations": []string{"bench"}}); r.Status != 201 {
		b.Fatalf("grant: %d %v", r.Status, r.Body)
	}
	benchGet(b, a, "/api/v1/credentials/bench", app)
}

// BenchmarkLedgerMinute is one replica's minute of ledger work at 1,000
// reads a second spread over 1,000 credentials: 60,000 reads gathered in
// memory (what each read costs on its path), then the one flush that
// merges them into the ledgers and the principals' reach; by 20
// principals (applications), and by 10,000 (a fleet of callers, as
// bench-compare's distinct callers, sharing 64 reach records). It reports
// the Vault calls of that minute, how long the flush took, and what the
// gathered reads held in memory a principal until it.
func BenchmarkLedgerMinute(b *testing.B) {
	a := benchAPI(b)
	for _, readers := range []int{20, 10_000} {
		b.Run(fmt.Sprint(readers, "-principals"), func(b *testing.B) {
			ledgerMinute(b, a, readers)
		})
	}
}

// aMinute is a minute of reads at 1,000 a second, spread over 1,000
// credentials of 50 services, by its principals (of a tenant of their own).
type aMinute struct {
	principals      []context.Context
	services, creds []string
}

func newMinute(b *testing.B, readers int) *aMinute {
	ten := tenant(b)
	m := &aMinute{principals: make([]context.Context, readers), services: make([]string, 50), creds: make([]string, 1000)}
	for i := range m.principals {
		p := &credgate.Principal{Subject: fmt.Sprint("app-", i), Issuer: "https://idp.example", Tenant: ten, TenantName: ten, Roles: []string{"credential_reader"}}
		m.principals[i] = credgate.WithRequestID(credgate.WithPrincipal(context.Background(), p), "req")
	}
	for i := range m.services {
		m.services[i] = fmt.Sprint("svc", i)
	}
	for i := range m.creds {
		m.creds[i] = fmt.Sprintf("cred-00000000-0000-4000-8000-%012d", i)
	}
	return m
}

// gather records the minute's 60,000 reads in a's store, for its next flush.
func (m *aMinute) gather(a *testAPI) {
	for i := range 60_000 {
		a.store.RecordRead(m.principals[i%len(m.principals)], m.services[i%len(m.services)], m.creds[i%len(m.creds)], 1, "")
	}
}

func ledgerMinute(b *testing.B, a *testAPI, readers int) {
	minute := newMinute(b, readers)
	var gather, flush time.Duration
	var held int64
	calls := 0
	for b.Loop() {
		heap0 := liveHeap()
		start := time.Now()
		minute.gather(a)
		gather += time.Since(start)
		held += int64(liveHeap()) - int64(heap0)
		before := a.vaultCalls.Load()
		start = time.Now()
		a.store.FlushLedgers()
		flush += time.Since(start)
		calls += int(a.vaultCalls.Load() - before)
	}
	b.ReportMetric(float64(gather.Nanoseconds())/float64(b.N)/60_000, "ns/read-gathered")
	b.ReportMetric(float64(calls)/float64(b.N), "vault-calls/minute")
	b.ReportMetric(flush.Seconds()/float64(b.N), "s/flush")
	b.ReportMetric(float64(held)/float64(b.N)/float64(readers), "held-B/principal")
}

// liveHeap is the heap in use after a collection.
func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkAccessWrites is a replica writing lastAccessedAt after 1,000
// credentials of ten services were each read once: the time from the reads
// until every value and its service's note is in Vault (the store's Close,
// which waits for them), and the Vault calls that took.
func BenchmarkAccessWrites(b *testing.B) {
	type read struct{ service, cred string }
	var took time.Duration
	calls := 0
	for b.Loop() { // a credential's lastAccessedAt is written once a minute: a new replica each time
		b.StopTimer()
		a := benchAPI(b)
		ten := tenant(b)
		tok := token(b, "bench", ten, "integration_admin")
		var reads []read
		for s := range 10 {
			svc := fmt.Sprint("svc", s)
			a.do("POST", "/api/v1/services", tok, map[string]any{"id": svc, "name": svc})
			for i := range 100 {
				r := a.do("POST", "/api/v1/credentials", tok, map[string]any{"integrationId": svc, "credentialName": fmt.Sprint("k", i), "authType": "api_key", "apiKey": secret("bench-" + randHex(8))})
				if r.Status != 201 {
					b.Fatalf("create: %d %s", r.Status, r.Raw)
				}
				id, _ := r.data()["id"].(string)
				reads = append(reads, read{svc, id})
			}
		}
		p := &credgate.Principal{Subject: "reader", Issuer: "https://idp.example", Tenant: ten, TenantName: ten, Roles: []string{"credential_reader"}}
		ctx := credgate.WithPrincipal(context.Background(), p)
		time.Sleep(time.Second) // what the creates left to the background
		before := a.vaultCalls.Load()
		b.StartTimer()
		start := time.Now()
		for _, r := range reads {
			a.store.RecordAccess(ctx, r.service, r.cred)
		}
		if err := a.store.Close(context.Background()); err != nil {
			b.Fatal(err)
		}
		took += time.Since(start)
		calls += int(a.vaultCalls.Load() - before)
	}
	b.ReportMetric(took.Seconds()/float64(b.N), "s/1000-accesses")
	b.ReportMetric(float64(calls)/float64(b.N), "vault-calls")
}

// BenchmarkReadsDuringFlush is one caller's credential reads, one at a
// time, while nothing else runs and then while a replica flushes a
// minute of 10,000 principals' reads (their ledgers and reach): what a
// large flush costs everyone else's reads through the Vault they share.
func BenchmarkReadsDuringFlush(b *testing.B) {
	a := benchAPI(b)
	tok := token(b, "bench", tenant(b), "integration_admin")
	benchCredential(a, tok)
	req, _ := http.NewRequest("GET", a.url+"/api/v1/credentials/bench", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	readWhile := func(busy func()) (p50, p99 time.Duration) {
		var lat []time.Duration
		done := make(chan struct{})
		go func() { busy(); close(done) }()
		for {
			select {
			case <-done:
				slices.Sort(lat)
				return lat[len(lat)/2], lat[len(lat)*99/100]
			default:
			}
			start := time.Now()
			getOK(b, req)
			lat = append(lat, time.Since(start))
		}
	}
	minute := newMinute(b, 10_000)
	for b.Loop() {
		quiet50, quiet99 := readWhile(func() { time.Sleep(3 * time.Second) })
		minute.gather(a)
		start := time.Now()
		busy50, busy99 := readWhile(a.store.FlushLedgers)
		b.ReportMetric(time.Since(start).Seconds(), "s/flush")
		b.ReportMetric(float64(quiet50.Microseconds())/1000, "quiet-p50-ms")
		b.ReportMetric(float64(quiet99.Microseconds())/1000, "quiet-p99-ms")
		b.ReportMetric(float64(busy50.Microseconds())/1000, "flush-p50-ms")
		b.ReportMetric(float64(busy99.Microseconds())/1000, "flush-p99-ms")
	}
}

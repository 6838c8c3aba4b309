// Command bench-compare measures credgate's reads side by side with the
// Vault behind them (make bench-compare). It starts a Vault dev server with
// a file audit device, bootstraps it as `credgate bootstrap` does, starts
// bin/credgate, `vault proxy` (forcing its auto-auth token) and the floor
// (floor.go: credgate's HTTP stack doing nothing of credgate's) in front of
// that Vault, stores one small api_key credential, and loads each read with
// vegeta as a closed loop: req/s, p50 and p99 at -conns connections, p50 at
// one connection, and the ratios to direct Vault and to vault proxy, in
// rounds that alternate the targets so that the machine's drift cancels
// out. It prints the CPU per request of the process in front of Vault
// (credgate, vault proxy, the floor), then has -callers distinct
// callers read once each and prints credgate's memory. It exits non-zero
// when any read answers anything but 200.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/vault/api"
	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/credgate/credgate/auth/oidctest"
	"github.com/credgate/credgate/bootstrap"
	"github.com/credgate/credgate/policy"
	"github.com/credgate/credgate/vaultstore/devvault"
)

func main() {
	if len(os.Args) == 4 && os.Args[1] == floorCommand && os.Args[2] == "-config" {
		if err := serveFloor(os.Args[3]); err != nil {
			fmt.Fprintln(os.Stderr, "bench-compare floor:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench-compare:", err)
		os.Exit(1)
	}
}

type options struct {
	vaultBin, credgateBin string
	baselineBin           string // another credgate, loaded beside the first (-baseline)
	duration              time.Duration
	rounds, conns         int
	callers               int
	only                  string
}

// target is one read to load.
type target struct {
	name   string
	url    string
	header http.Header
	proc   *process // the process in front of Vault, whose CPU is measured (nil: none)
	always bool     // loaded whatever -only says: the ratios are to it
}

// result is one target's measurements, one entry per round.
type result struct {
	rps, p50, p99, p50one []float64
	cpuPerReq             []float64 // the CPU of the process in front of Vault, µs per request
	non200                int
}

func run() error {
	var o options
	flag.StringVar(&o.vaultBin, "vault", "bin/vault", "the Vault binary (make vault)")
	flag.StringVar(&o.credgateBin, "credgate", "bin/credgate", "the credgate binary (make build)")
	flag.DurationVar(&o.duration, "duration", 6*time.Second, "how long each target is loaded at -conns connections per round (half as long at one)")
	flag.IntVar(&o.rounds, "rounds", 2, "rounds; the targets alternate within each")
	flag.IntVar(&o.conns, "conns", 16, "concurrent connections")
	flag.IntVar(&o.callers, "callers", 10000, "distinct callers that read once each before credgate's memory is measured")
	flag.StringVar(&o.only, "only", "", "load only the targets whose name holds this (direct Vault and vault proxy are always loaded, for the ratios)")
	flag.StringVar(&o.baselineBin, "baseline", "", "another credgate binary (an earlier build) run beside the first against the same Vault, each of its reads loaded right after the first's in every round: a before and after that machine drift does not blur")
	flag.Parse()

	dir, err := os.MkdirTemp("", "credgate-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()

	vault, err := devvault.Start(o.vaultBin, "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer vault.Stop()
	root, err := api.NewClient(&api.Config{Address: vault.Addr})
	if err != nil {
		return err
	}
	root.SetToken(vault.RootToken)
	boot, err := bootstrap.Bootstrap(ctx, root, bootstrap.Options{AuditFile: filepath.Join(dir, "audit.log"), IssueToken: true})
	if err != nil {
		return err
	}

	iss, err := oidctest.New()
	if err != nil {
		return err
	}
	defer iss.Close()
	const tenant = "bench"
	mint := func(sub string, roles ...string) (string, error) {
		return iss.SignClaims(iss.Claims(sub, tenant, roles...))
	}

	cg, err := startCredgate(o.credgateBin, dir, vault.Addr, boot.Token, iss)
	if err != nil {
		return err
	}
	defer cg.stop()

	admin, err := mint("bench-admin", "integration_admin")
	if err != nil {
		return err
	}
	reader, err := mint("bench-reader", "credential_reader")
	if err != nil {
		return err
	}
	var cred struct {
		Data struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := call(cg.url, "POST", "/api/v1/services", admin, `{"id":"stripe","name":"Stripe"}`, nil); err != nil {
		return err
	}
	if err := call(cg.url, "POST", "/api/v1/credentials", admin, `{"integrationId":"stripe","credentialName":"live","authType":"api_key","apiKey":"sk_bench_0123456789abcdef"}`, &cred); err != nil {
		return err
	}
	// The reader's first read makes credgate write its Vault policy, which
	// the direct token and vault proxy's token carry too.
	if err := call(cg.url, "GET", "/api/v1/credentials/stripe", reader, "", nil); err != nil {
		return err
	}
	// An application with no role, granted credential_reader on stripe
	// only: its reads go through its grant.
	app, err := mint("bench-app")
	if err != nil {
		return err
	}
	if err := call(cg.url, "POST", "/api/v1/grants", admin, `{"subject":"bench-app","role":"credential_reader","integrations":["stripe"]}`, nil); err != nil {
		return err
	}
	readerPolicy := policy.Name(tenant, policy.CredentialReader)
	direct, err := root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{readerPolicy}, NoDefaultPolicy: true, Type: "batch", TTL: "2h"})
	if err != nil {
		return err
	}
	// vault proxy's own token also carries the default policy: its
	// auto-auth looks the token up and renews it.
	proxied, err := root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{readerPolicy}, TTL: "2h", Renewable: boolPtr(true)})
	if err != nil {
		return err
	}
	proxy, err := startProxy(o.vaultBin, dir, vault.Addr, proxied.Auth.ClientToken)
	if err != nil {
		return err
	}
	defer proxy.stop()

	kvPath := "/v1/" + policy.DefaultMount + "/data/tenants/" + tenant + "/credentials/stripe/" + cred.Data.ID
	floor, err := startFloor(dir, vault.Addr, direct.Auth.ClientToken, kvPath, "")
	if err != nil {
		return err
	}
	defer floor.stop()
	fastFloor, err := startFloor(dir, vault.Addr, direct.Auth.ClientToken, kvPath, "fasthttp")
	if err != nil {
		return err
	}
	defer fastFloor.stop()
	bearer := http.Header{"Authorization": {"Bearer " + reader}}
	targets := []target{
		{name: "direct Vault", url: vault.Addr + kvPath, header: http.Header{"X-Vault-Token": {direct.Auth.ClientToken}}, always: true},
		{name: "vault proxy", url: proxy.url + kvPath, header: http.Header{}, proc: proxy, always: true},
		{name: "floor: gin + fasthttp GET, no credgate work (floor.go)", url: floor.url + "/read", header: http.Header{}, proc: floor, always: true},
		{name: "floor with fasthttp's server instead of net/http's", url: fastFloor.url + "/read", header: http.Header{}, proc: fastFloor},
		{name: "credgate GET /api/v1/credentials/{id}?credentialId=…", url: cg.url + "/api/v1/credentials/stripe?credentialId=" + cred.Data.ID, header: bearer, proc: cg},
		{name: "credgate GET /api/v1/credentials/{id} (seed 002)", url: cg.url + "/api/v1/credentials/stripe", header: bearer, proc: cg},
		{name: "credgate GET /api/v1/credentials/{id} by a caller with a grant", url: cg.url + "/api/v1/credentials/stripe", header: http.Header{"Authorization": {"Bearer " + app}}, proc: cg},
		{name: "credgate GET /api/v1/services/{id}/credentials (seed 000)", url: cg.url + "/api/v1/services/stripe/credentials", header: bearer, proc: cg},
		{name: "credgate GET /api/v1/services/{id}", url: cg.url + "/api/v1/services/stripe", header: bearer, proc: cg},
	}
	if o.baselineBin != "" {
		bdir := filepath.Join(dir, "baseline")
		if err := os.Mkdir(bdir, 0o700); err != nil {
			return err
		}
		base, err := startCredgate(o.baselineBin, bdir, vault.Addr, boot.Token, iss)
		if err != nil {
			return err
		}
		defer base.stop()
		// Each credgate read gets its twin through the baseline, right
		// after it: the same records, callers and tokens.
		var twinned []target
		for _, t := range targets {
			twinned = append(twinned, t)
			if t.proc == cg {
				b := t
				b.name = strings.Replace(t.name, "credgate ", "baseline ", 1)
				b.url = base.url + strings.TrimPrefix(t.url, cg.url)
				b.proc = base
				twinned = append(twinned, b)
			}
		}
		targets = twinned
	}
	results := make([]result, len(targets))
	fmt.Printf("%d rounds, %s at %d connections and %s at 1 per target per round; Vault %s with a file audit device\n\n",
		o.rounds, o.duration, o.conns, o.duration/2, vault.Addr)
	for round := range o.rounds {
		order := make([]int, len(targets))
		for i := range order {
			order[i] = i
		}
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, i := range order {
			t := targets[i]
			if !t.always && !strings.Contains(t.name, o.only) {
				continue
			}
			cpu0 := t.proc.cpu()
			m := load(t, o.conns, o.duration)
			cpu := t.proc.cpu() - cpu0
			one := load(t, 1, o.duration/2)
			r := &results[i]
			r.rps = append(r.rps, m.Throughput)
			r.p50 = append(r.p50, ms(m.Latencies.P50))
			r.p99 = append(r.p99, ms(m.Latencies.P99))
			r.p50one = append(r.p50one, ms(one.Latencies.P50))
			perReq := ""
			if t.proc != nil && m.Requests > 0 {
				us := float64(cpu.Microseconds()) / float64(m.Requests)
				r.cpuPerReq = append(r.cpuPerReq, us)
				perReq = fmt.Sprintf("  %.0f µs CPU/req", us)
			}
			r.non200 += int(m.Requests) - m.StatusCodes["200"] + int(one.Requests) - one.StatusCodes["200"]
			fmt.Fprintf(os.Stderr, "round %d %-60s %8.0f req/s  p50 %.2f ms  p99 %.2f ms  p50@1 %.2f ms%s\n", round+1, t.name, m.Throughput, ms(m.Latencies.P50), ms(m.Latencies.P99), ms(one.Latencies.P50), perReq)
			if m.StatusCodes["200"] != int(m.Requests) {
				fmt.Fprintf(os.Stderr, "  statuses %v, errors %v\n", m.StatusCodes, m.Errors[:min(len(m.Errors), 3)])
			}
		}
	}
	report(targets, results, o.conns)

	if o.callers == 0 {
		return nil
	}
	rss, err := cg.memoryAfter(o.callers, o.conns, func(i int) (string, error) { return mint(fmt.Sprintf("caller-%05d", i), "credential_reader") }, "/api/v1/credentials/stripe?credentialId="+cred.Data.ID)
	if err != nil {
		return err
	}
	fmt.Printf("\nmemory: after %d distinct callers read once each, credgate's RSS is %s (peak %s)\n", o.callers, rss.now, rss.peak)

	bad := 0
	for i, r := range results {
		if r.non200 > 0 {
			fmt.Printf("%s: %d answers were not 200\n", targets[i].name, r.non200)
			bad += r.non200
		}
	}
	if bad > 0 {
		return fmt.Errorf("%d answers were not 200", bad)
	}
	return nil
}

func boolPtr(b bool) *bool { return &b }

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// load runs a closed loop of conns workers against t for d.
func load(t target, conns int, d time.Duration) vegeta.Metrics {
	atk := vegeta.NewAttacker(vegeta.Workers(uint64(conns)), vegeta.MaxWorkers(uint64(conns)), vegeta.Connections(conns),
		vegeta.KeepAlive(true), vegeta.Timeout(10*time.Second), vegeta.Redirects(vegeta.NoFollow))
	tr := vegeta.NewStaticTargeter(vegeta.Target{Method: "GET", URL: t.url, Header: t.header})
	var m vegeta.Metrics
	for res := range atk.Attack(tr, vegeta.Rate{Freq: 0}, d, t.name) {
		m.Add(res)
	}
	m.Close()
	return m
}

// floorTarget is the floor's place among the targets.
const floorTarget = 2

// aboveFloor is the median over rounds of a read's CPU a request less the
// floor's in the same round: credgate's own work, which the machine's
// drift between rounds (±20 % of the whole) blurs far less than the
// totals. cpu and floor hold a figure a round each.
func aboveFloor(cpu, floor []float64) (float64, bool) {
	if len(cpu) == 0 || len(cpu) != len(floor) {
		return 0, false
	}
	d := make([]float64, len(cpu))
	for i := range cpu {
		d[i] = cpu[i] - floor[i]
	}
	return median(d), true
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func report(targets []target, results []result, conns int) {
	directRPS, proxyRPS := median(results[0].rps), median(results[1].rps)
	directP50 := median(results[0].p50one)
	fmt.Printf("| read | req/s (%d conns) | p50 ms | p99 ms | p50 ms (1 conn) | + p50 over direct (1 conn) | × direct Vault | × vault proxy | CPU µs/req in front of Vault | CPU µs/req above the floor |\n", conns)
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	for i, t := range targets {
		r := results[i]
		if len(r.rps) == 0 {
			continue
		}
		cpu := "—"
		if len(r.cpuPerReq) > 0 {
			cpu = fmt.Sprintf("%.0f", median(r.cpuPerReq))
		}
		above := "—"
		if d, ok := aboveFloor(r.cpuPerReq, results[floorTarget].cpuPerReq); ok && i > floorTarget {
			above = fmt.Sprintf("%.0f", d)
		}
		rps := median(r.rps)
		fmt.Printf("| %s | %.0f | %.2f | %.2f | %.2f | %+.2f ms | %.2f | %.2f | %s | %s |\n", t.name, rps, median(r.p50), median(r.p99), median(r.p50one),
			median(r.p50one)-directP50, rps/directRPS, rps/proxyRPS, cpu, above)
	}
}

// process is a child process the bench started.
type process struct {
	cmd *exec.Cmd
	url string
	log *os.File
}

func (p *process) stop() {
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
		}
	}
	if p.log != nil {
		p.log.Close()
	}
}

func start(bin string, args, env []string, logFile string) (*process, error) {
	log, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	return &process{cmd: cmd, log: log}, nil
}

// waitFor polls url until it answers 200.
func waitFor(url string, p *process) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if res, err := http.Get(url); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	b, _ := os.ReadFile(p.log.Name())
	return fmt.Errorf("%s never answered 200:\n%s", url, b)
}

func startCredgate(bin, dir, vaultAddr, token string, iss *oidctest.Issuer) (*process, error) {
	port, err := devvault.FreePort()
	if err != nil {
		return nil, err
	}
	config := fmt.Sprintf(`listen: 127.0.0.1:%d
log_level: info
vault:
  address: %s
auth:
  issuers:
    - name: bench
      url: %s
      audiences: [%s]
rate_limit:
  default: 1000000000
`, port, vaultAddr, iss.URL, iss.Audience)
	return launch(bin, dir, "credgate", "credgate.yaml", config, port, "/readyz", []string{"VAULT_ADDR=", "VAULT_TOKEN=" + token}, "serve")
}

func startProxy(bin, dir, vaultAddr, token string) (*process, error) {
	port, err := devvault.FreePort()
	if err != nil {
		return nil, err
	}
	tokenFile := filepath.Join(dir, "proxy-token")
	if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
		return nil, err
	}
	config := fmt.Sprintf(`vault { address = %q }
auto_auth {
  method "token_file" {
    config = { token_file_path = %q }
  }
}
api_proxy { use_auto_auth_token = "force" }
listener "tcp" {
  address     = "127.0.0.1:%d"
  tls_disable = true
}
`, vaultAddr, tokenFile, port)
	return launch(bin, dir, "proxy", "proxy.hcl", config, port, "/v1/sys/health", []string{"VAULT_ADDR=" + vaultAddr, "VAULT_TOKEN="}, "proxy")
}

// launch writes config to file in dir, starts bin with command and
// -config, the file, logging to name.log in dir, and waits until GET ready
// answers on port.
func launch(bin, dir, name, file, config string, port int, ready string, env []string, command string) (*process, error) {
	path := filepath.Join(dir, file)
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		return nil, err
	}
	p, err := start(bin, []string{command, "-config", path}, env, filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	p.url = fmt.Sprintf("http://127.0.0.1:%d", port)
	if err := waitFor(p.url+ready, p); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

// cpu is the CPU time the process has used, user and system (0 for no
// process).
func (p *process) cpu() time.Duration {
	if p == nil {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	const ticksPerSecond = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticksPerSecond
}

type memory struct{ now, peak string }

// memoryAfter has n distinct callers (their tokens from token) read path
// once each, conns at a time, then reads the process's resident memory.
func (p *process) memoryAfter(n, conns int, token func(int) (string, error), path string) (memory, error) {
	var wg sync.WaitGroup
	next := make(chan int)
	errs := make(chan error, conns)
	for range conns {
		wg.Go(func() {
			for i := range next {
				tok, err := token(i)
				if err == nil {
					err = call(p.url, "GET", path, tok, "", nil)
				}
				if err != nil {
					select {
					case errs <- fmt.Errorf("caller %d: %w", i, err):
					default:
					}
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		return memory{}, err
	default:
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return memory{}, err
	}
	var m memory
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			m.now = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			m.peak = strings.TrimSpace(v)
		}
	}
	return m, nil
}

// call sends one request to credgate and decodes a 2xx answer into out.
func call(base, method, path, tok, body string, out any) error {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, base+path, r)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %d %s", method, path, res.StatusCode, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

package httpapi_test

import (
	"context"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/bootstrap"
	"github.com/credgate/credgate/httpapi"
	"github.com/credgate/credgate/vaultstore/vaulttest"
)

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func TestRequestIDs(t *testing.T) {
	a := newAPI(t, apiOptions{})
	for _, sane := range []string{"abc-123", "Az09._:-", strings.Repeat("x", 128)} {
		if r := a.do("GET", "/healthz", "", nil, "X-Request-Id", sane); r.Header.Get("X-Request-Id") != sane {
			t.Fatalf("a sane request id %q is kept: %q", sane, r.Header.Get("X-Request-Id"))
		}
	}
	for _, bad := range []string{"has space", strings.Repeat("x", 129), "semi;colon", "new\tline", "slash/", "é"} {
		got := a.do("GET", "/healthz", "", nil, "X-Request-Id", bad).Header.Get("X-Request-Id")
		if got == "" || got == bad {
			t.Errorf("request id %q: answered %q; want a fresh one", bad, got)
		}
	}
	if a.do("GET", "/nowhere", "", nil).Header.Get("X-Request-Id") == "" {
		t.Fatal("404 answers lack X-Request-Id")
	}
}

func TestBodyLimit(t *testing.T) {
	a := newAPI(t, apiOptions{})
	tok := token(t, "alice", tenant(t), "integration_admin")
	big := `{"name":"x","description":"` + strings.Repeat("a", 2<<20) + `"}`
	wantError(t, a.do("POST", "/api/v1/services", tok, big), 413, "PAYLOAD_TOO_LARGE")

	// Without a Content-Length the limit trips while reading.
	req, _ := http.NewRequest("POST", a.url+"/api/v1/services", io.MultiReader(strings.NewReader(big)))
	req.ContentLength = -1
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 413 {
		t.Fatalf("chunked oversized body: %d; want 413", res.StatusCode)
	}
}

// panicky panics in GetService, to show recovery.
type panicky struct{ httpapi.ServiceStore }

func (panicky) GetService(context.Context, string) (*credgate.Service, error) {
	panic("boom: secret-ish internal state")
}

func TestPanicsBecomeGenericInternalErrors(t *testing.T) {
	a := newAPI(t, apiOptions{wrap: func(st httpapi.ServiceStore) httpapi.ServiceStore { return panicky{st} }})
	tok := token(t, "alice", tenant(t), "integration_admin")
	r := a.do("GET", "/api/v1/services/x", tok, nil)
	wantError(t, r, 500, "INTERNAL_ERROR")
	if strings.Contains(string(r.Raw), "boom") {
		t.Fatalf("the panic reached the client: %s", r.Raw)
	}
	if r := a.do("GET", "/api/v1/services", tok, nil); r.Status != 200 {
		t.Fatalf("the server did not survive the panic: %d", r.Status)
	}
}

func TestUnknownRoutes(t *testing.T) {
	a := newAPI(t, apiOptions{})
	wantError(t, a.do("GET", "/api/v2/services", "", nil), 404, "NOT_FOUND")
	for path, want := range map[string]int{"/api/v1/credentials/a/b/c/d": 400, "/api/v1/credentials/svc-1": 401} {
		r := a.do("GET", path, "", nil)
		e, _ := r.Body["error"].(map[string]any)
		if r.Status != want || r.Body["success"] != false || r.Body["timestamp"] == nil || e["code"] == nil {
			t.Fatalf("%s: the credentials family answers in its envelope: %d %s", path, r.Status, r.Raw)
		}
	}
}

// proxy forwards TCP to Vault until it is stopped; started again on the
// same address, it forwards again. It stands for Vault going away.
type proxy struct {
	t      *testing.T
	addr   string
	target string
	mu     sync.Mutex
	ln     net.Listener
	conns  []net.Conn
	hang   bool // accept connections but never answer
}

func startProxy(t *testing.T, target string) *proxy {
	p := &proxy{t: t, target: strings.TrimPrefix(target, "http://")}
	p.start("127.0.0.1:0")
	t.Cleanup(p.stop)
	return p
}

func (p *proxy) start(addr string) {
	var ln net.Listener
	var err error
	for range 50 { // the old socket may linger for a moment
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			hang := p.hang
			p.mu.Unlock()
			var up net.Conn
			if !hang {
				if up, err = net.Dial("tcp", p.target); err != nil {
					c.Close()
					continue
				}
			}
			p.mu.Lock()
			// Decided under the lock after the dial: a connection whose
			// dial setHang came during hangs too, or it would be the
			// pooled connection that dodges it.
			if up == nil || p.hang {
				p.conns = append(p.conns, c)
				p.mu.Unlock()
				if up != nil {
					up.Close()
				}
				continue
			}
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
}

// setHang makes new connections hang (or forward again) and drops the
// current ones, so that pooled connections cannot dodge it.
func (p *proxy) setHang(h bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hang = h
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *proxy) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func TestVaultOutagesAre503AndRecover(t *testing.T) {
	own := vaulttest.StartOwned(t)
	res, err := bootstrap.Bootstrap(context.Background(), own.Client(t), bootstrap.Options{IssueToken: true})
	if err != nil {
		t.Fatal(err)
	}
	px := startProxy(t, own.Addr)
	a := newAPI(t, apiOptions{vault: own, vaultURL: "http://" + px.addr, ownToken: res.Token})
	tok := token(t, "olga", tenant(t), "integration_admin")
	a.mustCreate(tok, map[string]any{"id": "twilio", "name": "Twilio"})

	// /readyz answers from its latest probe (at most 2 s old, bounded by
	// the store's timeout): it follows Vault within a few seconds, and
	// answers each time within 1.5 s.
	readyz := func(when string, want int) {
		t.Helper()
		var r reply
		deadline := time.Now().Add(10 * time.Second)
		for {
			start := time.Now()
			r = a.do("GET", "/readyz", "", nil)
			if took := time.Since(start); took > 2*time.Second {
				t.Fatalf("%s: /readyz took %s", when, took)
			}
			if r.Status == want || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if r.Status != want || (want == 503 && r.Header.Get("Retry-After") == "") {
			t.Fatalf("%s: /readyz %d %s", when, r.Status, r.Raw)
		}
	}
	wantUnavailable := func(when string) {
		t.Helper()
		readyz(when, 503)
		for _, req := range []struct{ method, path string }{{"GET", "/api/v1/services/twilio"}, {"GET", "/api/v1/services"}, {"PATCH", "/api/v1/services/twilio"}} {
			var body any
			if req.method == "PATCH" {
				body = map[string]any{"type": "sms"}
			}
			r := a.do(req.method, req.path, tok, body)
			wantError(t, r, 503, "BACKEND_UNAVAILABLE")
			if r.Header.Get("Retry-After") == "" {
				t.Fatalf("%s: 503 without Retry-After", when)
			}
			if strings.Contains(string(r.Raw), own.Addr) || strings.Contains(string(r.Raw), px.addr) || strings.Contains(string(r.Raw), "tenants/") {
				t.Fatalf("%s: the error leaks Vault details: %s", when, r.Raw)
			}
		}
	}
	wantWorking := func(when string) {
		t.Helper()
		readyz(when, 200)
		if r := a.do("GET", "/api/v1/services/twilio", tok, nil); r.Status != 200 {
			t.Fatalf("%s: read %d %s", when, r.Status, r.Raw)
		}
	}

	own.Seal(t)
	wantUnavailable("sealed")
	own.Unseal(t)
	wantWorking("unsealed")

	px.stop()
	wantUnavailable("unreachable")
	px.start(px.addr)
	wantWorking("reachable again")

	px.setHang(true)
	start := time.Now()
	wantUnavailable("hanging")
	// Five requests, each bounded by the store's 2 s timeout (readyz by 3 s).
	if took := time.Since(start); took > 20*time.Second {
		t.Fatalf("answers to a hanging Vault took %s", took)
	}
	px.setHang(false)
	wantWorking("answering again")
}

func TestHealthzNeedsNothing(t *testing.T) {
	a := newAPI(t, apiOptions{vaultURL: "http://127.0.0.1:1"})
	if r := a.do("GET", "/healthz", "", nil); r.Status != 200 {
		t.Fatalf("healthz: %d", r.Status)
	}
	r := a.do("GET", "/readyz", "", nil)
	if r.Status != 503 || strings.Contains(string(r.Raw), "127.0.0.1:1") {
		t.Fatalf("readyz with no Vault: %d %s", r.Status, r.Raw)
	}

}

package vaulttest

import (
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// FaultProxy is an HTTP proxy in front of a Vault that cuts the connection
// at a chosen request, to show what a multi-step write leaves behind when
// Vault becomes unreachable between two of its steps. Armed with Cut(n,
// after), it forwards n-1 requests, then cuts the n-th: before Vault sees it,
// or after Vault has answered it (the write happened, its answer is lost).
// From then on every request is cut too, as when a network goes away, until
// Heal.
type FaultProxy struct {
	// URL is where Vault clients should point (http://127.0.0.1:port).
	URL string

	mu      sync.Mutex
	answers []answer
	armed   bool
	cutAt   int
	after   bool
	seen    int  // requests since Cut
	down    bool // cutting every request
	methods []string
	delay   time.Duration
}

// StartFaultProxy starts a proxy to the Vault at target (an http URL) on a
// free loopback port; it stops when tb ends.
func StartFaultProxy(tb testing.TB, target string) *FaultProxy {
	tb.Helper()
	u, err := url.Parse(target)
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &FaultProxy{URL: "http://" + ln.Addr().String()}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = p
	rp.ErrorHandler = func(http.ResponseWriter, *http.Request, error) {
		panic(http.ErrAbortHandler) // the client sees its connection close
	}
	srv := &http.Server{Handler: rp, ErrorLog: nil}
	go func() { _ = srv.Serve(ln) }()
	tb.Cleanup(func() { _ = srv.Close() })
	return p
}

// answer is a reply the proxy gives in Vault's place.
type answer struct {
	match  func(*http.Request) bool
	status int
	body   string
}

// Answer makes the proxy answer the requests match selects itself, with
// status and body (Vault's JSON error shape, say), instead of forwarding
// them; the latest Answer for a request wins. Clear with Heal.
func (p *FaultProxy) Answer(match func(*http.Request) bool, status int, body string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.answers = append(p.answers, answer{match, status, body})
}

// Delay makes Vault answer d later than it would (0: at once), as a slow
// or overloaded Vault does: every request waits d before it is forwarded,
// or until its client gives up. Heal clears it.
func (p *FaultProxy) Delay(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.delay = d
}

// errCut is what the proxy's transport returns for a cut request.
type errCut struct{}

func (errCut) Error() string { return "vaulttest: connection cut" }

// RoundTrip forwards r to Vault unless it is to be cut.
func (p *FaultProxy) RoundTrip(r *http.Request) (*http.Response, error) {
	p.mu.Lock()
	if p.down {
		p.mu.Unlock()
		return nil, errCut{}
	}
	cutNow, cutAfter := false, false
	if p.armed {
		p.seen++
		p.methods = append(p.methods, r.Method+" "+r.URL.Path)
		if p.seen == p.cutAt {
			cutNow, cutAfter = !p.after, p.after
			p.down = true
		}
	}
	var reply *answer
	for i := len(p.answers) - 1; i >= 0; i-- {
		if p.answers[i].match(r) {
			reply = &p.answers[i]
			break
		}
	}
	delay := p.delay
	p.mu.Unlock()
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return nil, r.Context().Err()
		}
	}
	if cutNow {
		return nil, errCut{}
	}
	if reply != nil {
		return &http.Response{
			StatusCode: reply.status, Status: http.StatusText(reply.status), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(strings.NewReader(reply.body)),
			ContentLength: int64(len(reply.body)), Request: r,
		}, nil
	}
	res, err := http.DefaultTransport.RoundTrip(r)
	if err != nil || !cutAfter {
		return res, err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return nil, errCut{}
}

// Cut arms the proxy: the n-th request from now is cut (after Vault
// answered it, when after) and so is every later one.
func (p *FaultProxy) Cut(n int, after bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.armed, p.cutAt, p.after, p.seen, p.down, p.methods = true, n, after, 0, false, nil
}

// Heal forwards every request again, disarms the proxy and drops its
// answers. It returns how
// many requests were seen since Cut, and whether the cut happened.
func (p *FaultProxy) Heal() (seen int, cut bool, requests []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	seen, cut, requests = p.seen, p.down, p.methods
	p.armed, p.down, p.seen, p.methods, p.answers, p.delay = false, false, 0, nil, nil, 0
	return seen, cut, requests
}

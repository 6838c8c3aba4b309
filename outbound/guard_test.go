package outbound_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credgate/credgate/outbound"
	"github.com/credgate/credgate/outbound/outboundtest"
)

func mustGuard(t *testing.T, allow ...string) *outbound.Guard {
	t.Helper()
	g, err := outbound.New(outbound.Options{Allow: allow})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestNonPublicAddressesAreRefused(t *testing.T) {
	g := mustGuard(t)
	refused := map[string]string{
		"127.0.0.1:443":         "loopback",
		"127.255.255.254:80":    "loopback",
		"[::1]:443":             "loopback",
		"[::ffff:127.0.0.1]:80": "loopback",
		"10.1.2.3:443":          "private",
		"172.16.0.1:443":        "private",
		"192.168.1.1:443":       "private",
		"[fd00::1]:443":         "private",
		"169.254.169.254:80":    "link-local",
		"[fe80::1]:443":         "link-local",
		"0.0.0.0:443":           "unspecified",
		"[::]:443":              "unspecified",
		"100.64.0.1:443":        "carrier-grade NAT",
		"224.0.0.1:443":         "multicast",
		"255.255.255.255:443":   "broadcast",
		"240.0.0.1:443":         "reserved",
		"[64:ff9b::a01:203]:80": "NAT64",
		"0.1.2.3:443":           "this network",
		"[2002:7f00:1::1]:443":  "6to4",
		"[2001:0:4136::1]:443":  "Teredo",
	}
	for addr, kind := range refused {
		var re *outbound.RefusedError
		if err := g.Check(netip.MustParseAddrPort(addr)); !errors.As(err, &re) || !strings.Contains(re.Why, strings.Fields(kind)[0]) {
			t.Errorf("%s: %v; want refused as %s", addr, err, kind)
		}
	}
	for _, addr := range []string{"93.184.215.14:443", "[2606:4700::6810:85e5]:443", "8.8.8.8:53"} {
		if err := g.Check(netip.MustParseAddrPort(addr)); err != nil {
			t.Errorf("%s (public): %v", addr, err)
		}
	}
}

func TestAllowListOpensWhatItNames(t *testing.T) {
	g := mustGuard(t, "10.20.0.0/16", "192.168.1.5", "127.0.0.1:8443", "::1")
	for addr, ok := range map[string]bool{
		"10.20.9.9:443": true, "10.21.0.1:443": false,
		"192.168.1.5:1": true, "192.168.1.6:1": false,
		"127.0.0.1:8443": true, "127.0.0.1:8200": false,
		"[::1]:9": true, "[::ffff:10.20.0.1]:443": true,
	} {
		if err := g.Check(netip.MustParseAddrPort(addr)); (err == nil) != ok {
			t.Errorf("%s: %v; allowed %v", addr, err, ok)
		}
	}
	if _, err := outbound.New(outbound.Options{Allow: []string{"10.0.0.0/8", "not-an-address", "10.0.0.1:99999"}}); err == nil || !strings.Contains(err.Error(), "not-an-address") {
		t.Fatalf("bad entries: %v", err)
	}
}

// TestCheckURLSaysWhichRuleRefused: a literal address is named with its
// kind; a name is refused by rule, never with what it resolved to; a name
// that does not resolve is accepted with a warning.
func TestCheckURLSaysWhichRuleRefused(t *testing.T) {
	g := mustGuard(t)
	ctx := context.Background()
	for raw, want := range map[string]string{
		"https://127.0.0.1/token":                     "is 127.0.0.1, a loopback address",
		"https://localhost:8443/token":                "names a host whose address is not public",
		"https://169.254.169.254/latest/meta-data":    "link-local",
		"https://10.0.0.5/token":                      "private",
		"https://[::1]:9/token":                       "loopback",
		"https://[2002:7f00:1::1]/token":              "6to4",
		"https://8.8.8.8:99999/":                      "no usable port",
		"/relative":                                   "absolute",
		"https://[::ffff:169.254.169.254]/meta-data/": "link-local",
	} {
		warning, err := g.CheckURL(ctx, raw)
		if err == nil || !strings.Contains(err.Error(), want) || warning != "" {
			t.Errorf("%s: %q, %v; want it refused saying %q", raw, warning, err, want)
		}
		if err != nil && strings.Contains(raw, "localhost") && strings.Contains(err.Error(), "127.0.0.1") {
			t.Errorf("%s: %v tells how the name resolved", raw, err)
		}
	}
	if w, err := g.CheckURL(ctx, "https://8.8.8.8/token"); err != nil || w != "" {
		t.Fatalf("a public address: %q, %v", w, err)
	}
	// Seed 002's endpoint, on a machine that cannot resolve it.
	w, err := g.CheckURL(ctx, "https://instance.service-now.invalid/oauth_token.do")
	if err != nil || w != outbound.UnresolvedWarning {
		t.Fatalf("a name that does not resolve: %q, %v; want accepted with a warning", w, err)
	}
}

// TestAnUnresolvedNameFailsWhenUsed: accepted when written, the request
// fails at once and says the name does not resolve.
func TestAnUnresolvedNameFailsWhenUsed(t *testing.T) {
	u, _ := url.Parse("https://hooks.example.invalid/credgate")
	_, err := mustGuard(t).Client(5 * time.Second).Get(u.String())
	if got := outbound.Explain(u, err); got != "names a host that does not resolve" {
		t.Fatalf("%v explained as %q", err, got)
	}
}

// TestRequestsGoThroughTheProxy: with outbound.proxy, a request to a name
// credgate cannot resolve reaches its target through a real forward proxy
// (CONNECT, TLS end to end with the target); NO_PROXY's hosts are reached
// directly; and the guard still holds: a literal non-public target, or a
// name credgate resolves inward, is refused before the proxy is asked.
func TestRequestsGoThroughTheProxy(t *testing.T) {
	var hits atomic.Int64
	target, cas := outboundtest.TLSServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = w.Write([]byte("ok"))
	}), "idp.corp.test", "direct.corp.test")
	port := strconv.Itoa(target.Listener.Addr().(*net.TCPAddr).Port)
	proxy := outboundtest.Start(t, map[string]string{"idp.corp.test": "127.0.0.1", "direct.corp.test": "127.0.0.1"})
	g, err := outbound.New(outbound.Options{Proxy: proxy.URL, NoProxy: "direct.corp.test", RootCAs: cas})
	if err != nil {
		t.Fatal(err)
	}
	g = g.WithNames(map[string]string{"inward.corp.test": "10.9.8.7"}) // split-horizon DNS

	ctx := context.Background()
	if w, err := g.CheckURL(ctx, "https://idp.corp.test:"+port+"/token"); w != "" || err != nil {
		t.Fatalf("written with a proxy: %q, %v; want accepted without a warning (the proxy resolves it)", w, err)
	}
	res, err := g.Client(5 * time.Second).Get("https://idp.corp.test:" + port + "/token")
	if err != nil {
		t.Fatalf("through the proxy: %v", err)
	}
	res.Body.Close()
	if hits.Load() != 1 || !slices.Equal(proxy.Asked(), []string{"idp.corp.test:" + port}) {
		t.Fatalf("%d hits; the proxy was asked for %v", hits.Load(), proxy.Asked())
	}
	for raw, want := range map[string]string{
		"https://10.1.2.3:" + port + "/":         "is 10.1.2.3, a private address",
		"https://inward.corp.test:" + port + "/": "names a host whose address is not public",
		"https://127.0.0.1:" + port + "/":        "is 127.0.0.1, a loopback address",   // loopback is never proxied: dialled, refused
		"https://direct.corp.test:" + port + "/": "names a host that does not resolve", // NO_PROXY: credgate resolves it itself
	} {
		u, _ := url.Parse(raw)
		res, err := g.Client(5 * time.Second).Get(raw)
		if err == nil {
			res.Body.Close()
		}
		if got := outbound.Explain(u, err); got == "" || !strings.Contains(got, want) {
			t.Errorf("%s: %v explained as %q; want %q", raw, err, got, want)
		}
	}
	if n := len(proxy.Asked()); n != 1 || hits.Load() != 1 {
		t.Fatalf("refused targets reached the proxy (%v) or the server (%d hits)", proxy.Asked(), hits.Load())
	}
	for _, bad := range []outbound.Options{{Proxy: "socks5://127.0.0.1:1080"}, {Proxy: "http://proxy.corp.test"}, {NoProxy: "corp.test"}} {
		if _, err := outbound.New(bad); err == nil {
			t.Errorf("%+v: accepted", bad)
		}
	}
}

// TestClientConnectsOnlyWherePermitted: the check is made on the address
// dialled, so nothing reaches a refused listener, however the URL names it;
// and no redirect is followed.
func TestClientConnectsOnlyWherePermitted(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	t.Cleanup(srv.Close)
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	for _, u := range []string{srv.URL, "http://localhost:" + strconv.Itoa(port)} {
		res, err := mustGuard(t).Client(5 * time.Second).Get(u + "/token")
		var re *outbound.RefusedError
		if err == nil {
			res.Body.Close()
		}
		if !errors.As(err, &re) {
			t.Fatalf("%s: %v; want refused", u, err)
		}
	}
	if hits.Load() != 0 {
		t.Fatalf("%d requests reached the refused server", hits.Load())
	}
	// Allowed by address and port, it is reached; its redirect is not
	// followed.
	var redirected atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { redirected.Add(1) }))
	t.Cleanup(target.Close)
	bouncer := httptest.NewServer(http.RedirectHandler(target.URL+"/x", http.StatusFound))
	t.Cleanup(bouncer.Close)
	g := mustGuard(t, srv.Listener.Addr().String(), bouncer.Listener.Addr().String(), target.Listener.Addr().String())
	res, err := g.Client(5 * time.Second).Get(srv.URL + "/token")
	if err != nil || hits.Load() != 1 {
		t.Fatalf("allowed: %v, %d hits", err, hits.Load())
	}
	res.Body.Close()
	res, err = g.Client(5 * time.Second).Get(bouncer.URL)
	if err != nil || res.StatusCode != http.StatusFound || redirected.Load() != 0 {
		t.Fatalf("redirect: %v %v, %d followed", err, res, redirected.Load())
	}
	res.Body.Close()
}

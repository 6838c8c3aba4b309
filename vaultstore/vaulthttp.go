package vaultstore

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/valyala/fasthttp"
)

// vaultHTTP is what a read needs to ask Vault without the API client: its
// address, the headers the client sends on every request (namespace and
// any configured ones), its HTTP client (the same TLS settings) and, where
// it can stand in for that client, a fasthttp client for the same host.
//
// Every credential read is one GET to Vault, and net/http's client spends
// more CPU on it than anything of credgate's own: each request is handed
// to a connection's two goroutines and back (18 % of credgate's CPU under
// load, profiled). fasthttp's client makes the request in the caller's
// goroutine: 124 against 73 µs of CPU a GET to a dev Vault on a 2-core
// machine (8 at once). It stands in only for a plain http or https address
// reached without a proxy through the API client's own *http.Transport,
// with that transport's TLS settings (HTTP/1.1; Vault speaks it); anything
// else (a unix socket, a proxy, a wrapped transport) and every redirect
// goes through net/http as before. It does not watch a request's context,
// only its deadline: every Vault call has one (Options.Timeout).
type vaultHTTP struct {
	addr    string
	headers http.Header
	http    *http.Client
	fast    *fasthttp.HostClient // nil: net/http only
}

func newVaultHTTP(c *api.Client) vaultHTTP {
	h := c.Headers()
	if h == nil {
		h = http.Header{}
	}
	h.Set("X-Vault-Request", "true")
	if ns := c.Namespace(); ns != "" {
		h.Set("X-Vault-Namespace", ns)
	}
	cfg := c.CloneConfig()
	v := vaultHTTP{addr: strings.TrimRight(c.Address(), "/"), headers: h, http: cfg.HttpClient}
	v.fast = fastClient(cfg, v.addr)
	return v
}

// fastClient is a fasthttp client that does what cfg's HTTP client does
// for GETs of addr, or nil when it might not.
func fastClient(cfg *api.Config, addr string) *fasthttp.HostClient {
	tr, ok := cfg.HttpClient.Transport.(*http.Transport)
	u, err := url.Parse(addr)
	if !ok || err != nil || strings.HasPrefix(cfg.Address, "unix://") || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil
	}
	if tr.Proxy != nil {
		if p, err := tr.Proxy(&http.Request{Method: http.MethodGet, URL: u, Header: http.Header{}}); p != nil || err != nil {
			return nil
		}
	}
	host := u.Host
	if u.Port() == "" {
		host += map[string]string{"http": ":80", "https": ":443"}[u.Scheme]
	}
	fc := &fasthttp.HostClient{
		Addr:               host,
		IsTLS:              u.Scheme == "https",
		MaxConns:           1024,
		MaxConnWaitTimeout: time.Second,
		// Vault's headers as it sends them, and no User-Agent of fasthttp's.
		DisableHeaderNamesNormalizing: true,
		NoDefaultUserAgentHeader:      true,
	}
	if tr.TLSClientConfig != nil {
		fc.TLSConfig = tr.TLSClientConfig.Clone()
		// net/http offers h2 through the same settings once it has spoken
		// HTTP/2; fasthttp speaks HTTP/1.1 only and must not offer it.
		fc.TLSConfig.NextProtos = nil
	}
	return fc
}

// fetch GETs u as k's caller into buf: through the fasthttp client when
// there is one and u is on its host (direct), else through net/http. It
// answers the status and, for a redirect, where to.
func (k *session) fetch(ctx context.Context, u string, direct bool, buf *bytes.Buffer) (status int, location string, err error) {
	buf.Reset()
	fc := k.s.vault.fast
	if fc == nil || !direct {
		resp, err := k.do(ctx, u)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		if _, err := buf.ReadFrom(resp.Body); err != nil {
			return 0, "", err
		}
		return resp.StatusCode, resp.Header.Get("Location"), nil
	}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(u)
	for name, values := range k.s.vault.headers {
		for _, v := range values {
			req.Header.Add(name, v)
		}
	}
	req.Header.Set("X-Vault-Token", k.token)
	k.trace.add(req.Header.Set)
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(k.s.opts.Timeout)
	}
	if err := fc.DoDeadline(req, resp, deadline); err != nil {
		// As net/http's client says it: Vault could not be reached.
		return 0, "", &url.Error{Op: "Get", URL: u, Err: err}
	}
	buf.Write(resp.Body())
	return resp.StatusCode(), string(resp.Header.Peek("Location")), nil
}

// close lets go of the fasthttp client's idle connections.
func (v vaultHTTP) close() {
	if v.fast != nil {
		v.fast.CloseIdleConnections()
	}
}

package outbound

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/net/http/httpproxy"
)

// Guard decides which addresses credgate may send requests to on a
// tenant's behalf, and carries them through an egress proxy when one is
// configured. It is safe for concurrent use.
type Guard struct {
	prefixes  []netip.Prefix
	addrPorts []netip.AddrPort
	// lookup resolves a name (net.DefaultResolver's LookupNetIP).
	lookup func(ctx context.Context, host string) ([]netip.Addr, error)
	// proxyFor picks the proxy of a request (nil: none), with NO_PROXY's
	// rules; proxyAddr is the proxy's host:port as the transport dials it.
	proxyFor  func(*url.URL) (*url.URL, error)
	proxyAddr string
	rootCAs   *x509.CertPool
}

// Options configures a Guard.
type Options struct {
	// Allow lists what is reachable although not public: CIDR prefixes
	// (10.20.0.0/16), addresses (10.20.0.5, ::1) or address:port pairs
	// (127.0.0.1:8443, [::1]:8443).
	Allow []string
	// Proxy is an egress proxy (http://host:port or https://host:port)
	// that carries every request NoProxy does not exempt. The proxy
	// resolves the targets' names, so a name credgate cannot resolve
	// itself is no obstacle; a target whose name credgate can resolve must
	// still resolve to addresses the guard allows, and a literal address
	// must be allowed. The proxy's own host and port are reachable
	// whatever their address: they are configuration, not a tenant's
	// choice.
	Proxy string
	// NoProxy lists the hosts reached directly, in NO_PROXY's syntax:
	// names and domain suffixes (.corp.example), addresses, CIDR prefixes,
	// optional :port, or *. Loopback hosts are never proxied.
	NoProxy string
	// RootCAs, when set, are the certificate authorities outbound TLS
	// trusts instead of the system's (an internal CA, a TLS-inspecting
	// proxy).
	RootCAs *x509.CertPool
}

// New returns a Guard that refuses every non-public address but those
// o.Allow lists.
func New(o Options) (*Guard, error) {
	g := &Guard{rootCAs: o.RootCAs, lookup: func(ctx context.Context, host string) ([]netip.Addr, error) {
		return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	}}
	var bad []string
	for _, a := range o.Allow {
		a = strings.TrimSpace(a)
		if p, err := netip.ParsePrefix(a); err == nil {
			g.prefixes = append(g.prefixes, p.Masked())
		} else if ap, err := netip.ParseAddrPort(a); err == nil {
			g.addrPorts = append(g.addrPorts, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
		} else if ad, err := netip.ParseAddr(a); err == nil {
			ad = ad.Unmap()
			g.prefixes = append(g.prefixes, netip.PrefixFrom(ad, ad.BitLen()))
		} else {
			bad = append(bad, fmt.Sprintf("outbound.allow: %q is not a CIDR prefix, an address or address:port", a))
		}
	}
	if o.Proxy != "" {
		u, err := url.Parse(o.Proxy)
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https"):
			bad = append(bad, "outbound.proxy: must be an http:// or https:// URL with a host")
		case u.Port() == "":
			bad = append(bad, "outbound.proxy: must name its port (http://proxy.example:3128)")
		default:
			g.proxyAddr = u.Host
			g.proxyFor = (&httpproxy.Config{HTTPProxy: o.Proxy, HTTPSProxy: o.Proxy, NoProxy: o.NoProxy}).ProxyFunc()
		}
	} else if o.NoProxy != "" {
		bad = append(bad, "outbound.no_proxy: goes with outbound.proxy")
	}
	if len(bad) > 0 {
		return nil, errors.New(strings.Join(bad, "; "))
	}
	return g, nil
}

// RefusedError says why an address may not be reached. Its Error names
// the address, for operators' logs; what a client is told is Explain's,
// which never says what a name resolved to.
type RefusedError struct {
	Addr netip.AddrPort
	Why  string // "a loopback address"
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("outbound: %s is %s, which credgate calls only when outbound.allow lists it", e.Addr, e.Why)
}

// reserved are the non-public ranges netip.Addr's predicates do not name.
var reserved = []struct {
	prefix netip.Prefix
	why    string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "a \"this network\" address"},
	{netip.MustParsePrefix("100.64.0.0/10"), "a shared (carrier-grade NAT) address"},
	{netip.MustParsePrefix("192.0.0.0/24"), "an IETF protocol address"},
	{netip.MustParsePrefix("192.0.2.0/24"), "a documentation address"},
	{netip.MustParsePrefix("198.18.0.0/15"), "a benchmarking address"},
	{netip.MustParsePrefix("198.51.100.0/24"), "a documentation address"},
	{netip.MustParsePrefix("203.0.113.0/24"), "a documentation address"},
	{netip.MustParsePrefix("255.255.255.255/32"), "the broadcast address"},
	{netip.MustParsePrefix("240.0.0.0/4"), "a reserved address"},
	{netip.MustParsePrefix("::/96"), "an IPv4-compatible address"},
	{netip.MustParsePrefix("64:ff9b::/96"), "a NAT64 address"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "a NAT64 address"},
	{netip.MustParsePrefix("100::/64"), "a discard address"},
	{netip.MustParsePrefix("2001:db8::/32"), "a documentation address"},
	// Transition addresses carry an IPv4 address a relay reaches for us:
	// 2002:7f00:1:: is 127.0.0.1 behind a 6to4 relay.
	{netip.MustParsePrefix("2002::/16"), "a 6to4 transition address"},
	{netip.MustParsePrefix("2001::/32"), "a Teredo transition address"},
	{netip.MustParsePrefix("fec0::/10"), "a site-local address"},
}

// nonPublic says what kind of non-public address a is, or "".
func nonPublic(a netip.Addr) string {
	switch {
	case !a.IsValid():
		return "not an address"
	case a.IsLoopback():
		return "a loopback address"
	case a.IsUnspecified():
		return "an unspecified address"
	case a.IsLinkLocalUnicast():
		return "a link-local address (where cloud metadata services answer)"
	case a.IsPrivate():
		return "a private address"
	case a.IsMulticast(), a.IsLinkLocalMulticast(), a.IsInterfaceLocalMulticast():
		return "a multicast address"
	}
	for _, r := range reserved {
		if r.prefix.Contains(a) {
			return r.why
		}
	}
	return ""
}

// Check returns a *RefusedError unless credgate may connect to ap.
func (g *Guard) Check(ap netip.AddrPort) error {
	a := ap.Addr().Unmap().WithZone("")
	ap = netip.AddrPortFrom(a, ap.Port())
	why := nonPublic(a)
	if why == "" {
		return nil
	}
	for _, p := range g.prefixes {
		if p.Contains(a) {
			return nil
		}
	}
	for _, allowed := range g.addrPorts {
		if allowed == ap {
			return nil
		}
	}
	return &RefusedError{Addr: ap, Why: why}
}

// lookupTimeout bounds a name's resolution when a URL is checked.
const lookupTimeout = 2 * time.Second

// What a client is told when the guard stands in the way. Each sentence
// follows the field's name ("tokenEndpoint names a host ..."). A name's
// addresses are never repeated: that would tell a tenant how credgate's
// network resolves internal names.
const (
	refusedName = "names a host whose address is not public (loopback, private, link-local or reserved), which credgate calls only when outbound.allow lists it"
	unresolved  = "names a host that does not resolve"
	// UnresolvedWarning is CheckURL's warning for a name that does not
	// resolve now: the URL is kept, and calls fail until it does.
	UnresolvedWarning = unresolved + " from credgate now; it is kept, and calls to it fail until it resolves"
)

func refusedLiteral(re *RefusedError) string {
	return fmt.Sprintf("is %s, %s, which credgate calls only when outbound.allow lists it", re.Addr.Addr(), re.Why)
}

// target is a URL's host and the port a request to it uses.
func target(u *url.URL) (host string, port uint16, err error) {
	if u.Host == "" {
		return "", 0, errors.New("is not an absolute URL")
	}
	p := u.Port()
	if p == "" {
		p = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return "", 0, errors.New("has no usable port")
	}
	return u.Hostname(), uint16(n), nil
}

// checkTarget applies the guard to what a URL names: a literal address
// must be allowed; a name that resolves must resolve only to allowed
// addresses. A name that does not resolve passes, and resolves reports
// so: the request fails when it is made (or the proxy resolves it).
func (g *Guard) checkTarget(ctx context.Context, u *url.URL) (resolves bool, err error) {
	host, port, err := target(u)
	if err != nil {
		return false, err
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return true, g.Check(netip.AddrPortFrom(a, port))
	}
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	addrs, err := g.lookup(ctx, host)
	if err != nil || len(addrs) == 0 {
		return false, nil
	}
	for _, a := range addrs {
		if err := g.Check(netip.AddrPortFrom(a, port)); err != nil {
			return true, err
		}
	}
	return true, nil
}

// CheckURL checks, when a URL is written, that credgate may call it. The
// URL's form (https, no user information) is the record's own rule; here
// a literal address must be one the guard allows, and a name that
// resolves must resolve only to such addresses. A name that does not
// resolve is accepted, with a warning unless a proxy will resolve it: the
// write does not depend on DNS (air-gapped installs, split-horizon DNS),
// and the address actually dialled is checked again on every connection.
// The error's message follows the field's name and says which rule
// refused the URL, never what a name resolved to.
func (g *Guard) CheckURL(ctx context.Context, raw string) (warning string, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", errors.New("is not an absolute URL")
	}
	resolves, err := g.checkTarget(ctx, u)
	if err != nil {
		if msg := Explain(u, err); msg != "" {
			return "", errors.New(msg)
		}
		return "", err
	}
	if !resolves && !g.proxied(u) {
		return UnresolvedWarning, nil
	}
	return "", nil
}

// proxied reports whether requests to u go through the egress proxy.
func (g *Guard) proxied(u *url.URL) bool {
	if g.proxyFor == nil {
		return false
	}
	p, err := g.proxyFor(u)
	return err == nil && p != nil
}

// Explain is what a client is told when a request to u failed because of
// the guard or the name: a sentence to follow the field's name, or ""
// when err is some other failure.
func Explain(u *url.URL, err error) string {
	var re *RefusedError
	var de *net.DNSError
	switch {
	case errors.As(err, &re):
		if _, lerr := netip.ParseAddr(u.Hostname()); lerr == nil {
			return refusedLiteral(re)
		}
		return refusedName
	case errors.As(err, &de) && de.IsNotFound:
		return unresolved
	case errors.As(err, &de):
		return "names a host that could not be resolved now"
	}
	var pe *proxyError
	if errors.As(err, &pe) {
		return "could not be reached through the egress proxy"
	}
	return ""
}

// proxyError marks a failure to reach the egress proxy itself.
type proxyError struct{ err error }

func (e *proxyError) Error() string { return "outbound: the egress proxy: " + e.err.Error() }
func (e *proxyError) Unwrap() error { return e.err }

// Client returns the HTTP client for requests on a tenant's behalf: it
// connects only to addresses Check allows, checked on each address it
// dials; with a proxy, it checks each target's name before the request
// goes to the proxy (the proxy dials the address); it uses no proxy from
// the environment, only the configured one; it follows no redirect, so an
// allowed endpoint cannot bounce the request elsewhere; and it gives up
// after timeout.
func (g *Guard) Client(timeout time.Duration) *http.Client {
	dialer := &net.Dialer{
		Timeout:   min(timeout, 10*time.Second),
		KeepAlive: 30 * time.Second,
		Control: func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("outbound: dialing %q: %w", address, err)
			}
			return g.Check(ap)
		},
	}
	proxyDialer := &net.Dialer{Timeout: dialer.Timeout, KeepAlive: dialer.KeepAlive}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if g.proxyAddr != "" && addr == g.proxyAddr {
				c, err := proxyDialer.DialContext(ctx, network, addr)
				if err != nil {
					return nil, &proxyError{err}
				}
				return c, nil
			}
			return dialer.DialContext(ctx, network, addr)
		},
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: timeout,
	}
	if g.rootCAs != nil {
		tr.TLSClientConfig = &tls.Config{RootCAs: g.rootCAs, MinVersion: tls.VersionTLS12}
	}
	if g.proxyFor != nil {
		tr.Proxy = func(req *http.Request) (*url.URL, error) {
			p, err := g.proxyFor(req.URL)
			if err != nil || p == nil {
				return nil, err // direct: the dialer checks the address
			}
			if _, err := g.checkTarget(req.Context(), req.URL); err != nil {
				return nil, err
			}
			return p, nil
		}
	}
	return &http.Client{
		Timeout:       timeout,
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

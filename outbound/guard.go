package outbound

import (
	"context"
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
)

// Guard decides which addresses credgate may send requests to on a
// tenant's behalf. It is safe for concurrent use.
type Guard struct {
	prefixes  []netip.Prefix
	addrPorts []netip.AddrPort
	resolver  *net.Resolver
}

// New returns a Guard that refuses every non-public address but those
// allow lists: CIDR prefixes (10.20.0.0/16), addresses (10.20.0.5, ::1) or
// address:port pairs (127.0.0.1:8443, [::1]:8443).
func New(allow []string) (*Guard, error) {
	g := &Guard{resolver: net.DefaultResolver}
	var bad []string
	for _, a := range allow {
		a = strings.TrimSpace(a)
		if p, err := netip.ParsePrefix(a); err == nil {
			g.prefixes = append(g.prefixes, p.Masked())
		} else if ap, err := netip.ParseAddrPort(a); err == nil {
			g.addrPorts = append(g.addrPorts, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
		} else if ad, err := netip.ParseAddr(a); err == nil {
			ad = ad.Unmap()
			g.prefixes = append(g.prefixes, netip.PrefixFrom(ad, ad.BitLen()))
		} else {
			bad = append(bad, fmt.Sprintf("%q is not a CIDR prefix, an address or address:port", a))
		}
	}
	if len(bad) > 0 {
		return nil, errors.New("outbound.allow: " + strings.Join(bad, "; "))
	}
	return g, nil
}

// RefusedError says why an address may not be reached.
type RefusedError struct {
	Addr netip.AddrPort
	Why  string // "a loopback address"
}

func (e *RefusedError) Error() string { return "outbound: " + e.Reason() }

// Reason says it so that it can follow "resolves to": "10.0.0.5, a private
// address, which credgate calls only when outbound.allow lists it".
func (e *RefusedError) Reason() string {
	return fmt.Sprintf("%s, %s, which credgate calls only when outbound.allow lists it", e.Addr.Addr(), e.Why)
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

// CheckURL checks, when a URL is written, that credgate may call it: every
// address its host resolves to now must pass Check. The error's message
// follows the field's name ("tokenEndpoint resolves to 127.0.0.1, a
// loopback address, ..."): it says which rule refused the URL.
func (g *Guard) CheckURL(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return errors.New("is not an absolute URL")
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return errors.New("has no usable port")
	}
	host := u.Hostname()
	addrs := []netip.Addr{}
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = append(addrs, a)
	} else {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if addrs, err = g.resolver.LookupNetIP(ctx, "ip", host); err != nil || len(addrs) == 0 {
			return errors.New("names a host that does not resolve")
		}
	}
	for _, a := range addrs {
		var re *RefusedError
		if errors.As(g.Check(netip.AddrPortFrom(a, uint16(p))), &re) {
			return errors.New("resolves to " + re.Reason())
		}
	}
	return nil
}

// Client returns the HTTP client for requests on a tenant's behalf: it
// connects only to addresses Check allows, checked on each address it
// dials; it uses no proxy from the environment (the proxy's address would
// be checked instead of the target's); it follows no redirect, so an
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
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           dialer.DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          100,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: timeout,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

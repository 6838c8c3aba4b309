// Package outboundtest is an egress proxy for tests: a real forward proxy
// (github.com/elazarl/goproxy) on loopback that resolves names with a
// table of its own, as a corporate proxy resolves names credgate's host
// cannot. It records the targets it was asked for.
package outboundtest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/elazarl/goproxy"
)

// Proxy is a running egress proxy.
type Proxy struct {
	URL string // http://127.0.0.1:port

	hosts map[string]string
	mu    sync.Mutex
	asked []string // host:port of every target, in order
}

// Start starts a proxy for tb that reaches each name of hosts at the
// address it maps to (host -> ip); it stops when tb ends.
func Start(tb testing.TB, hosts map[string]string) *Proxy {
	tb.Helper()
	p := &Proxy{hosts: hosts}
	gp := goproxy.NewProxyHttpServer()
	var d net.Dialer
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		p.mu.Lock()
		p.asked = append(p.asked, addr)
		p.mu.Unlock()
		return d.DialContext(ctx, network, p.resolve(addr))
	}
	gp.ConnectDialWithReq = func(req *http.Request, network, addr string) (net.Conn, error) {
		return dial(req.Context(), network, addr)
	}
	gp.Tr = &http.Transport{DialContext: dial}
	srv := httptest.NewServer(gp)
	tb.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

// resolve maps addr's host through the table.
func (p *Proxy) resolve(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip, ok := p.hosts[strings.ToLower(host)]; ok {
		return net.JoinHostPort(ip, port)
	}
	return addr
}

// Asked returns the targets the proxy was asked for, host:port each.
func (p *Proxy) Asked() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.asked...)
}

// TLSServer starts an HTTPS server for tb with a certificate of its own
// for names and 127.0.0.1 (as a provider's server has one for its name,
// and the test reaches it on loopback), and returns it
// with a pool that trusts it (outbound.Options.RootCAs).
func TLSServer(tb testing.TB, h http.Handler, names ...string) (*httptest.Server, *x509.CertPool) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}}}
	srv.StartTLS()
	tb.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return srv, pool
}

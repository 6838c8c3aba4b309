package httpapi_test

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// countingListener accepts connections on loopback and counts them: the
// proof that nothing was sent to it.
type countingListener struct {
	ln    net.Listener
	conns atomic.Int64
}

func listenCounting(t *testing.T, network, addr string) *countingListener {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			cl.conns.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return cl
}

func (cl *countingListener) port() string { return strconv.Itoa(cl.ln.Addr().(*net.TCPAddr).Port) }

// TestTokenEndpointsCannotBeAimedInward: a tenant admin chooses a
// credential's tokenEndpoint and rotation makes credgate POST to it. With
// nothing allowed, endpoints on loopback, private and link-local addresses
// (the cloud metadata service) and names that resolve to them are refused
// when written; when such an endpoint is stored anyway (written while
// allowed, or its name re-pointed later), rotation refuses it at connect
// time and nothing reaches the listener; a redirect is never followed; and
// an endpoint the allow-list names works.
func TestTokenEndpointsCannotBeAimedInward(t *testing.T) {
	v4 := listenCounting(t, "tcp4", "127.0.0.1:0")
	closed := listenCounting(t, "tcp", "127.0.0.1:0")
	closed.ln.Close() // a closed port: refused, not probed
	strict := newAPI(t, apiOptions{outboundAllow: []string{}})
	tok, _ := adminWithService(t, strict, "idp")
	create := func(a *testAPI, endpoint string) reply {
		return a.do("POST", "/api/v1/credentials", tok, map[string]any{
			"integrationId": "idp", "credentialName": "oauth", "authType": "oauth2_bearer",
			"accessToken": "at", "refreshToken": secret("rt-" + randHex(6)), "tokenEndpoint": endpoint,
		})
	}
	written := []struct {
		endpoint, says string
	}{
		{"https://127.0.0.1:" + v4.port() + "/token", "127.0.0.1, a loopback address"},
		{"http://127.0.0.1:" + v4.port() + "/token", "127.0.0.1, a loopback address"},
		{"https://127.0.0.1:" + closed.port() + "/token", "127.0.0.1, a loopback address"},
		{"https://10.1.2.3/token", "10.1.2.3, a private address"},
		{"https://169.254.169.254/latest/meta-data/iam/security-credentials/", "169.254.169.254, a link-local address"},
		{"https://[::1]:" + v4.port() + "/token", "::1, a loopback address"},
		{"https://[::ffff:127.0.0.1]:" + v4.port() + "/token", "127.0.0.1, a loopback address"},
		{"https://localhost:" + v4.port() + "/token", "names a host whose address is not public"},
		{"https://0.0.0.0:" + v4.port() + "/token", "an unspecified address"},
	}
	for _, w := range written {
		e := wantEnvelopeError(t, create(strict, w.endpoint), 400, "VALIDATION_FAILED")
		if msg, _ := e["fields"].(map[string]any)["tokenEndpoint"].(string); !strings.Contains(msg, w.says) || !strings.Contains(msg, "outbound.allow") {
			t.Errorf("%s: %v; want it to say %q and how to allow it", w.endpoint, e, w.says)
		}
	}

	// Stored while allowed (another configuration, or the name pointed
	// elsewhere then), then rotated by a credgate that does not allow it.
	lenient := newAPI(t, apiOptions{outboundAllow: []string{"127.0.0.1/32", "::1", "10.0.0.0/8"}})
	for endpoint, says := range map[string]string{
		"http://127.0.0.1:" + v4.port() + "/token": "is 127.0.0.1, a loopback address",
		"http://localhost:" + v4.port() + "/token": "names a host whose address is not public",
		"https://10.1.2.3/token":                   "is 10.1.2.3, a private address",
	} {
		id := wantEnvelope(t, create(lenient, endpoint), 201)["id"].(string)
		start := time.Now()
		e := wantEnvelopeError(t, strict.do("POST", "/api/v1/credentials/"+id+"/rotate", tok, nil), 400, "VALIDATION_FAILED")
		if msg, _ := e["fields"].(map[string]any)["tokenEndpoint"].(string); !strings.Contains(msg, says) || !strings.Contains(msg, "outbound.allow") {
			t.Errorf("rotating toward %s: %v", endpoint, e)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("rotating toward %s took %s: refused before connecting, it should not wait", endpoint, took)
		}
		if got := wantEnvelope(t, strict.do("GET", "/api/v1/credentials/idp?credentialId="+id, tok, nil), 200); got["version"] != float64(1) {
			t.Errorf("a refused rotation wrote version %v", got["version"])
		}
	}
	if n := v4.conns.Load(); n != 0 {
		t.Fatalf("%d connections reached the loopback listener", n)
	}

	// An allowed endpoint that redirects inward: the redirect is not
	// followed, and its answer is only an OAuth2 error code.
	bouncer := httptest.NewServer(http.RedirectHandler("http://127.0.0.1:"+v4.port()+"/token", http.StatusFound))
	t.Cleanup(bouncer.Close)
	viaBouncer := newAPI(t, apiOptions{outboundAllow: []string{bouncer.Listener.Addr().String()}})
	id := wantEnvelope(t, create(viaBouncer, bouncer.URL+"/token"), 201)["id"].(string)
	e := wantEnvelopeError(t, viaBouncer.do("POST", "/api/v1/credentials/"+id+"/rotate", tok, nil), 502, "UPSTREAM_ERROR")
	if e["upstreamError"] != "invalid_response" || strings.Contains(e["details"].(string), "302") {
		t.Fatalf("a redirecting endpoint: %v", e)
	}
	if n := v4.conns.Load(); n != 0 {
		t.Fatalf("the redirect was followed: %d connections", n)
	}

	// The allow-list opens exactly the internal endpoint it names.
	ts := startTokenServer(t)
	first := ts.login(t)
	tsAddr := strings.TrimPrefix(ts.URL, "http://")
	allowed := newAPI(t, apiOptions{outboundAllow: []string{tsAddr}})
	id = allowed.mustCreateCredential(tok, map[string]any{
		"integrationId": "idp", "credentialName": "internal idp", "authType": "oauth2_bearer",
		"accessToken": first.AccessToken, "refreshToken": first.RefreshToken,
		"clientId": ts.ClientID, "clientSecret": ts.ClientSecret, "tokenEndpoint": ts.URL + "/token",
	})["id"].(string)
	if got := wantEnvelope(t, allowed.do("POST", "/api/v1/credentials/"+id+"/rotate", tok, nil), 200); got["version"] != float64(2) {
		t.Fatalf("rotation through the allowed endpoint: %v", got)
	}
	wantEnvelopeError(t, create(allowed, "http://127.0.0.1:"+v4.port()+"/token"), 400, "VALIDATION_FAILED")
}

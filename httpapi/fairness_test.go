package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/bootstrap"
	"github.com/credgate/credgate/vaultstore/vaulttest"
)

// hanging is an endpoint that takes requests and never answers them (until
// its client gives up or the test ends); it counts those it holds.
type hanging struct {
	url          string
	held, served atomic.Int32
}

func startHanging(t *testing.T) *hanging {
	h := &hanging{}
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The body is read first: until it is, net/http does not watch
		// the connection, and a request its client gave up on would be
		// held (and counted) until the test ends.
		_, _ = io.Copy(io.Discard, r.Body)
		h.served.Add(1)
		h.held.Add(1)
		defer h.held.Add(-1)
		select {
		case <-r.Context().Done():
		case <-stop:
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(stop) }) // first: the handlers return
	h.url = srv.URL
	return h
}

// TestOneTenantsHangingEndpointsDelayNoOtherTenant (issue 20, item 3): a
// tenant whose webhook receiver and token endpoint never answer, with 30
// events and 3 due refreshes waiting on them, holds only its own share of
// the workers. Another tenant's webhook arrives and its due refresh happens
// in their normal time (measured first, alone) + 10 % or + 1 s.
func TestOneTenantsHangingEndpointsDelayNoOtherTenant(t *testing.T) {
	var c clock
	own := vaulttest.StartOwned(t)
	res, err := bootstrap.Bootstrap(context.Background(), own.Client(t), bootstrap.Options{IssueToken: true})
	if err != nil {
		t.Fatal(err)
	}
	a := newAPI(t, apiOptions{vault: own, ownToken: res.Token, monitor: c.setup()})

	quick := tenant(t)
	qtok := token(t, "alice", quick, "integration_admin")
	rec := startReceiver(t, 0)
	rec.subscribe(a, qtok, credgate.EventCreated, credgate.EventRefreshed)
	a.mustCreate(qtok, map[string]any{"id": "hubspot", "name": "HubSpot"})
	ts := startTokenServer(t)

	// measure creates a due autoRefresh credential of the quick tenant and
	// returns how long its credential.created and credential.refreshed
	// took to arrive.
	n := 0
	measure := func() (created, refreshed time.Duration) {
		t.Helper()
		n++
		first := ts.login(t)
		start := time.Now()
		id := a.mustCreateCredential(qtok, map[string]any{
			"integrationId": "hubspot", "credentialName": fmt.Sprint("sync-", n), "authType": "oauth2_bearer",
			"accessToken": first.AccessToken, "refreshToken": first.RefreshToken, "clientId": ts.ClientID, "clientSecret": ts.ClientSecret,
			"tokenEndpoint": ts.URL + "/token", "autoRefresh": true, "refreshLeadTime": "10m",
			"expiresAt": time.Now().Add(4 * time.Minute).UTC().Format(time.RFC3339),
		})["id"].(string)
		arrived := func(typ string) bool {
			for _, d := range rec.events(typ) {
				if d.event.Data.CredentialID == id {
					return true
				}
			}
			return false
		}
		for created == 0 || refreshed == 0 {
			if time.Since(start) > 60*time.Second {
				t.Fatalf("after %s: created %v, refreshed %v", time.Since(start), created, refreshed)
			}
			if created == 0 && arrived(credgate.EventCreated) {
				created = time.Since(start)
			}
			if refreshed == 0 && arrived(credgate.EventRefreshed) {
				refreshed = time.Since(start)
			}
			time.Sleep(10 * time.Millisecond)
		}
		return created, refreshed
	}
	var normalCreated, normalRefreshed time.Duration
	for range 3 {
		cr, rf := measure()
		normalCreated, normalRefreshed = max(normalCreated, cr), max(normalRefreshed, rf)
	}

	// The other tenant: its receiver and its token endpoint hang.
	slow := tenant(t)
	stok := token(t, "bob", slow, "integration_admin")
	hook, idp := startHanging(t), startHanging(t)
	r := a.do("POST", "/api/v1/webhooks", stok, map[string]any{"url": hook.url + "/hooks", "eventTypes": []string{credgate.EventCreated, credgate.EventRefreshed, credgate.EventRefreshFailed}})
	if r.Status != 201 {
		t.Fatalf("subscribe: %d %s", r.Status, r.Raw)
	}
	a.mustCreate(stok, map[string]any{"id": "crm", "name": "CRM"})
	for i := range 30 {
		body := map[string]any{"integrationId": "crm", "credentialName": fmt.Sprint("key-", i), "authType": "api_key", "apiKey": secret("k_" + randHex(8))}
		if i < 3 {
			body = map[string]any{"integrationId": "crm", "credentialName": fmt.Sprint("oauth-", i), "authType": "oauth2_bearer",
				"accessToken": secret("at_" + randHex(8)), "refreshToken": secret("rt_" + randHex(8)), "clientId": "c", "clientSecret": secret("s_" + randHex(8)),
				"tokenEndpoint": idp.url + "/token", "autoRefresh": true, "refreshLeadTime": "10m",
				"expiresAt": time.Now().Add(4 * time.Minute).UTC().Format(time.RFC3339)}
		}
		a.mustCreateCredential(stok, body)
	}
	eventually(t, 20*time.Second, "the hanging tenant's receiver and token endpoint holding requests", func() bool {
		return hook.held.Load() >= 2 && idp.held.Load() >= 2
	})

	var created, refreshed time.Duration
	for range 3 {
		cr, rf := measure()
		created, refreshed = max(created, cr), max(refreshed, rf)
	}
	t.Logf("alone: created delivered within %s, refreshed within %s; beside a hanging tenant (receiver holding %d, token endpoint %d): %s and %s",
		normalCreated.Round(time.Millisecond), normalRefreshed.Round(time.Millisecond), hook.held.Load(), idp.held.Load(), created.Round(time.Millisecond), refreshed.Round(time.Millisecond))
	allowed := func(normal time.Duration) time.Duration { return max(normal*11/10, normal+time.Second) }
	if created > allowed(normalCreated) || refreshed > allowed(normalRefreshed) {
		t.Fatalf("beside a hanging tenant: created %s (alone %s), refreshed %s (alone %s)", created, normalCreated, refreshed, normalRefreshed)
	}
	// Its share: 2 of each at once. (A request whose client gave up is
	// counted until the server notices the closed connection, so the
	// fewest held over a short while is what runs.)
	hooks, refreshes := hook.held.Load(), idp.held.Load()
	for range 10 {
		hooks, refreshes = min(hooks, hook.held.Load()), min(refreshes, idp.held.Load())
		time.Sleep(50 * time.Millisecond)
	}
	if hooks > 2 || refreshes > 2 {
		t.Fatalf("the hanging tenant holds %d deliveries and %d refreshes at once; want its share, 2", hooks, refreshes)
	}
	rec.check()
}

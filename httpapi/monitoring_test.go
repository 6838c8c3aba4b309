package httpapi_test

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"go.uber.org/zap"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/bootstrap"
	"github.com/credgate/credgate/monitor"
	"github.com/credgate/credgate/outbound"
	"github.com/credgate/credgate/rotation"
	"github.com/credgate/credgate/tokenrefresh"
	"github.com/credgate/credgate/vaultstore/vaulttest"
	"github.com/credgate/credgate/webhook"
)

// startMonitoring runs the instance's webhook dispatcher and monitor, wired
// as credgate serve wires them, with short timings; they stop with the test.
func (a *testAPI) startMonitoring(guard *outbound.Guard, log *zap.Logger, o *monitorSetup) *webhook.Dispatcher {
	holder := "replica-" + randHex(4)
	d, err := webhook.New(webhook.Options{
		Store: a.store, Client: guard.Client(3 * time.Second), Logger: log, Holder: holder,
		Timeout: 3 * time.Second, Backoff: 300 * time.Millisecond, MaxBackoff: time.Second, MaxAttempts: o.maxAttempts, Observe: a.metrics.WebhookDelivery,
		DisableAfter: o.disableAfter, OnDisabled: a.metrics.WebhookDisabled,
		// Longer than any change a test makes takes (a request: 10 s at
		// most; the tests' are far quicker), so that the sweep never
		// judges a change that is still being made.
		PendingGrace: 3 * time.Second,
	})
	if err != nil {
		a.t.Fatal(err)
	}
	a.rotations, err = rotation.New(rotation.Options{
		Store: a.store, Events: d, Client: guard.Client, Logger: log, Holder: holder, Now: o.now,
		Retry:       credgate.RetryPolicy{Backoff: cmp.Or(o.rotationBackoff, 200*time.Millisecond), MaxAttempts: o.rotationAttempts},
		LeaseMargin: time.Second, OnStep: a.metrics.RotationStep,
	})
	if err != nil {
		a.t.Fatal(err)
	}
	mon, err := monitor.New(monitor.Options{
		Rotations: a.rotations, RotationOverdue: func(string) time.Duration { return o.rotationOverdue },
		Store: a.store, Events: d, Sweep: d, Grant: tokenrefresh.Grant(guard.Client(tokenrefresh.Timeout)), Logger: log,
		Holder: holder, Interval: 300 * time.Millisecond, LeaseTTL: 3 * time.Second, Tick: 100 * time.Millisecond,
		SweepEvery: 500 * time.Millisecond, RefreshBackoff: 200 * time.Millisecond, Now: o.now, OnRefresh: a.metrics.CredentialRefresh, OnLost: a.metrics.MonitorLost,
		OnPass: func(p monitor.Pass) { a.metrics.MonitorPass(p.Inventory, p.Credentials, p.Took) },
	})
	if err != nil {
		a.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { d.Run(ctx) })
	wg.Go(func() { a.rotations.Run(ctx) })
	if !o.noMonitor {
		wg.Go(func() { mon.Run(ctx) })
	}
	a.holder = holder
	a.stop = func() { cancel(); wg.Wait() }
	a.t.Cleanup(a.stop)
	return d
}

// clock is a monitor clock a test moves forward.
type clock struct{ ahead atomic.Int64 }

func (c *clock) now() time.Time          { return time.Now().Add(time.Duration(c.ahead.Load())) }
func (c *clock) advance(d time.Duration) { c.ahead.Add(int64(d)) }
func (c *clock) setup() *monitorSetup    { return &monitorSetup{now: c.now} }

// replicas starts a Vault of the test's own (the monitor scans every
// tenant of its Vault) and two credgate instances on it, each with its own
// monitor and dispatcher.
func replicas(t *testing.T, c *clock, tune ...func(*monitorSetup)) (a, b *testAPI) {
	t.Helper()
	setup := func() *monitorSetup {
		m := c.setup()
		for _, f := range tune {
			f(m)
		}
		return m
	}
	own := vaulttest.StartOwned(t)
	res, err := bootstrap.Bootstrap(context.Background(), own.Client(t), bootstrap.Options{IssueToken: true})
	if err != nil {
		t.Fatal(err)
	}
	a = newAPI(t, apiOptions{vault: own, ownToken: res.Token, monitor: setup()})
	b = newAPI(t, apiOptions{vault: own, ownToken: res.Token, monitor: setup()})
	a.root, b.root = own.Client(t), own.Client(t)
	return a, b
}

// receiver is a webhook receiver that checks every request's signature
// with the Standard Webhooks library (not credgate's code) and answers 500
// (or failWith) to the first failFirst requests.
type receiver struct {
	t         *testing.T
	url       string
	failFirst int
	failWith  int

	mu       sync.Mutex
	verifier *standardwebhooks.Webhook
	calls    int
	bad      []string // why a request failed verification
	got      []delivered
}

type delivered struct {
	id    string
	raw   string
	event credgate.Event
}

func startReceiver(t *testing.T, failFirst int) *receiver {
	r := &receiver{t: t, failFirst: failFirst}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.calls++
		if r.verifier == nil {
			r.bad = append(r.bad, "a request came before the subscription existed")
			w.WriteHeader(500)
			return
		}
		if err := r.verifier.Verify(body, req.Header); err != nil {
			r.bad = append(r.bad, err.Error())
			w.WriteHeader(400)
			return
		}
		if r.calls <= r.failFirst {
			w.WriteHeader(cmp.Or(r.failWith, 500))
			return
		}
		var e credgate.Event
		if err := json.Unmarshal(body, &e); err != nil {
			r.bad = append(r.bad, "body: "+err.Error())
		}
		if err := s.spec.event(body); err != nil {
			r.bad = append(r.bad, "the event does not match the document's WebhookEvent: "+err.Error())
		}
		r.got = append(r.got, delivered{id: req.Header.Get("webhook-id"), raw: string(body), event: e})
		w.WriteHeader(204)
	}))
	t.Cleanup(srv.Close)
	r.url = srv.URL + "/hooks/credgate"
	return r
}

// subscribe creates a subscription to r through a and keeps its secret.
func (r *receiver) subscribe(a *testAPI, tok string, types ...string) string {
	r.t.Helper()
	res := a.do("POST", "/api/v1/webhooks", tok, map[string]any{"url": r.url, "eventTypes": types})
	if res.Status != 201 {
		r.t.Fatalf("subscribe: %d %s", res.Status, res.Raw)
	}
	data := res.Body["data"].(map[string]any)
	sec, _ := data["secret"].(string)
	if !strings.HasPrefix(sec, "whsec_") {
		r.t.Fatalf("the subscription's answer carries no signing secret: %s", res.Raw)
	}
	secret(sec)
	v, err := standardwebhooks.NewWebhook(sec)
	if err != nil {
		r.t.Fatal(err)
	}
	r.mu.Lock()
	r.verifier = v
	r.mu.Unlock()
	// The secret is shown once: a read of the subscription has none.
	id := data["id"].(string)
	if again := a.do("GET", "/api/v1/webhooks/"+id, tok, nil); again.Status != 200 || strings.Contains(string(again.Raw), sec) {
		r.t.Fatalf("GET webhook: %d, shows the secret: %v", again.Status, strings.Contains(string(again.Raw), sec))
	}
	return id
}

// events returns what r received of type typ, verified.
func (r *receiver) events(typ string) []delivered {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []delivered
	for _, d := range r.got {
		if d.event.Type == typ {
			out = append(out, d)
		}
	}
	return out
}

func (r *receiver) check() {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.bad) > 0 {
		r.t.Fatalf("deliveries failed verification: %v", r.bad)
	}
}

// eventually polls cond every 50 ms for up to d.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("not within %s: %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestExpiringNoticeOnceAcrossReplicas(t *testing.T) {
	var c clock
	a, b := replicas(t, &c)
	ten := tenant(t)
	tok := token(t, "alice", ten, "integration_admin")
	rec := startReceiver(t, 0)
	rec.subscribe(b, tok, credgate.EventExpiring, credgate.EventExpired)
	a.mustCreate(tok, map[string]any{"id": "stripe", "name": "Stripe"})
	exp := time.Now().Add(8 * 24 * time.Hour).UTC().Truncate(time.Second)
	credID := a.mustCreateCredential(tok, map[string]any{
		"integrationId": "stripe", "credentialName": "live", "authType": "api_key",
		"apiKey": secret("sk_live_" + randHex(8)), "expiresAt": exp.Format(time.RFC3339),
	})["id"].(string)

	// Eight days out: the 30-day notice.
	eventually(t, 15*time.Second, "the 30-day notice", func() bool { return len(rec.events(credgate.EventExpiring)) == 1 })
	first := rec.events(credgate.EventExpiring)[0].event
	if first.Data.ThresholdDays != 30 || first.Data.CredentialID != credID || first.Data.IntegrationID != "stripe" || first.Data.Tenant != ten || first.Data.Actor.Subject != credgate.SystemSubject {
		t.Fatalf("30-day notice: %+v", first)
	}

	// A day later the credential crosses 7 days: one notice, from one of
	// the two replicas, however many passes both make.
	c.advance(25 * time.Hour)
	eventually(t, 15*time.Second, "the 7-day notice", func() bool { return len(rec.events(credgate.EventExpiring)) == 2 })
	time.Sleep(2 * time.Second) // several more passes of both monitors
	got := rec.events(credgate.EventExpiring)
	if len(got) != 2 || got[1].event.Data.ThresholdDays != 7 || got[1].id == got[0].id {
		t.Fatalf("want one 30-day and one 7-day notice, got %d: %v", len(got), got)
	}
	if !got[1].event.Data.ExpiresAt.Equal(exp) {
		t.Fatalf("7-day notice names expiry %v, want %v", got[1].event.Data.ExpiresAt, exp)
	}
	// Past expiry: credential.expired, once.
	c.advance(7 * 24 * time.Hour)
	eventually(t, 15*time.Second, "the expired notice", func() bool { return len(rec.events(credgate.EventExpired)) == 1 })
	time.Sleep(time.Second)
	if n := len(rec.events(credgate.EventExpired)); n != 1 {
		t.Fatalf("%d expired notices", n)
	}
	rec.check()

	// The leader's metrics count the tenant's credential as expired.
	eventually(t, 10*time.Second, "the inventory metric", func() bool {
		for _, x := range []*testAPI{a, b} {
			if strings.Contains(string(x.do("GET", "/metrics", "", nil).Raw), `credgate_credentials_expiry{bucket="expired",tenant="other"} 1`) {
				return true
			}
		}
		return false
	})
}

func TestWebhookRetriedUntilDeliveredAndLogged(t *testing.T) {
	var c clock
	a, b := replicas(t, &c)
	ten := tenant(t)
	admin := token(t, "alice", ten, "integration_admin")
	viewer := token(t, "vera", ten, "integration_viewer")
	rec := startReceiver(t, 2) // fails twice, then takes it
	hook := rec.subscribe(a, admin, credgate.EventCreated, credgate.EventAccessDenied)
	a.mustCreate(admin, map[string]any{"id": "zendesk", "name": "Zendesk"})
	key := secret("zd_" + randHex(12))
	credID := b.mustCreateCredential(admin, map[string]any{
		"integrationId": "zendesk", "credentialName": "agent", "authType": "api_key", "apiKey": key,
	}, "X-Request-Id", "req-create-1")["id"].(string)
	eventually(t, 20*time.Second, "credential.created delivered", func() bool { return len(rec.events(credgate.EventCreated)) == 1 })
	time.Sleep(time.Second)
	rec.check()
	got := rec.events(credgate.EventCreated)
	if len(got) != 1 {
		t.Fatalf("%d credential.created deliveries", len(got))
	}
	e := got[0].event
	if e.Data.Tenant != ten || e.Data.IntegrationID != "zendesk" || e.Data.CredentialID != credID || e.Data.RequestID != "req-create-1" ||
		e.Data.Actor.Subject == "" || !strings.HasPrefix(e.Data.Actor.Email, "alice@") || got[0].id != e.ID {
		t.Fatalf("event: %+v (webhook-id %s)", e, got[0].id)
	}
	if strings.Contains(got[0].raw, key) {
		t.Fatal("the event carries the credential's value")
	}
	// The delivery log: two failed attempts with their next retry, then
	// the delivery.
	var log []any
	eventually(t, 5*time.Second, "three attempts in the delivery log", func() bool {
		r := a.do("GET", "/api/v1/webhooks/"+hook+"/deliveries", admin, nil)
		log, _ = r.Body["data"].([]any)
		return r.Status == 200 && len(log) == 3
	})
	for i, want := range []string{"delivered", "retrying", "retrying"} { // newest first
		d := log[i].(map[string]any)
		if d["status"] != want || d["eventId"] != e.ID || d["eventType"] != credgate.EventCreated {
			t.Fatalf("delivery %d: %v", i, d)
		}
		if _, ok := d["nextRetryAt"]; ok != (want == "retrying") {
			t.Fatalf("delivery %d: nextRetryAt %v", i, d)
		}
	}

	// A viewer refused the values is an event too.
	if r := a.do("GET", "/api/v1/credentials/zendesk?credentialId="+credID, viewer, nil); r.Status != 403 {
		t.Fatalf("viewer read: %d", r.Status)
	}
	eventually(t, 20*time.Second, "credential.access_denied delivered", func() bool { return len(rec.events(credgate.EventAccessDenied)) == 1 })
	d := rec.events(credgate.EventAccessDenied)[0].event
	if d.Data.CredentialID != credID || !strings.HasPrefix(d.Data.Actor.Email, "vera@") {
		t.Fatalf("access_denied: %+v", d)
	}
	// A viewer may not manage webhooks.
	if r := a.do("GET", "/api/v1/webhooks", viewer, nil); r.Status != 403 {
		t.Fatalf("viewer lists webhooks: %d", r.Status)
	}
}

func TestAutoRefreshOnceAcrossReplicas(t *testing.T) {
	var c clock
	a, b := replicas(t, &c)
	ten := tenant(t)
	tok := token(t, "alice", ten, "integration_admin")
	ts := startTokenServer(t)
	first := ts.login(t)
	rec := startReceiver(t, 0)
	rec.subscribe(a, tok, credgate.EventRefreshed, credgate.EventRefreshFailed)
	a.mustCreate(tok, map[string]any{"id": "hubspot", "name": "HubSpot"})
	credID := b.mustCreateCredential(tok, map[string]any{
		"integrationId": "hubspot", "credentialName": "sync", "authType": "oauth2_bearer",
		"accessToken": first.AccessToken, "refreshToken": first.RefreshToken, "clientId": ts.ClientID, "clientSecret": ts.ClientSecret,
		"tokenEndpoint": ts.URL + "/token", "autoRefresh": true, "refreshLeadTime": "10m",
		"expiresAt": time.Now().Add(4 * time.Minute).UTC().Format(time.RFC3339),
	})["id"].(string)
	eventually(t, 20*time.Second, "credential.refreshed", func() bool { return len(rec.events(credgate.EventRefreshed)) == 1 })
	time.Sleep(2 * time.Second) // more passes of both monitors
	grants := ts.grantCounts()
	if len(grants) != 1 || grants[first.RefreshToken] != 1 {
		t.Fatalf("token server saw grants %v; want one, for the first refresh token", len(grants))
	}
	if n := len(rec.events(credgate.EventRefreshed)); n != 1 {
		t.Fatalf("%d refreshed events", n)
	}
	got := a.do("GET", "/api/v1/credentials/hubspot?credentialId="+credID, tok, nil)
	data := got.Body["data"].(map[string]any)
	at, _ := data["accessToken"].(string)
	secret(at)
	if got.Status != 200 || at == first.AccessToken || !ts.accepts(t, at) || data["version"].(float64) != 2 {
		t.Fatalf("after the refresh: %d version %v, new token accepted %v", got.Status, data["version"], ts.accepts(t, at))
	}
	rec.check()
}

func TestFailingAutoRefreshIsMarked(t *testing.T) {
	var c clock
	a, _ := replicas(t, &c)
	ten := tenant(t)
	tok := token(t, "alice", ten, "integration_admin")
	ts := startTokenServer(t)
	first := ts.login(t)
	ts.Refuse(true)
	rec := startReceiver(t, 0)
	rec.subscribe(a, tok, credgate.EventRefreshFailed)
	a.mustCreate(tok, map[string]any{"id": "hubspot", "name": "HubSpot"})
	a.mustCreateCredential(tok, map[string]any{
		"integrationId": "hubspot", "credentialName": "sync", "authType": "oauth2_bearer",
		"accessToken": first.AccessToken, "refreshToken": first.RefreshToken, "clientId": ts.ClientID, "clientSecret": ts.ClientSecret,
		"tokenEndpoint": ts.URL + "/token", "autoRefresh": true,
		"expiresAt": time.Now().Add(2 * time.Minute).UTC().Format(time.RFC3339),
	})
	eventually(t, 20*time.Second, "two refresh_failed events", func() bool { return len(rec.events(credgate.EventRefreshFailed)) >= 2 })
	e := rec.events(credgate.EventRefreshFailed)[1].event
	if e.Data.Failures != 2 || e.Data.Reason != "UPSTREAM_ERROR: invalid_grant" {
		t.Fatalf("second refresh_failed: %+v", e.Data)
	}
	// A client sees it on the credential.
	r := a.do("GET", "/api/v1/credentials?integrationId=hubspot", tok, nil)
	list := r.Body["data"].([]any)
	st, _ := list[0].(map[string]any)["refresh"].(map[string]any)
	if st == nil || st["failures"].(float64) < 2 || st["lastError"] != "UPSTREAM_ERROR: invalid_grant" || st["nextAttemptAt"] == nil {
		t.Fatalf("the credential does not show its failing refresh: %s", r.Raw)
	}
	rec.check()
}

func TestRevokeAtRevokesAndNotifies(t *testing.T) {
	var c clock
	a, b := replicas(t, &c)
	ten := tenant(t)
	tok := token(t, "alice", ten, "integration_admin")
	rec := startReceiver(t, 0)
	rec.subscribe(a, tok, credgate.EventRevoked)
	a.mustCreate(tok, map[string]any{"id": "legacy", "name": "Legacy API"})
	credID := a.mustCreateCredential(tok, map[string]any{
		"integrationId": "legacy", "credentialName": "old key", "authType": "api_key", "apiKey": secret("old_" + randHex(8)),
		"revokeAt": time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
	})["id"].(string)
	if r := b.do("GET", "/api/v1/credentials/legacy?credentialId="+credID, tok, nil); r.Status != 200 {
		t.Fatalf("before revokeAt: %d", r.Status)
	}
	c.advance(61 * time.Minute) // the monitor's clock passes revokeAt
	eventually(t, 15*time.Second, "credential.revoked", func() bool { return len(rec.events(credgate.EventRevoked)) == 1 })
	e := rec.events(credgate.EventRevoked)[0].event
	if e.Data.Reason != "revokeAt" || e.Data.CredentialID != credID || e.Data.Actor.Subject != credgate.SystemSubject {
		t.Fatalf("revoked: %+v", e.Data)
	}
	r := b.do("GET", "/api/v1/credentials?integrationId=legacy", tok, nil)
	if st := r.Body["data"].([]any)[0].(map[string]any)["status"]; st != "revoked" {
		t.Fatalf("stored status %v", st)
	}
	if r := b.do("GET", "/api/v1/credentials/legacy?credentialId="+credID, tok, nil); r.Status != 404 {
		t.Fatalf("a revoked credential's values: %d", r.Status)
	}
	rec.check()
}

func TestWebhookReceiverMustBePublic(t *testing.T) {
	a := newAPI(t, apiOptions{outboundAllow: []string{}})
	tok := token(t, "alice", tenant(t), "integration_admin")
	for _, url := range []string{"http://127.0.0.1:9/hook", "https://10.1.2.3/hook", "https://[::1]/hook", "https://localhost/hook", "http://example.com/hook", "ftp://example.com/x"} {
		r := a.do("POST", "/api/v1/webhooks", tok, map[string]any{"url": url, "eventTypes": []string{credgate.EventCreated}})
		fields, _ := r.Body["error"].(map[string]any)["fields"].(map[string]any)
		if r.Status != 400 || fields["url"] == nil {
			t.Errorf("%s: %d %s", url, r.Status, r.Raw)
		}
	}
	if r := a.do("POST", "/api/v1/webhooks", tok, map[string]any{"url": "https://hooks.example.com/x", "eventTypes": []string{"credential.nope"}}); r.Status != 400 {
		t.Errorf("unknown event type: %d", r.Status)
	}
	if r := a.do("GET", "/api/v1/webhooks", tok, nil); r.Status != 200 || len(r.Body["data"].([]any)) != 0 {
		t.Errorf("a refused subscription was kept: %s", r.Raw)
	}
}

func TestRotationKeepsThePreviousValuesUntilPreviousRevokeAt(t *testing.T) {
	var c clock
	a, b := replicas(t, &c)
	ten := tenant(t)
	admin := token(t, "alice", ten, "integration_admin")
	reader := token(t, "rita", ten, "credential_reader")
	rec := startReceiver(t, 0)
	rec.subscribe(a, admin, credgate.EventRevoked, credgate.EventRotated)
	a.mustCreate(admin, map[string]any{"id": "sendgrid", "name": "SendGrid"})
	oldKey, newKey := secret("SG.old_"+randHex(8)), secret("SG.new_"+randHex(8))
	id := a.mustCreateCredential(admin, map[string]any{"integrationId": "sendgrid", "credentialName": "mail", "authType": "api_key", "apiKey": oldKey})["id"].(string)
	until := time.Now().Add(3 * time.Second).UTC().Truncate(time.Second).Add(time.Second)
	r := b.do("POST", "/api/v1/credentials/"+id+"/rotate", admin, map[string]any{"apiKey": newKey, "previousRevokeAt": until.Format(time.RFC3339)})
	data, _ := r.Body["data"].(map[string]any)
	if r.Status != 200 || data["previousVersion"] != float64(1) || data["previousRevokeAt"] != until.Format(time.RFC3339) {
		t.Fatalf("rotate: %d %s", r.Status, r.Raw)
	}
	value := func(tok, query string) (int, string) {
		r := a.do("GET", "/api/v1/credentials/sendgrid?credentialId="+id+query, tok, nil)
		d, _ := r.Body["data"].(map[string]any)
		k, _ := d["apiKey"].(string)
		return r.Status, k
	}
	// During the migration a reader gets either value on asking.
	if st, k := value(reader, ""); st != 200 || k != newKey {
		t.Fatalf("current: %d", st)
	}
	if st, k := value(reader, "&version=1"); st != 200 || k != oldKey {
		t.Fatalf("previous during the migration: %d", st)
	}
	// Then the previous values are served no more, and the end is an event.
	eventually(t, 15*time.Second, "the end of the previous version announced", func() bool {
		for _, d := range rec.events(credgate.EventRevoked) {
			if d.event.Data.Reason == "previousRevokeAt" && d.event.Data.Version == 1 && d.event.Data.CredentialID == id {
				return true
			}
		}
		return false
	})
	if time.Now().Before(until) {
		t.Fatalf("announced before previousRevokeAt")
	}
	if st, _ := value(reader, "&version=1"); st != 404 {
		t.Fatalf("previous after previousRevokeAt: %d", st)
	}
	if st, k := value(reader, ""); st != 200 || k != newKey {
		t.Fatalf("current after the migration: %d", st)
	}
	// Revoked is final for every role: an admin is not served it either
	// (issue 21), though its history (without values) stays listed.
	if st, _ := value(admin, "&version=1"); st != 404 {
		t.Fatalf("admin reads a revoked version: %d", st)
	}
	if r := a.do("GET", "/api/v1/credentials/"+id+"/versions", admin, nil); r.Status != 200 || !strings.Contains(string(r.Raw), `"version":1`) {
		t.Fatalf("the history of a revoked version: %d %s", r.Status, r.Raw)
	}
	time.Sleep(time.Second)
	if n := len(rec.events(credgate.EventRevoked)); n != 1 {
		t.Fatalf("%d revoked events", n)
	}
	rec.check()
}

func TestWebhookGivesUpAfterMaxAttempts(t *testing.T) {
	var c clock
	a, b := replicas(t, &c, func(m *monitorSetup) { m.maxAttempts = 3 })
	ten := tenant(t)
	admin := token(t, "alice", ten, "integration_admin")
	rec := startReceiver(t, 1000) // never takes it
	hook := rec.subscribe(a, admin, credgate.EventCreated, credgate.EventDeleted)
	a.mustCreate(admin, map[string]any{"id": "jira", "name": "Jira"})
	id := b.mustCreateCredential(admin, map[string]any{"integrationId": "jira", "credentialName": "bot", "authType": "bearer", "accessToken": secret("jt_" + randHex(8))})["id"].(string)
	var log []any
	eventually(t, 20*time.Second, "a failed delivery in the log", func() bool {
		r := a.do("GET", "/api/v1/webhooks/"+hook+"/deliveries", admin, nil)
		log, _ = r.Body["data"].([]any)
		return len(log) > 0 && log[0].(map[string]any)["status"] == "failed"
	})
	time.Sleep(1500 * time.Millisecond) // more sweeps of the leader
	rec.mu.Lock()
	calls := rec.calls
	rec.mu.Unlock()
	if calls != 3 || len(log) != 3 {
		t.Fatalf("%d requests and %d log entries after giving up; want 3 of each", calls, len(log))
	}
	last := log[0].(map[string]any)
	if last["attempt"] != float64(3) || last["httpStatus"] != float64(500) || last["error"] != "the receiver answered 500" {
		t.Fatalf("last attempt: %v", last)
	}
	if _, ok := last["nextRetryAt"]; ok {
		t.Fatalf("the last attempt names a next retry: %v", last)
	}
	// The deleted event names the integration too.
	rec.mu.Lock()
	rec.failFirst = 0
	rec.mu.Unlock()
	if r := a.do("DELETE", "/api/v1/credentials/"+id, admin, nil); r.Status != 200 {
		t.Fatalf("delete: %d", r.Status)
	}
	eventually(t, 20*time.Second, "credential.deleted", func() bool { return len(rec.events(credgate.EventDeleted)) == 1 })
	if d := rec.events(credgate.EventDeleted)[0].event.Data; d.IntegrationID != "jira" || d.CredentialID != id {
		t.Fatalf("deleted: %+v", d)
	}
	// Deleting a service deletes its credentials: an event for each.
	second := b.mustCreateCredential(admin, map[string]any{"integrationId": "jira", "credentialName": "bot 2", "authType": "bearer", "accessToken": secret("jt_" + randHex(8))})["id"].(string)
	if r := a.do("DELETE", "/api/v1/services/jira", admin, nil); r.Status != 204 {
		t.Fatalf("delete service: %d %s", r.Status, r.Raw)
	}
	eventually(t, 20*time.Second, "credential.deleted for the service's credential", func() bool { return len(rec.events(credgate.EventDeleted)) == 2 })
	if d := rec.events(credgate.EventDeleted)[1].event.Data; d.IntegrationID != "jira" || d.CredentialID != second || !strings.HasPrefix(d.Actor.Email, "alice@") {
		t.Fatalf("deleted with its service: %+v", d)
	}
	rec.check()
}

// TestAReceiverGoneOrFailingIsDisabledAndItsOwnerTold: a receiver that
// answers 410 is disabled after that one attempt, one that fails every
// attempt for disable_after is disabled then; each subscription reads
// enabled false with the reason, the tenant's other subscription gets
// webhook.disabled naming it, the metric counts it, retries stop, and the
// owner's PATCH enabled:true turns it on again and clears the reason.
func TestAReceiverGoneOrFailingIsDisabledAndItsOwnerTold(t *testing.T) {
	var c clock
	a, _ := replicas(t, &c, func(m *monitorSetup) { m.disableAfter = 2 * time.Second })
	ten := tenant(t)
	admin := token(t, "alice", ten, "integration_admin")
	gone, failing, owner := startReceiver(t, 1), startReceiver(t, 1000), startReceiver(t, 0)
	gone.failWith = http.StatusGone
	goneID := gone.subscribe(a, admin, credgate.EventCreated)
	failingID := failing.subscribe(a, admin, credgate.EventCreated)
	owner.subscribe(a, admin, credgate.EventWebhookDisabled)
	a.mustCreate(admin, map[string]any{"id": "jira", "name": "Jira"})
	a.mustCreateCredential(admin, map[string]any{"integrationId": "jira", "credentialName": "bot", "authType": "bearer", "accessToken": secret("jt_" + randHex(8))})

	view := func(id string) map[string]any {
		r := a.do("GET", "/api/v1/webhooks/"+id, admin, nil)
		if r.Status != 200 {
			t.Fatalf("GET webhook: %d %s", r.Status, r.Raw)
		}
		return r.Body["data"].(map[string]any)
	}
	eventually(t, 10*time.Second, "the gone receiver's subscription disabled", func() bool { return view(goneID)["enabled"] == false })
	if v := view(goneID); !strings.Contains(fmt.Sprint(v["disabledReason"]), "410 Gone") || v["disabledAt"] == nil {
		t.Fatalf("disabled: %v", v)
	}
	eventually(t, 20*time.Second, "the failing receiver's subscription disabled", func() bool { return view(failingID)["enabled"] == false })
	if v := view(failingID); !strings.Contains(fmt.Sprint(v["disabledReason"]), "every delivery failed since") {
		t.Fatalf("disabled: %v", v)
	}
	eventually(t, 10*time.Second, "webhook.disabled, twice", func() bool { return len(owner.events(credgate.EventWebhookDisabled)) == 2 })
	told := map[string]credgate.EventData{}
	for _, d := range owner.events(credgate.EventWebhookDisabled) {
		told[d.event.Data.WebhookID] = d.event.Data
	}
	if told[goneID].Reason == "" || told[failingID].Reason == "" || told[goneID].Tenant != ten || told[goneID].Actor.Subject != credgate.SystemSubject {
		t.Fatalf("webhook.disabled told %+v", told)
	}
	metrics := string(a.do("GET", "/metrics", "", nil).Raw)
	if !strings.Contains(metrics, `credgate_webhooks_disabled_total{reason="gone"} 1`) || !strings.Contains(metrics, `credgate_webhooks_disabled_total{reason="failing"} 1`) {
		t.Fatal("the metric does not count the two disabled subscriptions")
	}
	failing.mu.Lock()
	calls := failing.calls
	failing.mu.Unlock()
	time.Sleep(1500 * time.Millisecond) // several sweeps
	failing.mu.Lock()
	again := failing.calls
	failing.mu.Unlock()
	if again != calls || calls < 2 {
		t.Fatalf("the failing receiver had %d attempts, then %d more after it was disabled", calls, again-calls)
	}

	// Its owner turns it on again: the reason is gone, events flow.
	r := a.do("PATCH", "/api/v1/webhooks/"+goneID, admin, map[string]any{"enabled": true})
	if r.Status != 200 {
		t.Fatalf("PATCH: %d %s", r.Status, r.Raw)
	}
	if v := view(goneID); v["enabled"] != true || v["disabledReason"] != nil || v["disabledAt"] != nil {
		t.Fatalf("enabled again: %v", v)
	}
	a.mustCreateCredential(admin, map[string]any{"integrationId": "jira", "credentialName": "bot 2", "authType": "bearer", "accessToken": secret("jt_" + randHex(8))})
	eventually(t, 10*time.Second, "an event to the subscription enabled again", func() bool { return len(gone.events(credgate.EventCreated)) == 1 })
	gone.check()
	owner.check()
}

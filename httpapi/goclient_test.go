package httpapi_test

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/client"
	"github.com/credgate/credgate/httpapi"
)

// routeRecorder notes the method and path of every request a client sends.
type routeRecorder struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (r *routeRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.seen[req.Method+" "+req.URL.Path] = true
	r.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

// TestGoClientCallsEveryRouteOfTheAPI drives the Go client package
// (client) against the real stack through every documented /api/v1 route,
// and checks its typed errors for each family's error codes.
func TestGoClientCallsEveryRouteOfTheAPI(t *testing.T) {
	a := newAPI(t, apiOptions{monitor: &monitorSetup{noMonitor: true}})
	ten := tenant(t)
	admin := token(t, "alice", ten, "integration_admin")
	rec := &routeRecorder{seen: map[string]bool{}}
	newClient := func(tok, tenant string) *client.Client {
		c, err := client.New(client.Options{Addr: a.url, Tokens: client.StaticToken(tok), Tenant: tenant, HTTPClient: &http.Client{Transport: rec}, Retries: -1})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := newClient(admin, ten)
	ctx := context.Background()
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	wantCode := func(what string, err error, status int, code string) *client.Error {
		t.Helper()
		var e *client.Error
		if !errors.As(err, &e) || e.Status != status || e.Code != code || e.RequestID == "" || (e.Details == "" && e.Message == "") {
			t.Fatalf("%s: got %#v (%v); want %d %s with a request id", what, e, err, status, code)
		}
		return e
	}

	// Services.
	svc, err := c.CreateService(ctx, &client.Service{ID: "stripe", Name: "Stripe", Type: "payment_gateway", Status: "active"}, "idem-"+randHex(6))
	must("create service", err)
	_, err = c.CreateService(ctx, &client.Service{ID: "stripe", Name: "Again"}, "")
	wantCode("a second service stripe", err, 409, "SERVICE_ALREADY_EXISTS")
	_, err = c.GetService(ctx, "nope")
	wantCode("a missing service", err, 404, "SERVICE_NOT_FOUND")
	got, err := c.GetService(ctx, "stripe")
	must("get service", err)
	list, err := c.ListServices(ctx)
	must("list services", err)
	if got.Name != "Stripe" || len(list) != 1 {
		t.Fatalf("services: %+v %+v", got, list)
	}
	svc.Description = "payments"
	_, err = c.UpdateService(ctx, "stripe", svc, svc.Version+5)
	wantCode("a stale If-Match", err, 409, "VERSION_CONFLICT")
	svc, err = c.UpdateService(ctx, "stripe", svc, svc.Version)
	must("put service", err)
	svc, err = c.PatchService(ctx, "stripe", map[string]any{"description": nil}, svc.Version)
	must("patch service", err)
	if svc.Description != "" {
		t.Fatalf("merge patch null: %+v", svc)
	}
	key := secret("sk_live_" + randHex(8))
	sc, err := c.PutServiceCredentials(ctx, "stripe", map[string]string{"api_key": key}, nil, 0)
	must("put service credentials", err)
	sc, err = c.GetServiceCredentials(ctx, "stripe")
	must("get service credentials", err)
	if sc.Credentials["api_key"] != key {
		t.Fatalf("service credentials: %+v", sc)
	}
	_, err = c.ServiceCredentialVersions(ctx, "stripe")
	must("service credential versions", err)
	_, err = c.ServiceAccess(ctx, "stripe")
	must("service access", err)

	// Credentials.
	_, err = c.CreateCredential(ctx, map[string]any{"integrationId": "stripe", "credentialName": "x", "authType": "api_key"}, "")
	e := wantCode("a credential without its key", err, 400, "VALIDATION_FAILED")
	if e.Fields["apiKey"] == "" {
		t.Fatalf("the fields a validation named: %+v", e)
	}
	var ids []string
	for i := range 3 {
		cr, err := c.CreateCredential(ctx, map[string]any{"integrationId": "stripe", "credentialName": "k" + string(rune('a'+i)), "authType": "api_key", "apiKey": secret("k_" + randHex(8))}, "")
		must("create credential", err)
		ids = append(ids, cr.ID)
	}
	read, res, err := c.GetCredential(ctx, client.CredentialRead{Integration: "stripe", CredentialID: ids[0]})
	must("read credential", err)
	if read.Values["apiKey"] == "" || int(res.ETag) != read.Version || read.Status != credgate.CredActive {
		t.Fatalf("read: %+v %+v", read, res)
	}
	_, _, err = c.GetCredential(ctx, client.CredentialRead{Integration: "stripe", CredentialID: "not-an-id"})
	wantCode("a malformed credentialId", err, 400, "INVALID_PARAMETER")
	_, _, err = c.GetCredential(ctx, client.CredentialRead{Integration: "nope"})
	wantCode("no credential", err, 404, "CREDENTIAL_NOT_FOUND")
	n := 0
	for cr, err := range c.Credentials(ctx, client.Inventory{"integrationId": {"stripe"}, "limit": {"1"}}) {
		must("inventory", err)
		if len(cr.Values) != 0 {
			t.Fatal("the inventory carried values")
		}
		n++
	}
	if n != 4 { // the three, and the services family's default
		t.Fatalf("the walk over pages of one saw %d", n)
	}
	_, err = c.UpdateCredential(ctx, ids[0], map[string]any{"description": "x"}, read.Version+3)
	wantCode("a stale If-Match", err, 409, "VERSION_CONFLICT")
	_, err = c.UpdateCredential(ctx, ids[0], map[string]any{"description": "primary"}, read.Version)
	must("patch credential", err)
	_, _, err = c.RotateCredential(ctx, ids[0], map[string]any{"generate": true}, 0)
	must("rotate", err)
	versions, err := c.CredentialVersions(ctx, ids[0])
	must("versions", err)
	if len(versions) != 3 {
		t.Fatalf("versions: %+v", versions)
	}
	_, err = c.CredentialUsage(ctx, ids[0], "7d")
	must("usage", err)
	_, err = c.CredentialAccess(ctx, ids[0])
	must("access", err)
	oauth, err := c.CreateCredential(ctx, map[string]any{"integrationId": "stripe", "credentialName": "connect", "authType": "oauth2_bearer",
		"authorizationEndpoint": "https://127.0.0.1:1/authorize", "tokenEndpoint": "https://127.0.0.1:1/token", "clientId": "c"}, "")
	must("an OAuth2 credential to connect", err)
	started, err := c.ConnectCredential(ctx, oauth.ID, "")
	must("connect", err)
	if !strings.HasPrefix(started.AuthorizationURL, "https://127.0.0.1:1/authorize?") {
		t.Fatalf("connect: %+v", started)
	}
	must("delete credential", c.DeleteCredential(ctx, ids[2], 0))

	// Webhooks, grants, rotators.
	wh, err := c.CreateWebhook(ctx, &credgate.Webhook{URL: "http://127.0.0.1:1/hooks", EventTypes: []string{credgate.EventRotated}})
	must("create webhook", err)
	if !strings.HasPrefix(wh.Secret, "whsec_") {
		t.Fatalf("webhook: %+v", wh)
	}
	secret(wh.Secret)
	_, err = c.ListWebhooks(ctx)
	must("list webhooks", err)
	_, err = c.GetWebhook(ctx, wh.ID)
	must("get webhook", err)
	_, err = c.UpdateWebhook(ctx, wh.ID, map[string]any{"enabled": false}, 0)
	must("patch webhook", err)
	_, err = c.WebhookDeliveries(ctx, wh.ID)
	must("deliveries", err)
	must("delete webhook", c.DeleteWebhook(ctx, wh.ID))
	_, err = c.GetWebhook(ctx, wh.ID)
	wantCode("a deleted webhook", err, 404, "NOT_FOUND")
	g, err := c.CreateGrant(ctx, &credgate.Grant{Subject: "app", Role: "credential_reader", Integrations: []string{"stripe"}})
	must("create grant", err)
	_, err = c.ListGrants(ctx)
	must("list grants", err)
	_, err = c.GetGrant(ctx, g.ID)
	must("get grant", err)
	must("delete grant", c.DeleteGrant(ctx, g.ID))
	rot, err := c.CreateRotator(ctx, &credgate.Rotator{URL: "http://127.0.0.1:1/rotate", TimeoutSeconds: 5})
	must("create rotator", err)
	secret(rot.Secret)
	_, err = c.ListRotators(ctx)
	must("list rotators", err)
	_, err = c.GetRotator(ctx, rot.ID)
	must("get rotator", err)
	_, err = c.UpdateRotator(ctx, rot.ID, map[string]any{"timeoutSeconds": 7}, 0)
	must("patch rotator", err)
	must("delete rotator", c.DeleteRotator(ctx, rot.ID, 0))

	// Who may not.
	viewer := newClient(token(t, "vic", ten, "integration_viewer"), "")
	_, _, err = viewer.GetCredential(ctx, client.CredentialRead{Integration: "stripe"})
	wantCode("a viewer reading values", err, 403, "INSUFFICIENT_PERMISSIONS")
	_, err = newClient("not-a-token", "").ListServices(ctx)
	wantCode("a bad token", err, 401, "UNAUTHORIZED")
	_, err = newClient(admin, "another-tenant").ListServices(ctx)
	wantCode("another tenant's header", err, 403, "TENANT_MISMATCH")
	if !client.IsCode(err, "TENANT_MISMATCH") {
		t.Fatal("IsCode")
	}
	_, err = c.CreateCredential(ctx, map[string]any{"integrationId": "stripe", "credentialName": "big", "authType": "api_key", "apiKey": "k", "description": strings.Repeat("x", 2<<20)}, "")
	wantCode("a body over the limit", err, 413, "PAYLOAD_TOO_LARGE")
	must("delete service", c.DeleteService(ctx, "stripe", 0))

	// Over the tenant's rate limit: 429 with how long to wait.
	limited := newAPI(t, apiOptions{rateLimit: httpapi.RateLimit{Default: 1}})
	lc, err := client.New(client.Options{Addr: limited.url, Tokens: client.StaticToken(admin), Retries: -1})
	must("client", err)
	_, _ = lc.ListServices(ctx)
	_, err = lc.ListServices(ctx)
	if e := wantCode("over the rate limit", err, 429, "RATE_LIMITED"); e.RetryAfter <= 0 {
		t.Fatalf("no Retry-After: %+v", e)
	}

	// Every documented route under /api/v1 was called.
	var missing []string
	for path, item := range s.spec.doc.Paths.Map() {
		if !strings.HasPrefix(path, "/api/v1/") {
			continue
		}
		re := regexp.MustCompile("^" + strings.ReplaceAll(regexp.QuoteMeta(regexp.MustCompile(`\{[^}]+\}`).ReplaceAllString(path, "PARAM")), "PARAM", `[^/]+`) + "$")
		for method := range item.Operations() {
			called := false
			rec.mu.Lock()
			for k := range rec.seen {
				m, p, _ := strings.Cut(k, " ")
				if m == method && re.MatchString(p) {
					called = true
				}
			}
			rec.mu.Unlock()
			if !called {
				missing = append(missing, method+" "+path)
			}
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Fatalf("the Go client never called: %v", missing)
	}
}

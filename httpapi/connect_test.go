package httpapi_test

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/tokenrefresh/oauthtest"
)

// connectSetup is a tenant with a service and an oauth2_bearer credential
// made to be connected to a real authorization server (go-oauth2, on
// loopback): no tokens yet.
type connectSetup struct {
	ten, tok, cred string
	srv            *oauthtest.Server
}

func setUpConnect(t *testing.T, a *testAPI, authorizationEndpoint string) *connectSetup {
	t.Helper()
	s := &connectSetup{ten: tenant(t)}
	s.tok = token(t, "alice", s.ten, "integration_admin")
	s.srv = oauthtest.Start(t, secret("client-secret-"+randHex(8)), oauthtest.Options{})
	if authorizationEndpoint == "" {
		authorizationEndpoint = s.srv.URL + "/authorize"
	}
	a.mustCreate(s.tok, map[string]any{"id": "servicenow", "name": "ServiceNow"})
	created := a.mustCreateCredential(s.tok, map[string]any{
		"integrationId": "servicenow", "credentialName": "itsm", "authType": "oauth2_bearer", "scopes": []string{"read"},
		"authorizationEndpoint": authorizationEndpoint, "tokenEndpoint": s.srv.URL + "/token",
		"clientId": s.srv.ClientID, "clientSecret": s.srv.ClientSecret,
	})
	s.cred = created["id"].(string)
	if conn, _ := created["connection"].(map[string]any); conn["state"] != credgate.ConnectionPending {
		t.Fatalf("a credential awaiting its connection: %v", created["connection"])
	}
	return s
}

func (s *connectSetup) start(t *testing.T, a *testAPI, body any) (authURL, state string) {
	t.Helper()
	res := a.do("POST", "/api/v1/credentials/"+s.cred+"/connect", s.tok, body)
	data := wantEnvelope(t, res, 200)
	authURL = data["authorizationUrl"].(string)
	u, err := url.Parse(authURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("redirect_uri") != a.url+"/oauth/callback" || q.Get("client_id") != s.srv.ClientID {
		t.Fatalf("authorization URL: %s", authURL)
	}
	return authURL, q.Get("state")
}

// described is the credential as the inventory describes it.
func (s *connectSetup) described(t *testing.T, a *testAPI) map[string]any {
	t.Helper()
	res := a.do("GET", "/api/v1/credentials?integrationId=servicenow", s.tok, nil)
	for _, x := range res.Body["data"].([]any) {
		if c := x.(map[string]any); c["id"] == s.cred {
			return c
		}
	}
	t.Fatalf("not in the inventory: %s", res.Raw)
	return nil
}

// callback is what a browser gets at credgate's callback with query.
func callback(t *testing.T, a *testAPI, query string) (int, string, http.Header) {
	t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Get(a.url + "/oauth/callback?" + query)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b), res.Header
}

// consent answers the provider's consent screen without a browser and
// returns the query credgate's callback is sent.
func consent(t *testing.T, authURL, answer string) string {
	t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	u, _ := url.Parse(authURL)
	res, err := client.PostForm(u.Scheme+"://"+u.Host+"/authorize?"+u.RawQuery, url.Values{"consent": {answer}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	loc, err := url.Parse(res.Header.Get("Location"))
	if err != nil || res.StatusCode != http.StatusFound {
		t.Fatalf("consent: %d %v", res.StatusCode, res.Header)
	}
	return loc.RawQuery
}

// A person connects an integration in a real browser: credgate's URL, the
// provider's consent screen, Allow, credgate's callback; the tokens are
// then read through the credentials family, and the provider saw the PKCE
// verifier that matches the challenge.
func TestConnectThroughTheConsentScreenInChromium(t *testing.T) {
	a := newAPI(t, apiOptions{monitor: &monitorSetup{noMonitor: true}})
	s := setUpConnect(t, a, "")
	rec := startReceiver(t, 0)
	rec.subscribe(a, s.tok, credgate.EventConnected)
	// No tokens yet: nothing to serve.
	wantEnvelopeError(t, a.do("GET", "/api/v1/credentials/servicenow?credentialId="+s.cred, s.tok, nil), 404, credgate.ECredentialNotFound)
	authURL, _ := s.start(t, a, nil)

	ctx := startChromium(t)
	p := &page{t: t, ctx: ctx, step: 20 * time.Second}
	if err := chromedp.Run(ctx, chromedp.Navigate(authURL)); err != nil {
		t.Fatalf("opening the authorization URL: %v", err)
	}
	p.waitTrue("the provider's consent screen", `!!document.querySelector('#allow')`)
	p.click("Allow", "#allow")
	p.waitTrue("credgate's callback page", `location.pathname === '/oauth/callback' && !!document.querySelector('#result')`)
	if got := p.waitText("the result", "#result", "Connected"); !strings.Contains(got, "Connected") {
		t.Fatalf("callback page says %q", got)
	}

	got := wantEnvelope(t, a.do("GET", "/api/v1/credentials/servicenow?credentialId="+s.cred, token(t, "app", s.ten, "credential_reader"), nil), 200)
	access, _ := got["accessToken"].(string)
	refresh, _ := got["refreshToken"].(string)
	secret(access)
	secret(refresh)
	if access == "" || refresh == "" || !s.srv.Accepts(t, access) || got["expiresAt"] == nil || got["version"] != 2.0 {
		t.Fatalf("after the connect: %v", got)
	}
	if conn := got["connection"].(map[string]any); conn["state"] != credgate.ConnectionConnected {
		t.Fatalf("connection: %v", conn)
	}
	challenges, verifiers := s.srv.PKCE()
	if len(challenges) != 1 || len(verifiers) != 1 || verifiers[0] == "" {
		t.Fatalf("PKCE seen: %v %v", challenges, verifiers)
	}
	sum := sha256.Sum256([]byte(verifiers[0]))
	if base64.RawURLEncoding.EncodeToString(sum[:]) != challenges[0] {
		t.Fatal("the verifier credgate sent does not match the challenge it sent")
	}
	eventually(t, 10*time.Second, "credential.connected", func() bool { return len(rec.events(credgate.EventConnected)) == 1 })
	if e := rec.events(credgate.EventConnected)[0]; e.event.Data.Actor.Email != "alice@"+s.ten+".example" || strings.Contains(e.raw, access) {
		t.Fatalf("connected event: %s", e.raw)
	}
	rec.check()
}

// A connect refused for any reason stores nothing: a state unknown,
// altered to another tenant, replayed or expired; the provider's
// access_denied; a code the token endpoint refuses; endpoints that point
// inward. The page says why.
func TestConnectRefusalsStoreNothing(t *testing.T) {
	a := newAPI(t, apiOptions{monitor: &monitorSetup{noMonitor: true}, connectTTL: 2 * time.Second, redirectAllow: []string{"http://127.0.0.1:1/app/"}})
	s := setUpConnect(t, a, "")
	other := setUpConnect(t, a, "")
	unchanged := func(why string) {
		t.Helper()
		for _, x := range []*connectSetup{s, other} {
			d := x.described(t, a)
			if d["version"] != 1.0 || d["connection"].(map[string]any)["state"] != credgate.ConnectionPending {
				t.Fatalf("%s: stored %v", why, d)
			}
		}
	}
	refused := func(why, query string, status int, says string) {
		t.Helper()
		code, page, hdr := callback(t, a, query)
		if code != status || !strings.Contains(page, says) || !strings.Contains(hdr.Get("Content-Type"), "text/html") {
			t.Fatalf("%s: %d %q", why, code, page)
		}
		unchanged(why)
	}
	refused("no state", "code=x", 400, "unknown")
	refused("a made-up state", "state="+s.ten+"."+strings.Repeat("A", 43)+"&code=x", 400, "unknown")

	// A state minted in one tenant, presented as another's.
	authURL, state := s.start(t, a, nil)
	_, nonce, _ := strings.Cut(state, ".")
	refused("a state moved to another tenant", "state="+other.ten+"."+nonce+"&code=x", 400, "unknown")

	// The person denies: the provider's error, shown; the state is spent.
	q := consent(t, authURL, "deny")
	refused("access_denied", q, 502, "access_denied")
	refused("a replay of a spent state", "state="+url.QueryEscape(state)+"&code=x", 400, "used already")

	// A code the token endpoint refuses.
	_, state = s.start(t, a, nil)
	refused("a code the server refuses", "state="+url.QueryEscape(state)+"&code=forged", 502, "refused the code")

	// An expired state.
	authURL, state = s.start(t, a, nil)
	q = consent(t, authURL, "allow")
	time.Sleep(2500 * time.Millisecond)
	refused("an expired state", q, 400, "expired")

	// A state used once: the replay stores nothing more.
	authURL, _ = s.start(t, a, nil)
	q = consent(t, authURL, "allow")
	if code, page, _ := callback(t, a, q); code != 200 || !strings.Contains(page, "Connected") {
		t.Fatalf("the connect: %d %s", code, page)
	}
	if code, page, _ := callback(t, a, q); code != 400 || !strings.Contains(page, "used already") {
		t.Fatalf("the replay: %d %s", code, page)
	}
	if d := s.described(t, a); d["version"] != 2.0 {
		t.Fatalf("after the replay: version %v", d["version"])
	}

	// redirectAfter: only where configuration allows; the browser is sent
	// there with the outcome.
	wantEnvelopeError(t, a.do("POST", "/api/v1/credentials/"+other.cred+"/connect", other.tok, map[string]any{"redirectAfter": "https://evil.example/"}), 400, credgate.EValidationFailed)
	authURL, _ = other.start(t, a, map[string]any{"redirectAfter": "http://127.0.0.1:1/app/done"})
	q = consent(t, authURL, "deny")
	code, _, hdr := callback(t, a, q)
	if loc := hdr.Get("Location"); code != 302 || !strings.HasPrefix(loc, "http://127.0.0.1:1/app/done?") || !strings.Contains(loc, "error=UPSTREAM_ERROR") {
		t.Fatalf("redirect after a refusal: %d %s", code, loc)
	}

	// Endpoints pointing inward are refused before anything happens.
	inward := a.mustCreateCredential(s.tok, map[string]any{
		"integrationId": "servicenow", "credentialName": "inward", "authType": "oauth2_bearer",
		"authorizationEndpoint": "https://10.1.2.3/authorize", "tokenEndpoint": s.srv.URL + "/token", "clientId": "c",
	})["id"].(string)
	e := wantEnvelopeError(t, a.do("POST", "/api/v1/credentials/"+inward+"/connect", s.tok, nil), 400, credgate.EValidationFailed)
	if !strings.Contains(fmt.Sprint(e), "authorizationEndpoint") {
		t.Fatalf("inward endpoint: %v", e)
	}
	// A credential that cannot be connected says what it lacks.
	plain := a.mustCreateCredential(s.tok, map[string]any{"integrationId": "servicenow", "credentialName": "key", "authType": "api_key", "apiKey": secret("k_" + randHex(6))})["id"].(string)
	wantEnvelopeError(t, a.do("POST", "/api/v1/credentials/"+plain+"/connect", s.tok, nil), 400, credgate.EValidationFailed)
	// A viewer may not start one.
	wantEnvelopeError(t, a.do("POST", "/api/v1/credentials/"+s.cred+"/connect", token(t, "vic", s.ten, "integration_viewer"), nil), 403, credgate.EInsufficientPermissions)
}

// Client credentials: reads of a credential without a current token mint
// one, once, however many readers on however many replicas ask; a read
// past the token's lead time mints exactly one more.
func TestClientCredentialsAreMintedOnceForConcurrentReaders(t *testing.T) {
	var c clock
	a, b := replicas(t, &c)
	srv := oauthtest.Start(t, secret("client-secret-"+randHex(8)), oauthtest.Options{ClientTokenExp: 8 * time.Second})
	ten := tenant(t)
	tok := token(t, "alice", ten, "integration_admin")
	reader := token(t, "app", ten, "credential_reader")
	a.mustCreate(tok, map[string]any{"id": "billing", "name": "Billing API"})
	a.mustCreateCredential(tok, map[string]any{
		"integrationId": "billing", "credentialName": "m2m", "authType": "oauth2_client_credentials", "scopes": []string{"read"},
		"clientId": srv.ClientID, "clientSecret": srv.ClientSecret, "tokenEndpoint": srv.URL + "/token", "tokenEndpointAuthMethod": "client_secret_post",
	})
	readAll := func(n int) map[string]bool {
		tokens := map[string]bool{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				res := []*testAPI{a, b}[i%2].do("GET", "/api/v1/credentials/billing", reader, nil)
				if res.Status != 200 {
					t.Errorf("read: %d %s", res.Status, res.Raw)
					return
				}
				at, _ := res.data()["accessToken"].(string)
				mu.Lock()
				tokens[secret(at)] = true
				mu.Unlock()
			})
		}
		wg.Wait()
		return tokens
	}
	first := readAll(50)
	if got := srv.ClientGrants(); got["post"] != 1 || got["basic"] != 0 || len(first) != 1 {
		t.Fatalf("50 concurrent reads: grants %v, %d distinct tokens", got, len(first))
	}
	for at := range first {
		if !srv.Accepts(t, at) {
			t.Fatal("the minted token is not the server's")
		}
	}
	// Within its life: reused.
	readAll(10)
	if got := srv.ClientGrants()["post"]; got != 1 {
		t.Fatalf("reads within the token's life: %d grants", got)
	}
	// Past its lead time (half its life, 4 s, as its life is shorter than
	// the lead): one more.
	time.Sleep(4200 * time.Millisecond)
	second := readAll(20)
	if got := srv.ClientGrants()["post"]; got != 2 || len(second) != 1 || first[keyOf(second)] {
		t.Fatalf("after the lead time: %d grants, tokens %d (new: %v)", got, len(second), !first[keyOf(second)])
	}
}

func keyOf(m map[string]bool) string {
	for k := range m {
		return k
	}
	return ""
}

// A refresh the provider refuses with invalid_grant breaks the connection:
// reconnect_required, in the inventory filter, one connection_broken
// however often it is refused again, and the record unchanged; connecting
// it again through the consent screen restores it.
func TestInvalidGrantBreaksTheConnectionUntilRestored(t *testing.T) {
	a := newAPI(t, apiOptions{monitor: &monitorSetup{noMonitor: true}})
	ts := startTokenServer(t)
	ten := tenant(t)
	tok := token(t, "alice", ten, "integration_admin")
	rec := startReceiver(t, 0)
	rec.subscribe(a, tok, credgate.EventConnectionBroken, credgate.EventConnectionRestored)
	a.mustCreate(tok, map[string]any{"id": "crm", "name": "CRM"})
	first := ts.login(t)
	id := a.mustCreateCredential(tok, map[string]any{
		"integrationId": "crm", "credentialName": "sync", "authType": "oauth2_bearer",
		"accessToken": secret(first.AccessToken), "refreshToken": secret(first.RefreshToken),
		"clientId": ts.ClientID, "clientSecret": ts.ClientSecret, "tokenEndpoint": ts.URL + "/token", "authorizationEndpoint": ts.URL + "/authorize",
	})["id"].(string)
	ts.Refuse(true)
	for range 2 {
		wantEnvelopeError(t, a.do("POST", "/api/v1/credentials/"+id+"/rotate", tok, nil), 502, credgate.EUpstreamError)
	}
	list := a.do("GET", "/api/v1/credentials?connection=reconnect_required", tok, nil)
	items := list.Body["data"].([]any)
	if len(items) != 1 {
		t.Fatalf("reconnect_required: %s", list.Raw)
	}
	if conn := items[0].(map[string]any)["connection"].(map[string]any); conn["state"] != credgate.ConnectionBroken || conn["reason"] != "invalid_grant" {
		t.Fatalf("connection: %v", conn)
	}
	wantEnvelopeError(t, a.do("GET", "/api/v1/credentials?connection=lost", tok, nil), 400, credgate.EInvalidParameter)
	eventually(t, 10*time.Second, "credential.connection_broken", func() bool { return len(rec.events(credgate.EventConnectionBroken)) == 1 })
	time.Sleep(500 * time.Millisecond)
	if n := len(rec.events(credgate.EventConnectionBroken)); n != 1 {
		t.Fatalf("%d connection_broken for one break", n)
	}
	if d := wantEnvelope(t, a.do("GET", "/api/v1/credentials/crm?credentialId="+id, tok, nil), 200); d["version"] != 1.0 {
		t.Fatalf("a refused refresh wrote a version: %v", d["version"])
	}
	// Connected again through the consent screen: restored.
	res := a.do("POST", "/api/v1/credentials/"+id+"/connect", tok, nil)
	code, page, _ := callback(t, a, consent(t, wantEnvelope(t, res, 200)["authorizationUrl"].(string), "allow"))
	if code != 200 || !strings.Contains(page, "Connected") {
		t.Fatalf("reconnect: %d %s", code, page)
	}
	got := wantEnvelope(t, a.do("GET", "/api/v1/credentials/crm?credentialId="+id, tok, nil), 200)
	if conn := got["connection"].(map[string]any); conn["state"] != credgate.ConnectionConnected || got["version"] != 2.0 {
		t.Fatalf("after the reconnect: %v", got)
	}
	secret(got["accessToken"].(string))
	secret(got["refreshToken"].(string))
	eventually(t, 10*time.Second, "credential.connection_restored", func() bool { return len(rec.events(credgate.EventConnectionRestored)) == 1 })
	if len(rec.events(credgate.EventConnectionBroken)) != 1 {
		t.Fatal("the reconnect broke it again")
	}
	rec.check()
}

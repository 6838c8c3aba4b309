package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/examples/rotator"
	"github.com/credgate/credgate/policy"
)

// fakeRotator is the example rotator (examples/rotator) in front of its
// fake provider, both real HTTP servers on loopback, with a door in front
// of the rotator that counts the calls of each step and can make a step
// fail: answer a status, garbage, or too late, or hold a call.
type fakeRotator struct {
	t        *testing.T
	url      string
	provider *rotator.Provider
	example  *rotator.Rotator

	mu    sync.Mutex
	calls map[string]int
	// fault, when set, may answer a call itself (the n-th of its step).
	fault func(w http.ResponseWriter, step string, n int) bool
}

func startRotator(t *testing.T, liveKeys ...string) *fakeRotator {
	f := &fakeRotator{t: t, calls: map[string]int{}, provider: rotator.NewProvider(liveKeys...)}
	prov := httptest.NewServer(f.provider)
	t.Cleanup(prov.Close)
	f.example = rotator.New(prov.URL)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var q rotator.Request
		_ = json.Unmarshal(body, &q)
		f.mu.Lock()
		f.calls[q.Data.Step]++
		n, fault := f.calls[q.Data.Step], f.fault
		f.mu.Unlock()
		if fault != nil && fault(w, q.Data.Step, n) {
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		f.example.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	f.url = srv.URL + "/rotate"
	return f
}

func (f *fakeRotator) count(step string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[step]
}

func (f *fakeRotator) setFault(fault func(w http.ResponseWriter, step string, n int) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fault = fault
}

// register registers f through a and gives the example its secret.
func (f *fakeRotator) register(a *testAPI, tok string, timeoutSeconds int) string {
	f.t.Helper()
	res := a.do("POST", "/api/v1/rotators", tok, map[string]any{"url": f.url, "description": "fake provider", "timeoutSeconds": timeoutSeconds})
	data := wantEnvelope(f.t, res, http.StatusCreated)
	sec, _ := data["secret"].(string)
	if !strings.HasPrefix(sec, "whsec_") || res.Header.Get("Cache-Control") != "no-store" {
		f.t.Fatalf("registration: %s", res.Raw)
	}
	secret(sec)
	if err := f.example.SetSecret(sec); err != nil {
		f.t.Fatal(err)
	}
	id := data["id"].(string)
	if again := a.do("GET", "/api/v1/rotators/"+id, tok, nil); again.Status != 200 || strings.Contains(string(again.Raw), sec) {
		f.t.Fatalf("GET rotator: %d, shows the secret: %v", again.Status, strings.Contains(string(again.Raw), sec))
	}
	return id
}

// rotationSetup is a tenant with a service, a registered fake rotator and
// a credential whose key the provider knows, named to be rotated by it.
type rotationSetup struct {
	ten, tok, cred, key, rotatorID string
	rot                            *fakeRotator
}

func setUpRotation(t *testing.T, a *testAPI, timeoutSeconds int, extra map[string]any) *rotationSetup {
	t.Helper()
	s := &rotationSetup{ten: tenant(t), key: secret("pk_initial_" + randHex(8))}
	s.tok = token(t, "alice", s.ten, "integration_admin")
	s.rot = startRotator(t, s.key)
	s.rotatorID = s.rot.register(a, s.tok, timeoutSeconds)
	a.mustCreate(s.tok, map[string]any{"id": "stripe", "name": "Stripe"})
	body := map[string]any{"integrationId": "stripe", "credentialName": "live", "authType": "api_key", "apiKey": s.key, "rotator": s.rotatorID}
	for k, v := range extra {
		body[k] = v
	}
	s.cred = a.mustCreateCredential(s.tok, body)["id"].(string)
	return s
}

// described is the credential as the inventory describes it (no values).
func (s *rotationSetup) described(t *testing.T, a *testAPI) map[string]any {
	t.Helper()
	res := a.do("GET", "/api/v1/credentials?integrationId=stripe", s.tok, nil)
	list, _ := res.Body["data"].([]any)
	for _, x := range list {
		if c := x.(map[string]any); c["id"] == s.cred {
			return c
		}
	}
	t.Fatalf("credential not in the inventory: %s", res.Raw)
	return nil
}

// rotation is the credential's rotation status ("" fields when none).
func (s *rotationSetup) rotation(t *testing.T, a *testAPI) map[string]any {
	t.Helper()
	r, _ := s.described(t, a)["rotation"].(map[string]any)
	if r == nil {
		r = map[string]any{}
	}
	return r
}

// apiKey is the value a reader is served now.
func (s *rotationSetup) apiKey(t *testing.T, a *testAPI) string {
	t.Helper()
	res := a.do("GET", "/api/v1/credentials/stripe?credentialId="+s.cred, s.tok, nil)
	return wantEnvelope(t, res, 200)["apiKey"].(string)
}

func (s *rotationSetup) rotate(t *testing.T, a *testAPI) reply {
	t.Helper()
	return a.do("POST", "/api/v1/credentials/"+s.cred+"/rotate", s.tok, map[string]any{"via": "rotator"})
}

// A 90-day policy on a credential last rotated 91 days ago raises one
// credential.rotation_due, and not the overdue notice, however many passes
// both replicas make; the inventory and the metrics say it is due.
func TestARotationPolicyRaisesOneRotationDue(t *testing.T) {
	var c clock
	a, b := replicas(t, &c)
	ten := tenant(t)
	tok := token(t, "alice", ten, "integration_admin")
	rec := startReceiver(t, 0)
	rec.subscribe(b, tok, credgate.EventRotationDue, credgate.EventRotationOverdue)
	a.mustCreate(tok, map[string]any{"id": "stripe", "name": "Stripe"})
	created := a.mustCreateCredential(tok, map[string]any{
		"integrationId": "stripe", "credentialName": "live", "authType": "api_key",
		"apiKey": secret("sk_live_" + randHex(8)), "rotationPolicy": map[string]any{"every": "90d"},
	})
	other := a.mustCreateCredential(tok, map[string]any{"integrationId": "stripe", "credentialName": "no policy", "authType": "api_key", "apiKey": secret("sk_" + randHex(8))})
	credID := created["id"].(string)
	at, _ := time.Parse(time.RFC3339, created["createdAt"].(string))
	due, _ := time.Parse(time.RFC3339, created["rotationDueAt"].(string))
	if !due.Equal(at.Add(90*24*time.Hour)) || other["rotationDueAt"] != nil {
		t.Fatalf("rotationDueAt %v for a credential created %v; without a policy: %v", due, at, other["rotationDueAt"])
	}
	if p, _ := created["rotationPolicy"].(map[string]any); p["every"] != "90d" {
		t.Fatalf("rotationPolicy answered: %v", created["rotationPolicy"])
	}
	time.Sleep(time.Second) // passes before the due date send nothing
	if n := len(rec.events(credgate.EventRotationDue)); n != 0 {
		t.Fatalf("%d rotation_due before the due date", n)
	}
	// Today nothing is due in the inventory.
	res := a.do("GET", "/api/v1/credentials?rotationDue=true", tok, nil)
	if list := wantEnvelope(t, res, 200); len(res.Body["data"].([]any)) != 0 {
		t.Fatalf("due today: %v", list)
	}
	wantEnvelopeError(t, a.do("GET", "/api/v1/credentials?rotationDue=soon", tok, nil), 400, credgate.EInvalidParameter)

	c.advance(91 * 24 * time.Hour)
	eventually(t, 15*time.Second, "the rotation_due notice", func() bool { return len(rec.events(credgate.EventRotationDue)) == 1 })
	time.Sleep(2 * time.Second) // many more passes of both monitors
	got := rec.events(credgate.EventRotationDue)
	if len(got) != 1 || len(rec.events(credgate.EventRotationOverdue)) != 0 {
		t.Fatalf("want one rotation_due and no overdue, got %d and %d", len(got), len(rec.events(credgate.EventRotationOverdue)))
	}
	e := got[0].event
	if e.Data.CredentialID != credID || e.Data.Tenant != ten || e.Data.RotationDueAt == nil || !e.Data.RotationDueAt.Equal(due) || e.Data.Actor.Subject != credgate.SystemSubject {
		t.Fatalf("rotation_due: %+v", e.Data)
	}
	// The monitor's metrics count it as due.
	eventually(t, 10*time.Second, "the due bucket in the metrics", func() bool {
		for _, x := range []*testAPI{a, b} {
			if strings.Contains(x.metricsText(), `credgate_credentials_rotation{bucket="due",tenant="other"} 1`) {
				return true
			}
		}
		return false
	})
	// A week on it is overdue: one notice more.
	c.advance(7 * 24 * time.Hour)
	eventually(t, 15*time.Second, "the rotation_overdue notice", func() bool { return len(rec.events(credgate.EventRotationOverdue)) == 1 })
	time.Sleep(time.Second)
	if len(rec.events(credgate.EventRotationDue)) != 1 || len(rec.events(credgate.EventRotationOverdue)) != 1 {
		t.Fatal("a notice was sent twice")
	}
	rec.check()
}

// A rotation through the example rotator, end to end on two replicas: the
// provider mints a key, credgate tests it, serves it, and the old key is
// revoked at the provider; each step is called once, and five concurrent
// triggers on both replicas make one rotation.
func TestRotationThroughARotatorEndToEnd(t *testing.T) {
	var c clock
	a, b := replicas(t, &c)
	s := setUpRotation(t, a, 5, nil)
	rec := startReceiver(t, 0)
	rec.subscribe(a, s.tok, credgate.EventRotated, credgate.EventRotationFailed)
	// The example refuses an unsigned call (counted as no step's).
	if res, err := http.Post(s.rot.url, "application/json", strings.NewReader(`{"type":"rotation.create"}`)); err != nil || res.StatusCode != 401 {
		t.Fatalf("an unsigned call: %v %v", res, err)
	}

	var wg sync.WaitGroup
	ids := make([]string, 5)
	for i := range ids {
		wg.Go(func() {
			res := []*testAPI{a, b}[i%2].do("POST", "/api/v1/credentials/"+s.cred+"/rotate", s.tok, map[string]any{"via": "rotator"})
			if res.Status != http.StatusAccepted {
				t.Errorf("rotate via rotator: %d %s", res.Status, res.Raw)
				return
			}
			noSecrets(t, res, s.key)
			rot, _ := res.data()["rotation"].(map[string]any)
			ids[i], _ = rot["id"].(string)
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id == "" || id != ids[0] {
			t.Fatalf("concurrent triggers made more than one rotation: %v", ids)
		}
	}
	eventually(t, 20*time.Second, "the rotation to succeed", func() bool { return s.rotation(t, a)["state"] == credgate.RotationSucceeded })
	time.Sleep(time.Second) // both monitors pass again: nothing more is called
	for _, step := range []string{credgate.StepCreate, credgate.StepTest, credgate.StepFinish} {
		if n := s.rot.count(step); n != 1 {
			t.Errorf("step %s called %d times", step, n)
		}
	}
	newKey := s.apiKey(t, b)
	secret(newKey)
	if newKey == s.key || !s.rot.provider.Live(newKey) || s.rot.provider.Live(s.key) || s.rot.provider.Minted() != 1 {
		t.Fatalf("served %q: live at the provider %v; the old key still live: %v; minted %d", newKey, s.rot.provider.Live(newKey), s.rot.provider.Live(s.key), s.rot.provider.Minted())
	}
	st := s.rotation(t, a)
	if st["id"] != ids[0] || st["trigger"] != credgate.TriggerRequest || st["fromVersion"] != 1.0 || st["toVersion"] != 2.0 || st["step"] != credgate.StepFinish {
		t.Fatalf("rotation status: %v", st)
	}
	// The old values end at once (no keepPrevious): a reader cannot ask
	// for them.
	old := a.do("GET", "/api/v1/credentials/stripe?credentialId="+s.cred+"&version=1", token(t, "app", s.ten, "credential_reader"), nil)
	if old.Status == 200 {
		t.Fatalf("the previous values are still served: %s", old.Raw)
	}
	eventually(t, 10*time.Second, "credential.rotated", func() bool { return len(rec.events(credgate.EventRotated)) == 1 })
	time.Sleep(500 * time.Millisecond)
	if got := rec.events(credgate.EventRotated); len(got) != 1 || got[0].event.Data.Version != 2 || strings.Contains(got[0].raw, newKey) {
		t.Fatalf("rotated events: %v", got)
	}
	if n := len(rec.events(credgate.EventRotationFailed)); n != 0 {
		t.Fatalf("%d rotation_failed", n)
	}
	rec.check()
	if m := a.metricsText() + b.metricsText(); !strings.Contains(m, `credgate_rotation_steps_total{outcome="ok",step="create"} 1`) {
		t.Fatalf("no step metrics:\n%s", grepLines(m, "credgate_rotation_steps_total"))
	}
	// A status the credential shows wrongly (its write failed) is shown
	// again from the rotation's record by the next pass; nothing is called.
	stale := credgate.RotationStatus{ID: ids[0], Rotator: s.rotatorID, Trigger: credgate.TriggerRequest, State: credgate.RotationRunning, Step: credgate.StepTest, StartedAt: time.Now(), UpdatedAt: time.Now(), FromVersion: 1}
	path := policy.Path(s.ten, policy.FolderCredentials, "stripe/"+s.cred)
	if err := a.root.KVv2("credgate").PatchMetadata(context.Background(), path, api.KVMetadataPatchInput{CustomMetadata: map[string]any{"rotation": stale.Encode()}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the status shown again", func() bool { return s.rotation(t, a)["state"] == credgate.RotationSucceeded })
	if s.rot.count(credgate.StepTest) != 1 || s.rot.count(credgate.StepCreate) != 1 {
		t.Fatal("a stale status made the rotator be called again")
	}
}

// With a migration period the previous key stays servable and is revoked
// at the provider only after its previousRevokeAt, never before.
func TestFinishWaitsForThePreviousRevokeAt(t *testing.T) {
	var c clock
	a, _ := replicas(t, &c)
	s := setUpRotation(t, a, 5, map[string]any{"rotationPolicy": map[string]any{"every": "90d", "keepPrevious": "2h"}})
	wantEnvelope(t, s.rotate(t, a), http.StatusAccepted)
	eventually(t, 20*time.Second, "the promotion", func() bool { return s.rotation(t, a)["state"] == credgate.RotationWaiting })
	time.Sleep(1500 * time.Millisecond) // passes of the monitor: finish is not due
	if n := s.rot.count(credgate.StepFinish); n != 0 || !s.rot.provider.Live(s.key) {
		t.Fatalf("finish called %d times before previousRevokeAt; old key live: %v", n, s.rot.provider.Live(s.key))
	}
	d := s.described(t, a)
	if d["previousVersion"] != 1.0 || d["previousRevokeAt"] == nil || s.rotation(t, a)["nextAttemptAt"] == nil {
		t.Fatalf("the migration period: %v", d)
	}
	// The old key is still served to a reader who asks for it.
	old := wantEnvelope(t, a.do("GET", "/api/v1/credentials/stripe?credentialId="+s.cred+"&version=1", s.tok, nil), 200)
	if old["apiKey"] != s.key {
		t.Fatalf("version 1 serves %v", old["apiKey"])
	}
	c.advance(3 * time.Hour)
	eventually(t, 20*time.Second, "finish after previousRevokeAt", func() bool { return s.rotation(t, a)["state"] == credgate.RotationSucceeded })
	if s.rot.count(credgate.StepFinish) != 1 || s.rot.provider.Live(s.key) {
		t.Fatalf("finish %d; old key live %v", s.rot.count(credgate.StepFinish), s.rot.provider.Live(s.key))
	}
}

// A replica that dies between create and promotion (here: while the
// rotator tests the new key) leaves the rotation to the other, which
// resumes at the step it stood at: no second create, the key create
// minted is the one served.
func TestAKilledReplicaResumesWithoutASecondCreate(t *testing.T) {
	var c clock
	a, b := replicas(t, &c)
	s := setUpRotation(t, a, 10, nil)
	held := make(chan struct{})
	release := make(chan struct{})
	s.rot.setFault(func(w http.ResponseWriter, step string, n int) bool {
		if step == credgate.StepTest && n == 1 {
			close(held)
			<-release // until the replica calling is gone
			http.Error(w, "too late", http.StatusServiceUnavailable)
			return true
		}
		return false
	})
	wantEnvelope(t, s.rotate(t, a), http.StatusAccepted)
	select {
	case <-held:
	case <-time.After(20 * time.Second):
		t.Fatal("the rotator's test was not called")
	}
	// The lease names the replica driving the rotation: stop it.
	lease, err := a.rootRead(policy.Path(s.ten, policy.FolderCredLocks, s.cred+".rotation"))
	if err != nil {
		t.Fatal(err)
	}
	driving, survivor := a, b
	if lease["holder"] == b.holder {
		driving, survivor = b, a
	} else if lease["holder"] != a.holder {
		t.Fatalf("lease holder %v is neither replica", lease["holder"])
	}
	go func() { time.Sleep(200 * time.Millisecond); close(release) }()
	driving.stop()
	if st := s.rotation(t, survivor); st["step"] != credgate.StepTest || st["state"] != credgate.RotationRunning {
		t.Fatalf("after the replica stopped: %v", st)
	}
	eventually(t, 30*time.Second, "the surviving replica to finish the rotation", func() bool {
		return s.rotation(t, survivor)["state"] == credgate.RotationSucceeded
	})
	if n := s.rot.count(credgate.StepCreate); n != 1 || s.rot.provider.Minted() != 1 {
		t.Fatalf("create called %d times, %d keys minted", n, s.rot.provider.Minted())
	}
	newKey := secret(s.apiKey(t, survivor))
	if !s.rot.provider.Live(newKey) || s.rot.provider.Live(s.key) {
		t.Fatalf("served key live %v, old key live %v", s.rot.provider.Live(newKey), s.rot.provider.Live(s.key))
	}
}

// A test the rotator refuses (the new key does not work) fails the
// rotation at once: version 1 stays current, the pending values are gone
// from Vault, finish is never called, and credential.rotation_failed says
// why.
func TestARefusedTestKeepsTheCurrentValues(t *testing.T) {
	var c clock
	a, _ := replicas(t, &c)
	s := setUpRotation(t, a, 5, nil)
	rec := startReceiver(t, 0)
	rec.subscribe(a, s.tok, credgate.EventRotationFailed, credgate.EventRotated)
	s.rot.setFault(func(w http.ResponseWriter, step string, n int) bool {
		if step == credgate.StepTest {
			http.Error(w, "the new key does not work", http.StatusUnprocessableEntity)
			return true
		}
		return false
	})
	wantEnvelope(t, s.rotate(t, a), http.StatusAccepted)
	eventually(t, 20*time.Second, "the rotation to fail", func() bool { return s.rotation(t, a)["state"] == credgate.RotationFailed })
	st := s.rotation(t, a)
	if st["step"] != credgate.StepTest || !strings.Contains(st["lastError"].(string), "refused") || !strings.Contains(st["lastError"].(string), "422") {
		t.Fatalf("rotation: %v", st)
	}
	if got := s.apiKey(t, a); got != s.key || s.described(t, a)["version"] != 1.0 {
		t.Fatalf("served %q at version %v", got, s.described(t, a)["version"])
	}
	stored, err := a.rootRead(policy.Path(s.ten, policy.FolderRotations, "stripe/"+s.cred))
	if err != nil || stored["state"] != credgate.RotationFailed {
		t.Fatalf("stored rotation: %v %v", stored, err)
	}
	if _, ok := stored["pending"]; ok {
		t.Fatalf("the pending values are kept after a refused test: %v", stored)
	}
	eventually(t, 10*time.Second, "credential.rotation_failed", func() bool { return len(rec.events(credgate.EventRotationFailed)) == 1 })
	e := rec.events(credgate.EventRotationFailed)[0].event
	if e.Data.Rotation == nil || e.Data.Rotation.State != credgate.RotationFailed || e.Data.CredentialID != s.cred || !strings.Contains(e.Data.Reason, "422") {
		t.Fatalf("rotation_failed: %+v", e.Data)
	}
	time.Sleep(500 * time.Millisecond)
	if s.rot.count(credgate.StepFinish) != 0 || len(rec.events(credgate.EventRotated)) != 0 || !s.rot.provider.Live(s.key) {
		t.Fatal("a refused rotation went on")
	}
	// Another rotation may be asked for; it starts afresh.
	s.rot.setFault(nil)
	res := wantEnvelope(t, s.rotate(t, a), http.StatusAccepted)
	if rot := res["rotation"].(map[string]any); rot["id"] == st["id"] || rot["state"] != credgate.RotationRunning {
		t.Fatalf("a new request after a failure: %v", rot)
	}
	eventually(t, 20*time.Second, "the second rotation", func() bool { return s.rotation(t, a)["state"] == credgate.RotationSucceeded })
	rec.check()
}

// A rotator that answers 500, then garbage, then too slowly is retried
// with backoff; each failure shows in the credential's rotation, with the
// next attempt after the pause; then the rotation completes with the
// values of the create that answered. (The pauses are of the test's clock,
// 20 minutes doubled up to the hour, so that each failure stays visible
// until the test moves on.)
func TestAFailingRotatorIsRetriedAndVisible(t *testing.T) {
	var c clock
	a, _ := replicas(t, &c, func(m *monitorSetup) { m.rotationBackoff = 20 * time.Minute })
	s := setUpRotation(t, a, 1, nil)
	s.rot.setFault(func(w http.ResponseWriter, step string, n int) bool {
		if step != credgate.StepCreate {
			return false
		}
		switch n {
		case 1:
			http.Error(w, "provider down", http.StatusInternalServerError)
		case 2:
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"values": "not a map"`))
		case 3:
			time.Sleep(1500 * time.Millisecond) // past the rotator's 1 s timeout
			w.WriteHeader(http.StatusOK)
		default:
			return false
		}
		return true
	})
	wantEnvelope(t, s.rotate(t, a), http.StatusAccepted)
	for i, want := range []string{"create: the rotator answered 500", "create: the answer to create is not JSON", "create: the rotator did not answer within 1s"} {
		var st map[string]any
		eventually(t, 20*time.Second, want, func() bool {
			st = s.rotation(t, a)
			return st["attempts"] == float64(i+1)
		})
		pause := min(time.Duration(1<<i)*20*time.Minute, time.Hour)
		next, _ := time.Parse(time.RFC3339, st["nextAttemptAt"].(string))
		if st["lastError"] != want || st["state"] != credgate.RotationRunning || next.Before(c.now().Add(pause-time.Minute)) {
			t.Fatalf("after failure %d: %v", i+1, st)
		}
		time.Sleep(500 * time.Millisecond) // passes of the monitor: not retried before its time
		if n := s.rot.count(credgate.StepCreate); n != i+1 {
			t.Fatalf("create called %d times before the pause ended", n)
		}
		c.advance(pause + time.Minute)
	}
	eventually(t, 20*time.Second, "the rotation to succeed", func() bool { return s.rotation(t, a)["state"] == credgate.RotationSucceeded })
	if n := s.rot.count(credgate.StepCreate); n != 4 {
		t.Fatalf("create called %d times, want 4", n)
	}
	if got := secret(s.apiKey(t, a)); !s.rot.provider.Live(got) || got == s.key {
		t.Fatalf("served %q", got)
	}
	if m := a.metricsText(); !strings.Contains(m, `credgate_rotation_steps_total{outcome="retry",step="create"} 3`) {
		t.Fatalf("retries not counted:\n%s", grepLines(m, "credgate_rotation_steps_total"))
	}
}

// The rotator routes: integration_admin only, validated, a credential may
// name only a rotator of its tenant, and rotate via rotator asks for one.
func TestRotatorRoutesAndChecks(t *testing.T) {
	var c clock
	a, _ := replicas(t, &c)
	s := setUpRotation(t, a, 5, nil)
	viewer := token(t, "vic", s.ten, "integration_viewer")
	wantEnvelopeError(t, a.do("GET", "/api/v1/rotators", viewer, nil), 403, credgate.EInsufficientPermissions)
	wantEnvelopeError(t, a.do("POST", "/api/v1/rotators", s.tok, map[string]any{"url": "ftp://x"}), 400, credgate.EValidationFailed)
	wantEnvelopeError(t, a.do("POST", "/api/v1/rotators", s.tok, map[string]any{"url": s.rot.url, "timeoutSeconds": 500}), 400, credgate.EValidationFailed)
	wantEnvelopeError(t, a.do("GET", "/api/v1/rotators/rot_nope", s.tok, nil), 404, credgate.ENotFound)
	list := a.do("GET", "/api/v1/rotators", s.tok, nil)
	if wantEnvelope(t, list, 200); len(list.Body["data"].([]any)) != 1 || strings.Contains(string(list.Raw), "whsec_") {
		t.Fatalf("list: %s", list.Raw)
	}
	patched := a.do("PATCH", "/api/v1/rotators/"+s.rotatorID, s.tok, map[string]any{"timeoutSeconds": 7})
	if wantEnvelope(t, patched, 200)["timeoutSeconds"] != 7.0 || strings.Contains(string(patched.Raw), "whsec_") {
		t.Fatalf("patch: %s", patched.Raw)
	}

	// A credential names only a rotator its tenant has.
	other := credgate.NewRotatorID()
	wantEnvelopeError(t, a.do("PATCH", "/api/v1/credentials/"+s.cred, s.tok, map[string]any{"rotator": other}), 400, credgate.EValidationFailed)
	wantEnvelopeError(t, a.do("PATCH", "/api/v1/credentials/"+s.cred, s.tok, map[string]any{"rotationPolicy": map[string]any{"every": "often"}}), 400, credgate.EValidationFailed)
	wantEnvelopeError(t, a.do("PATCH", "/api/v1/credentials/"+s.cred, s.tok, map[string]any{"rotationPolicy": map[string]any{"every": "90d", "when": "x"}}), 400, credgate.EValidationFailed)
	// via takes nothing else, and only "rotator".
	wantEnvelopeError(t, a.do("POST", "/api/v1/credentials/"+s.cred+"/rotate", s.tok, map[string]any{"via": "rotator", "apiKey": "x"}), 400, credgate.EValidationFailed)
	wantEnvelopeError(t, a.do("POST", "/api/v1/credentials/"+s.cred+"/rotate", s.tok, map[string]any{"via": "magic"}), 400, credgate.EValidationFailed)
	// A stale If-Match starts nothing.
	wantEnvelopeError(t, a.do("POST", "/api/v1/credentials/"+s.cred+"/rotate", s.tok, map[string]any{"via": "rotator"}, "If-Match", `"7"`), 409, credgate.EVersionConflict)
	// A credential without a rotator cannot be rotated through one.
	none := a.mustCreateCredential(s.tok, map[string]any{"integrationId": "stripe", "credentialName": "plain", "authType": "api_key", "apiKey": secret("k_" + randHex(6))})["id"].(string)
	wantEnvelopeError(t, a.do("POST", "/api/v1/credentials/"+none+"/rotate", s.tok, map[string]any{"via": "rotator"}), 400, credgate.EValidationFailed)
	if s.rot.count(credgate.StepCreate) != 0 {
		t.Fatal("a refused request called the rotator")
	}

	// A rotation through a rotator deleted meanwhile fails, and says so.
	if res := a.do("DELETE", "/api/v1/rotators/"+s.rotatorID, s.tok, nil); res.Status != 204 {
		t.Fatalf("delete: %d %s", res.Status, res.Raw)
	}
	wantEnvelope(t, s.rotate(t, a), http.StatusAccepted)
	eventually(t, 10*time.Second, "the rotation to fail", func() bool { return s.rotation(t, a)["state"] == credgate.RotationFailed })
	if e := s.rotation(t, a)["lastError"].(string); !strings.Contains(e, "no longer exists") {
		t.Fatalf("lastError: %s", e)
	}
	// Deleting the credential removes its rotation record.
	if res := a.do("DELETE", "/api/v1/credentials/"+s.cred, s.tok, nil); res.Status != 200 {
		t.Fatalf("delete credential: %d %s", res.Status, res.Raw)
	}
	if rec, err := a.rootRead(policy.Path(s.ten, policy.FolderRotations, "stripe/"+s.cred)); err == nil && rec != nil {
		t.Fatalf("the rotation record outlived its credential: %v", rec)
	}
}

// A credential with a rotator and a policy is rotated by itself when due:
// the monitor starts the rotation (trigger policy), once.
func TestADueRotationRunsThroughItsRotator(t *testing.T) {
	var c clock
	a, b := replicas(t, &c)
	s := setUpRotation(t, a, 5, map[string]any{"rotationPolicy": map[string]any{"every": "90d"}})
	time.Sleep(time.Second) // passes before the due date start nothing
	if n := s.rot.count(credgate.StepCreate); n != 0 {
		t.Fatalf("create called %d times before the due date", n)
	}
	c.advance(91 * 24 * time.Hour)
	eventually(t, 20*time.Second, "the policy's rotation", func() bool { return s.rotation(t, b)["state"] == credgate.RotationSucceeded })
	st := s.rotation(t, b)
	// (The test's monitors run 91 days ahead of the store's clock, which
	// stamps lastRotatedAt: the credential stays due to them. Naming no
	// rotator stops them starting another.)
	wantEnvelope(t, a.do("PATCH", "/api/v1/credentials/"+s.cred, s.tok, map[string]any{"rotator": ""}), 200)
	if st["trigger"] != credgate.TriggerPolicy || s.rot.count(credgate.StepTest) < 1 {
		t.Fatalf("rotation: %v", st)
	}
	if got := secret(s.apiKey(t, a)); got == s.key || !s.rot.provider.Live(got) || s.rot.provider.Live(s.key) {
		t.Fatalf("served %q", got)
	}
	if d := s.described(t, a); d["lastRotatedAt"] == nil {
		t.Fatalf("no lastRotatedAt: %v", d)
	}
}

package webhook_test

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/outbound"
	"github.com/credgate/credgate/webhook"
)

// memStore keeps outboxes, subscriptions and delivery logs in memory, with
// the store's claim rule (check-and-set on a version): the dispatcher's
// logic is tested here; the Vault store's records are tested in httpapi.
type memStore struct {
	mu        sync.Mutex
	hooks     []*credgate.Webhook
	outbox    map[string]credgate.Outgoing // by event id; Version counts writes
	logs      map[string][]credgate.Delivery
	failing   map[string]time.Time // by webhook: since every attempt failed
	failFirst int                  // publishes that fail before one succeeds
	publishes int
	hookReads int // reads of the tenant's webhooks
	// standing are the changes the records show were made (EventStands).
	standing map[string]bool
}

func newMemStore(hooks ...*credgate.Webhook) *memStore {
	return &memStore{hooks: hooks, outbox: map[string]credgate.Outgoing{}, logs: map[string][]credgate.Delivery{}, failing: map[string]time.Time{}}
}

var errVaultDown = errors.New("vault is down")

func (s *memStore) Publish(_ context.Context, o credgate.Outgoing) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.publishes++
	if s.failFirst > 0 {
		s.failFirst--
		return false, errVaultDown
	}
	if _, ok := s.outbox[o.Event.ID]; ok {
		return false, nil
	}
	o.Version = 1
	s.outbox[o.Event.ID] = o
	return true, nil
}

func (s *memStore) Tenants(context.Context) ([]string, error) { return []string{"acme"}, nil }

func (s *memStore) Outbox(context.Context, string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for id := range s.outbox {
		ids = append(ids, id)
	}
	return ids, nil
}

func (s *memStore) ClaimEvent(_ context.Context, _, id, holder string, c credgate.Claim) (*credgate.Outgoing, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.outbox[id]
	if !ok || !c.Open(&o) {
		return nil, nil
	}
	o.ClaimedBy, o.ClaimedUntil = holder, c.Until
	o.Version++
	targets := map[string]*credgate.Target{}
	for k, t := range o.Targets {
		copied := *t
		targets[k] = &copied
	}
	o.Targets = targets
	s.outbox[id] = o
	out := o
	return &out, nil
}

func (s *memStore) SaveEvent(_ context.Context, o *credgate.Outgoing) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.outbox[o.Event.ID]; !ok || cur.Version != o.Version {
		return credgate.Errorf(credgate.EVersionConflict, "the claim was lost")
	}
	if o.Done() {
		delete(s.outbox, o.Event.ID)
		return nil
	}
	next := *o
	next.ClaimedBy, next.Version = "", o.Version+1
	s.outbox[o.Event.ID] = next
	return nil
}

func (s *memStore) TenantWebhooks(context.Context, string) ([]*credgate.Webhook, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hookReads++
	var out []*credgate.Webhook
	for _, w := range s.hooks {
		copied := *w
		out = append(out, &copied)
	}
	return out, nil
}

func (s *memStore) RecordDelivery(_ context.Context, _, webhook string, d credgate.Delivery) (time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.logs[webhook] = append(s.logs[webhook], d)
	switch _, ok := s.failing[webhook]; {
	case d.Status == credgate.DeliveryDelivered:
		delete(s.failing, webhook)
	case !ok:
		s.failing[webhook] = d.At
	}
	return s.failing[webhook], nil
}

func (s *memStore) DisableWebhook(_ context.Context, _, id, reason string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, w := range s.hooks {
		if w.ID == id {
			copied := *w
			was := copied.Disable(reason, time.Now())
			s.hooks[i] = &copied
			return was, nil
		}
	}
	return false, credgate.Errorf(credgate.ENotFound, "no such webhook")
}

func (s *memStore) hook(id string) credgate.Webhook {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range s.hooks {
		if w.ID == id {
			return *w
		}
	}
	return credgate.Webhook{}
}

func (s *memStore) ConfirmEvent(_ context.Context, final credgate.Event) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.outbox[final.ID]
	if !ok || !o.Pending {
		return false, nil
	}
	o.Event, o.Pending = final, false
	o.Version++
	s.outbox[final.ID] = o
	return true, nil
}

func (s *memStore) WithdrawEvent(_ context.Context, _, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o, ok := s.outbox[id]; ok && o.Pending {
		delete(s.outbox, id)
	}
	return nil
}

func (s *memStore) EventStands(_ context.Context, o *credgate.Outgoing) (credgate.Event, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := o.Event
	e.Data.Version = 7 // what the record says
	return e, s.standing[o.Change], nil
}

func (s *memStore) log(webhook string) []credgate.Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]credgate.Delivery(nil), s.logs[webhook]...)
}

func (s *memStore) waiting() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.outbox)
}

// receiver verifies every request with the Standard Webhooks library and
// answers failWith (default 500) to the first failFirst.
type receiver struct {
	*httptest.Server
	verifier  *standardwebhooks.Webhook
	failFirst int
	failWith  int
	events    []credgate.Event

	mu    sync.Mutex
	ids   []string // webhook-id of each request
	at    []time.Time
	bad   []string
	types []string
}

const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func startReceiver(t *testing.T, failFirst int) *receiver {
	t.Helper()
	v, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{verifier: v, failFirst: failFirst}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.ids = append(r.ids, req.Header.Get("webhook-id"))
		r.at = append(r.at, time.Now())
		if err := r.verifier.Verify(body, req.Header); err != nil {
			r.bad = append(r.bad, err.Error())
		}
		var e credgate.Event
		_ = json.Unmarshal(body, &e)
		r.types = append(r.types, e.Type)
		r.events = append(r.events, e)
		if len(r.ids) <= r.failFirst {
			w.WriteHeader(cmp.Or(r.failWith, 500))
			return
		}
		w.WriteHeader(204)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) calls() (ids []string, at []time.Time, bad []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.ids...), append([]time.Time(nil), r.at...), append([]string(nil), r.bad...)
}

func hook(url string, types ...string) *credgate.Webhook {
	return &credgate.Webhook{ID: "wh_1", URL: url, EventTypes: types, Enabled: true, Secret: secret, CreatedAt: time.Now().Add(-time.Hour)}
}

func dispatcher(t *testing.T, st webhook.Store, allow []string, tune func(*webhook.Options)) (*webhook.Dispatcher, *observer.ObservedLogs) {
	t.Helper()
	g, err := outbound.New(outbound.Options{Allow: allow})
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.InfoLevel)
	o := webhook.Options{Store: st, Client: g.Client(2 * time.Second), Logger: zap.New(core), Holder: "replica-" + t.Name(),
		Timeout: 2 * time.Second, Backoff: 100 * time.Millisecond, MaxBackoff: time.Second, Workers: 2}
	if tune != nil {
		tune(&o)
	}
	d, err := webhook.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return d, logs
}

func event(typ string) credgate.Event {
	return credgate.Event{ID: "evt_" + strings.ReplaceAll(time.Now().Format("150405.000000000"), ".", ""), Type: typ, Timestamp: time.Now().UTC(),
		Data: credgate.EventData{Tenant: "acme", IntegrationID: "stripe", CredentialID: "cred-1"}}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("not within 10s: %s", what)
		}
	}
}

// TestADeliveryIsSignedAndLogged: a subscribed event reaches the receiver
// once, signed as Standard Webhooks says (verified with its library), and
// the delivery log says so; an event nobody subscribed to is not kept.
func TestADeliveryIsSignedAndLogged(t *testing.T) {
	r := startReceiver(t, 0)
	st := newMemStore(hook(r.URL, credgate.EventRotated))
	d, _ := dispatcher(t, st, []string{"127.0.0.1/32"}, nil)
	if err := d.Publish(context.Background(), event(credgate.EventCreated)); err != nil || st.waiting() != 0 {
		t.Fatalf("an event nobody wants: %v, %d kept", err, st.waiting())
	}
	e := event(credgate.EventRotated)
	if err := d.Publish(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a delivered entry in the log", func() bool { l := st.log("wh_1"); return len(l) == 1 && l[0].Status == credgate.DeliveryDelivered })
	ids, _, bad := r.calls()
	if len(ids) != 1 || ids[0] != e.ID || len(bad) != 0 {
		t.Fatalf("received %v (want once, webhook-id %s); verification failures %v", ids, e.ID, bad)
	}
	if st.waiting() != 0 {
		t.Fatal("a delivered event stays in the outbox")
	}
}

// TestFailedAttemptsBackOffUntilDelivered: the receiver fails twice; the
// attempts come at growing intervals with the same webhook-id, and the
// log has retrying (with a next retry), retrying, delivered.
func TestFailedAttemptsBackOffUntilDelivered(t *testing.T) {
	r := startReceiver(t, 2)
	st := newMemStore(hook(r.URL, credgate.EventRotated))
	d, _ := dispatcher(t, st, []string{"127.0.0.1/32"}, nil)
	e := event(credgate.EventRotated)
	if err := d.Publish(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	eventually(t, "three attempts", func() bool { return len(st.log("wh_1")) == 3 })
	ids, at, _ := r.calls()
	if len(ids) != 3 || ids[0] != e.ID || ids[1] != e.ID || ids[2] != e.ID {
		t.Fatalf("webhook-ids %v; want %s three times", ids, e.ID)
	}
	if gap1, gap2 := at[1].Sub(at[0]), at[2].Sub(at[1]); gap1 < 100*time.Millisecond || gap2 < 200*time.Millisecond {
		t.Fatalf("attempts %s and %s apart; want at least the backoff, doubled", gap1, gap2)
	}
	log := st.log("wh_1")
	for i, want := range []string{credgate.DeliveryRetrying, credgate.DeliveryRetrying, credgate.DeliveryDelivered} {
		if log[i].Status != want || log[i].Attempt != i+1 || (log[i].NextRetryAt != nil) != (want == credgate.DeliveryRetrying) {
			t.Errorf("attempt %d: %+v; want %s", i+1, log[i], want)
		}
	}
}

// TestADeliveryGivesUpAfterMaxAttempts: the last attempt is failed,
// without a next retry, and nothing is sent after it.
func TestADeliveryGivesUpAfterMaxAttempts(t *testing.T) {
	r := startReceiver(t, 1000)
	st := newMemStore(hook(r.URL, credgate.EventRotated))
	d, _ := dispatcher(t, st, []string{"127.0.0.1/32"}, func(o *webhook.Options) { o.MaxAttempts = 2 })
	if err := d.Publish(context.Background(), event(credgate.EventRotated)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a failed attempt", func() bool { l := st.log("wh_1"); return len(l) == 2 && l[1].Status == credgate.DeliveryFailed })
	time.Sleep(500 * time.Millisecond)
	if ids, _, _ := r.calls(); len(ids) != 2 || st.waiting() != 0 {
		t.Fatalf("%d requests, %d waiting, after giving up; want 2 and none", len(ids), st.waiting())
	}
	if last := st.log("wh_1")[1]; last.NextRetryAt != nil || last.Error != "the receiver answered 500" {
		t.Fatalf("the last attempt: %+v", last)
	}
}

// TestARefusedReceiverIsNeverCalled: a receiver on an address the guard
// refuses gets nothing; the log says why without naming anything else.
func TestARefusedReceiverIsNeverCalled(t *testing.T) {
	r := startReceiver(t, 0)
	st := newMemStore(hook(r.URL, credgate.EventRotated))
	d, _ := dispatcher(t, st, nil, func(o *webhook.Options) { o.MaxAttempts = 1 })
	if err := d.Publish(context.Background(), event(credgate.EventRotated)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the refusal in the log", func() bool { return len(st.log("wh_1")) == 1 })
	if l := st.log("wh_1")[0]; !strings.HasPrefix(l.Error, "not sent: the URL is 127.0.0.1, a loopback address") {
		t.Fatalf("log: %+v", l)
	}
	if ids, _, _ := r.calls(); len(ids) != 0 {
		t.Fatalf("%d requests reached a refused receiver", len(ids))
	}
}

// TestOneClaimMakesOneAttempt: replicas trying the same event at once make
// one attempt between them.
func TestOneClaimMakesOneAttempt(t *testing.T) {
	r := startReceiver(t, 0)
	st := newMemStore(hook(r.URL, credgate.EventRotated))
	a, _ := dispatcher(t, st, []string{"127.0.0.1/32"}, func(o *webhook.Options) { o.Holder = "a" })
	b, _ := dispatcher(t, st, []string{"127.0.0.1/32"}, func(o *webhook.Options) { o.Holder = "b" })
	e := event(credgate.EventRotated)
	if _, err := st.Publish(context.Background(), credgate.Outgoing{Event: e, Targets: map[string]*credgate.Target{"wh_1": {}}}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	claimed := make([]bool, 8)
	for i := range claimed {
		d := a
		if i%2 == 1 {
			d = b
		}
		wg.Go(func() { claimed[i] = d.Deliver(context.Background(), "acme", e.ID) })
	}
	wg.Wait()
	n := 0
	for _, c := range claimed {
		if c {
			n++
		}
	}
	if ids, _, _ := r.calls(); len(ids) != 1 || n != 1 {
		t.Fatalf("%d claims and %d requests; want one of each", n, len(ids))
	}
}

// TestAnnounceNeverMakesTheCallerWait: when the store fails, Announce
// returns at once and keeps trying in the background; what still fails is
// logged as lost.
func TestAnnounceNeverMakesTheCallerWait(t *testing.T) {
	r := startReceiver(t, 0)
	st := newMemStore(hook(r.URL, credgate.EventRotated))
	st.failFirst = 2
	d, logs := dispatcher(t, st, []string{"127.0.0.1/32"}, nil)
	start := time.Now()
	d.Announce(context.Background(), event(credgate.EventRotated))
	if took := time.Since(start); took > 100*time.Millisecond {
		t.Fatalf("Announce took %s with a failing store", took)
	}
	eventually(t, "the event delivered after two failed publishes", func() bool { ids, _, _ := r.calls(); return len(ids) == 1 })
	if logs.FilterMessageSnippet("event is lost").Len() != 0 {
		t.Fatal("an event published on a retry was logged as lost")
	}

	st.mu.Lock()
	st.failFirst, st.publishes = 1000, 0
	st.mu.Unlock()
	d.Announce(context.Background(), event(credgate.EventRotated))
	eventually(t, "the loss logged", func() bool { return logs.FilterMessageSnippet("event is lost").Len() == 1 })
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.publishes != 3 {
		t.Fatalf("%d tries before giving up; want 3", st.publishes)
	}
}

// TestAnIntentIsSentOnlyWhenItsChangeStands: an event recorded before its
// change is not sent while pending; confirmed, it is sent at once with the
// final data and its first id; withdrawn, never. One whose request never
// came back is proven by the sweep after the grace: sent when the records
// show its change (with what the record says), dropped when not.
func TestAnIntentIsSentOnlyWhenItsChangeStands(t *testing.T) {
	r := startReceiver(t, 0)
	st := newMemStore(hook(r.URL, credgate.EventRotated, credgate.EventDeleted))
	st.standing = map[string]bool{}
	d, _ := dispatcher(t, st, []string{"127.0.0.1/32"}, func(o *webhook.Options) { o.PendingGrace = 300 * time.Millisecond })
	ctx := context.Background()

	confirmed, err := d.Intend(ctx, event(credgate.EventRotated), event(credgate.EventDeleted))
	if err != nil {
		t.Fatal(err)
	}
	if st.waiting() != 2 {
		t.Fatalf("%d recorded; want 2", st.waiting())
	}
	if n, _ := d.Sweep(ctx); n != 2 {
		t.Fatalf("the sweep queued %d events; want the 2 pending", n)
	}
	d.Idle(ctx)
	if ids, _, _ := r.calls(); len(ids) != 0 || st.waiting() != 2 {
		t.Fatalf("within their grace the sweep sent %d pending events and left %d", len(ids), st.waiting())
	}
	final := event(credgate.EventRotated)
	final.Data.Version = 3
	confirmed.Confirm(ctx, final)
	confirmed.Withdraw(ctx) // the deletion did not happen
	eventually(t, "the confirmed event delivered", func() bool { ids, _, _ := r.calls(); return len(ids) == 1 })
	if st.waiting() != 0 {
		t.Fatalf("%d left in the outbox", st.waiting())
	}

	// Two requests that never came back: one change stands, one not.
	made, _ := d.Intend(ctx, event(credgate.EventRotated))
	notMade, _ := d.Intend(ctx, event(credgate.EventRotated))
	st.standing[credgate.ChangeFrom(made.Context(ctx))] = true
	_ = notMade
	time.Sleep(350 * time.Millisecond)
	if n, err := d.Sweep(ctx); err != nil || n != 2 {
		t.Fatalf("the sweep after the grace: %d, %v", n, err)
	}
	eventually(t, "the standing change announced", func() bool { ids, _, _ := r.calls(); return len(ids) == 2 })
	time.Sleep(100 * time.Millisecond)
	ids, _, bad := r.calls()
	if len(ids) != 2 || ids[0] == ids[1] || len(bad) != 0 || st.waiting() != 0 {
		t.Fatalf("received %v (bad %v), %d left", ids, bad, st.waiting())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.types[1] != credgate.EventRotated {
		t.Fatalf("types %v", r.types)
	}
}

// TestAReceiverThatIsGoneOrKeepsFailingIsDisabled: a receiver that answers
// 410 Gone is disabled after that one attempt; one that fails every attempt
// for DisableAfter is disabled then, and nothing more is sent to it. Each
// time the tenant's other subscription is told once (webhook.disabled) with
// the reason, and the metric hook counts it.
func TestAReceiverThatIsGoneOrKeepsFailingIsDisabled(t *testing.T) {
	gone, failing, owner := startReceiver(t, 1000), startReceiver(t, 1000), startReceiver(t, 0)
	gone.failWith = http.StatusGone
	hooks := []*credgate.Webhook{hook(gone.URL, credgate.EventRotated), hook(failing.URL, credgate.EventRotated), hook(owner.URL, credgate.EventWebhookDisabled)}
	hooks[0].ID, hooks[1].ID, hooks[2].ID = "wh_gone", "wh_failing", "wh_owner"
	st := newMemStore(hooks...)
	var mu sync.Mutex
	var disabled []string
	d, logs := dispatcher(t, st, []string{"127.0.0.1/32"}, func(o *webhook.Options) {
		o.DisableAfter = 700 * time.Millisecond
		o.OnDisabled = func(kind string) { mu.Lock(); disabled = append(disabled, kind); mu.Unlock() }
	})
	ctx := context.Background()
	if err := d.Publish(ctx, event(credgate.EventRotated)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the gone receiver disabled", func() bool { return !st.hook("wh_gone").Enabled })
	if w := st.hook("wh_gone"); !strings.Contains(w.DisabledReason, "410") || w.DisabledAt == nil {
		t.Fatalf("disabled with %q at %v", w.DisabledReason, w.DisabledAt)
	}
	eventually(t, "the failing receiver disabled", func() bool { return !st.hook("wh_failing").Enabled })
	if w := st.hook("wh_failing"); !strings.Contains(w.DisabledReason, "every delivery failed since") {
		t.Fatalf("disabled with %q", w.DisabledReason)
	}
	eventually(t, "the owner told twice", func() bool { ids, _, _ := owner.calls(); return len(ids) == 2 })
	goneCalls, _, _ := gone.calls()
	failedCalls, _, _ := failing.calls()
	if len(goneCalls) != 1 || len(failedCalls) < 3 {
		t.Fatalf("the gone receiver was called %d times (want 1), the failing one %d (want several)", len(goneCalls), len(failedCalls))
	}
	// Nothing more is sent to either, even to a new event.
	if err := d.Publish(ctx, event(credgate.EventRotated)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	d.Idle(ctx)
	if again, _, _ := failing.calls(); len(again) != len(failedCalls) {
		t.Fatalf("%d attempts after the failing receiver was disabled", len(again)-len(failedCalls))
	}
	if again, _, _ := gone.calls(); len(again) != 1 {
		t.Fatalf("%d attempts after the gone receiver was disabled", len(again)-1)
	}
	owner.mu.Lock()
	told := map[string]string{}
	for _, e := range owner.events {
		told[e.Data.WebhookID] = e.Type + ": " + e.Data.Reason
	}
	owner.mu.Unlock()
	if !strings.Contains(told["wh_gone"], "webhook.disabled: the receiver answered 410") || !strings.Contains(told["wh_failing"], "webhook.disabled: every delivery failed") {
		t.Fatalf("the owner was told %v", told)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(disabled) != 2 || logs.FilterMessage("webhook: a subscription was disabled").Len() != 2 {
		t.Fatalf("metric hook told %v; %d log lines", disabled, logs.FilterMessage("webhook: a subscription was disabled").Len())
	}
}

// TestPublishAllReadsTheWebhooksOnce: a batch of notices costs one read of
// the tenant's webhooks; each wanted event is kept and delivered once, an
// unwanted one is not kept, and a failed write is that event's error only.
func TestPublishAllReadsTheWebhooksOnce(t *testing.T) {
	r := startReceiver(t, 0)
	st := newMemStore(hook(r.URL, credgate.EventExpiring))
	st.failFirst = 1
	d, _ := dispatcher(t, st, []string{"127.0.0.1/32"}, nil)
	var events []credgate.Event
	for i := range 12 {
		e := event(credgate.EventExpiring)
		e.ID = fmt.Sprintf("evt_batch_%d", i)
		events = append(events, e)
	}
	unwanted := event(credgate.EventCreated)
	unwanted.ID = "evt_unwanted"
	events = append(events, unwanted)
	errs := d.PublishAll(context.Background(), events)
	failed := 0
	for _, err := range errs {
		if err != nil {
			failed++
		}
	}
	if failed != 1 || errs[len(errs)-1] != nil {
		t.Fatalf("errors %v: want exactly one failed write, and none for the unwanted event", errs)
	}
	st.mu.Lock()
	reads := st.hookReads
	st.mu.Unlock()
	if reads != 1 {
		t.Fatalf("%d reads of the tenant's webhooks for one batch, want 1", reads)
	}
	eventually(t, "the 11 published notices delivered", func() bool { ids, _, _ := r.calls(); return len(ids) == 11 })
	ids, _, bad := r.calls()
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] || id == unwanted.ID {
			t.Fatalf("delivered %v: %s twice or unwanted", ids, id)
		}
		seen[id] = true
	}
	if len(bad) != 0 {
		t.Fatalf("verification failures %v", bad)
	}
}

package webhook

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"go.uber.org/zap"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/fairqueue"
	"github.com/credgate/credgate/outbound"
)

// Store is what delivery needs of the store: the tenants' outboxes, their
// subscriptions and delivery logs (vaultstore.Store).
type Store interface {
	Publish(ctx context.Context, o credgate.Outgoing) (bool, error)
	Tenants(ctx context.Context) ([]string, error)
	Outbox(ctx context.Context, tenant string) ([]string, error)
	ClaimEvent(ctx context.Context, tenant, id, holder string, c credgate.Claim) (*credgate.Outgoing, error)
	SaveEvent(ctx context.Context, o *credgate.Outgoing) error
	TenantWebhooks(ctx context.Context, tenant string) ([]*credgate.Webhook, error)
	// RecordDelivery logs an attempt and returns since when every attempt
	// to the webhook failed (zero: this one delivered).
	RecordDelivery(ctx context.Context, tenant, webhook string, d credgate.Delivery) (time.Time, error)
	// DisableWebhook disables a subscription whose receiver cannot take
	// events, and reports whether it was enabled.
	DisableWebhook(ctx context.Context, tenant, id, reason string) (bool, error)
	// The events recorded before their change (Intend).
	ConfirmEvent(ctx context.Context, final credgate.Event) (bool, error)
	WithdrawEvent(ctx context.Context, tenant, id string) error
	EventStands(ctx context.Context, o *credgate.Outgoing) (credgate.Event, bool, error)
}

// Defaults of Options.
const (
	DefaultTimeout     = 10 * time.Second
	DefaultBackoff     = 10 * time.Second
	DefaultMaxBackoff  = 30 * time.Minute
	DefaultRetryFor    = 24 * time.Hour
	DefaultMaxAttempts = 15
	DefaultWorkers     = 4
)

// Options configures a Dispatcher.
type Options struct {
	Store Store
	// Client sends the requests: an outbound.Guard's client.
	Client *http.Client
	Logger *zap.Logger
	// Holder names this replica in claims.
	Holder string
	// Timeout bounds one attempt; Backoff is the pause after the first
	// failure, doubled after each further one up to MaxBackoff; a delivery
	// gives up after MaxAttempts attempts or RetryFor after the event.
	Timeout, Backoff, MaxBackoff, RetryFor time.Duration
	MaxAttempts                            int
	// Workers bounds the events being delivered at once (default 4); a
	// tenant gets at most half of them, so a tenant whose receivers hang
	// delays only its own events (fairqueue).
	Workers int
	// DisableAfter is how long a receiver may fail every attempt before
	// its subscription is disabled (default credgate.DefaultDisableAfter);
	// one that answers 410 Gone is disabled at once.
	DisableAfter time.Duration
	// Observe, when set, is told of every attempt (for metrics);
	// OnDisabled of every subscription disabled ("gone" or "failing").
	Observe    func(outcome string, d time.Duration)
	OnDisabled func(reason string)
	Now        func() time.Time
	// PendingGrace is how long an event recorded before its change waits
	// for the request's confirmation before the sweep proves it from the
	// record; default credgate.PendingGrace.
	PendingGrace time.Duration
}

// Dispatcher publishes events and delivers them. It is safe for concurrent
// use.
type Dispatcher struct {
	o     Options
	work  *fairqueue.Queue
	mu    sync.Mutex
	timed int // retry timers pending
	// announcing bounds the announcements tried again in the background.
	announcing chan struct{}
}

// ref names an event to try; hooks, when set, are the tenant's webhooks
// as its publisher just read them (its first try needs not read them again).
type ref struct {
	tenant, id string
	hooks      []*credgate.Webhook
}

// maxTimers bounds the retries this replica times itself; the sweep finds
// the others.
const maxTimers = 1000

// New returns a Dispatcher; Run delivers what it publishes.
func New(o Options) (*Dispatcher, error) {
	if o.Store == nil || o.Client == nil || o.Logger == nil || o.Holder == "" {
		return nil, errors.New("webhook: Store, Client, Logger and Holder are required")
	}
	o.Timeout = cmp.Or(o.Timeout, DefaultTimeout)
	o.Backoff = cmp.Or(o.Backoff, DefaultBackoff)
	o.MaxBackoff = cmp.Or(o.MaxBackoff, DefaultMaxBackoff)
	o.RetryFor = cmp.Or(o.RetryFor, DefaultRetryFor)
	o.MaxAttempts = cmp.Or(o.MaxAttempts, DefaultMaxAttempts)
	o.PendingGrace = cmp.Or(o.PendingGrace, credgate.PendingGrace)
	o.Workers = cmp.Or(o.Workers, DefaultWorkers)
	o.DisableAfter = cmp.Or(o.DisableAfter, credgate.DefaultDisableAfter)
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Dispatcher{o: o, work: fairqueue.New(fairqueue.Options{Workers: o.Workers}), announcing: make(chan struct{}, maxAnnouncing)}, nil
}

// How an announcement is tried again: announceTries tries in all, the
// second announceBackoff after the first, then doubling; at most
// maxAnnouncing wait at once.
const (
	announceTries   = 3
	announceBackoff = 200 * time.Millisecond
	maxAnnouncing   = 256
)

// Announce publishes e, which tells of a change already made: the caller
// (a request) waits for one try at most. When the store fails, e is tried
// again in the background, so that a brief Vault hiccup loses nothing;
// what still fails is logged as lost (the change stands).
func (d *Dispatcher) Announce(ctx context.Context, e credgate.Event) {
	ctx = context.WithoutCancel(ctx)
	err := d.Publish(ctx, e)
	if err == nil {
		return
	}
	select {
	case d.announcing <- struct{}{}:
	default:
		d.lost(e, err)
		return
	}
	go func() {
		defer func() { <-d.announcing }()
		pause := announceBackoff
		for range announceTries - 1 {
			time.Sleep(pause)
			if err = d.Publish(ctx, e); err == nil {
				return
			}
			pause *= 2
		}
		d.lost(e, err)
	}()
}

func (d *Dispatcher) lost(e credgate.Event, err error) {
	d.o.Logger.Warn("publishing an event failed; the change stands, the event is lost", zap.String("event", e.Type), zap.String("request_id", e.Data.RequestID), zap.Error(err))
}

// Publish puts e into its tenant's outbox, with the webhooks that want it,
// and has this replica try it soon. An event nobody wants is not kept (a
// tenant without webhooks costs one list per event), and one published
// before under the same id is not published again. Errors: the store's.
func (d *Dispatcher) Publish(ctx context.Context, e credgate.Event) error {
	hooks, err := d.o.Store.TenantWebhooks(ctx, e.Data.Tenant)
	if err != nil {
		return err
	}
	o := credgate.Outgoing{Event: e, Targets: map[string]*credgate.Target{}}
	for _, w := range hooks {
		if w.Wants(&e) {
			o.Targets[w.ID] = &credgate.Target{}
		}
	}
	if len(o.Targets) == 0 {
		return nil
	}
	fresh, err := d.o.Store.Publish(ctx, o)
	if err != nil {
		return err
	}
	if fresh {
		d.kick(ref{e.Data.Tenant, e.ID, hooks})
	}
	return nil
}

// PublishAll publishes events, all of one tenant, as Publish each: the
// tenant's webhooks are read once and the events put into its outbox a few
// at a time. errs[i] is events[i]'s error.
func (d *Dispatcher) PublishAll(ctx context.Context, events []credgate.Event) (errs []error) {
	errs = make([]error, len(events))
	if len(events) == 0 {
		return errs
	}
	tenant := events[0].Data.Tenant
	hooks, err := d.o.Store.TenantWebhooks(ctx, tenant)
	if err != nil {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, publishAtOnce)
	for i, e := range events {
		if e.Data.Tenant != tenant {
			errs[i] = fmt.Errorf("webhook: an event of tenant %q in a batch of %q", e.Data.Tenant, tenant)
			continue
		}
		o := credgate.Outgoing{Event: e, Targets: map[string]*credgate.Target{}}
		for _, w := range hooks {
			if w.Wants(&e) {
				o.Targets[w.ID] = &credgate.Target{}
			}
		}
		if len(o.Targets) == 0 {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			fresh, err := d.o.Store.Publish(ctx, o)
			if errs[i] = err; err == nil && fresh {
				d.kick(ref{tenant, e.ID, hooks})
			}
		})
	}
	wg.Wait()
	return errs
}

// publishAtOnce bounds the outbox writes one PublishAll makes at once.
const publishAtOnce = 8

// Intent is credgate.Intent kept in the outbox: what neither confirm nor
// withdraw reaches (the request died, Vault went away) the sweep settles
// from the record: a change that stands is announced, once per event id,
// and one that was not made is not.
type Intent struct {
	d       *Dispatcher
	tenant  string
	change  string
	events  map[string]credgate.Event // by type: those someone wants
	settled map[string]bool
}

// Intend records events (of one credential, each of another type) as
// pending before the change they announce, and returns the intent; the
// change is to be made with Intent.Context. Events nobody wants are not
// kept. Errors: the store's (then the change must not be made: it could
// not be announced).
func (d *Dispatcher) Intend(ctx context.Context, events ...credgate.Event) (credgate.Intent, error) {
	in := &Intent{d: d, change: credgate.NewChangeID(), events: map[string]credgate.Event{}, settled: map[string]bool{}}
	if len(events) == 0 {
		return in, nil
	}
	in.tenant = events[0].Data.Tenant
	hooks, err := d.o.Store.TenantWebhooks(ctx, in.tenant)
	if err != nil {
		return nil, err
	}
	for _, e := range events {
		o := credgate.Outgoing{Event: e, Targets: map[string]*credgate.Target{}, Pending: true, Change: in.change}
		for _, w := range hooks {
			if w.Wants(&e) {
				o.Targets[w.ID] = &credgate.Target{}
			}
		}
		if len(o.Targets) == 0 {
			continue
		}
		if _, err := d.o.Store.Publish(ctx, o); err != nil {
			in.Withdraw(ctx)
			return nil, err
		}
		in.events[e.Type] = e
	}
	return in, nil
}

// Context is ctx with the intent's change, for the writes of the change.
func (in *Intent) Context(ctx context.Context) context.Context {
	return credgate.WithChange(ctx, in.change)
}

// Confirm sends the event of final's type, as final says (its version,
// expiry); its id stays the intent's. A failure is left to the sweep.
func (in *Intent) Confirm(ctx context.Context, final credgate.Event) {
	e, ok := in.events[final.Type]
	if !ok || in.settled[final.Type] {
		return
	}
	in.settled[final.Type] = true
	final.ID, final.Timestamp = e.ID, e.Timestamp
	ctx = context.WithoutCancel(ctx)
	due, err := in.d.o.Store.ConfirmEvent(ctx, final)
	if err != nil {
		in.d.o.Logger.Info("webhook: confirming an event failed; the sweep will", zap.String("event_id", e.ID), zap.Error(err))
		return
	}
	if due {
		in.d.kick(ref{tenant: in.tenant, id: e.ID})
	}
}

// Withdraw removes the events not confirmed: their change was certainly
// not made (the request was refused before writing, or it changed nothing
// they announce). A failure is left to the sweep, which proves it.
func (in *Intent) Withdraw(ctx context.Context) {
	ctx = context.WithoutCancel(ctx)
	for typ, e := range in.events {
		if in.settled[typ] {
			continue
		}
		in.settled[typ] = true
		if err := in.d.o.Store.WithdrawEvent(ctx, in.tenant, e.ID); err != nil {
			in.d.o.Logger.Info("webhook: withdrawing an event failed; the sweep will", zap.String("event_id", e.ID), zap.Error(err))
		}
	}
}

// kick queues r in its tenant's lane; an event already queued is not
// queued twice, and one that does not fit is the sweep's to find.
func (d *Dispatcher) kick(r ref) bool {
	return d.work.Add(r.tenant, r.id, func(ctx context.Context) { d.deliver(ctx, r) })
}

// Run delivers the events this replica published, timed or swept, fairly
// between tenants (Options.Workers), until ctx ends.
func (d *Dispatcher) Run(ctx context.Context) {
	d.work.Run(ctx)
}

// Idle returns when no event is queued or being delivered (or ctx ends).
func (d *Dispatcher) Idle(ctx context.Context) {
	d.work.Wait(ctx)
}

// Sweep queues every event of every tenant's outbox for Run to try (those
// not due yet cost one read each); the replica that holds the monitor's
// lease calls it. It does not wait for them: a tenant whose receivers
// hang delays nobody. It returns how many events it queued.
func (d *Dispatcher) Sweep(ctx context.Context) (int, error) {
	tenants, err := d.o.Store.Tenants(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, t := range tenants {
		ids, err := d.o.Store.Outbox(ctx, t)
		if err != nil {
			d.o.Logger.Warn("webhook sweep: listing an outbox failed", zap.String("tenant", t), zap.Error(err))
			continue
		}
		for _, id := range ids {
			if ctx.Err() != nil {
				return n, ctx.Err()
			}
			if d.kick(ref{tenant: t, id: id}) {
				n++
			}
		}
	}
	return n, nil
}

// Deliver claims event id of tenant and makes the attempts that are due,
// one per webhook, at once. It reports whether it had the claim.
func (d *Dispatcher) Deliver(ctx context.Context, tenant, id string) bool {
	return d.deliver(ctx, ref{tenant: tenant, id: id})
}

func (d *Dispatcher) deliver(ctx context.Context, r ref) bool {
	tenant, id := r.tenant, r.id
	sys := credgate.WithPrincipal(ctx, credgate.SystemPrincipal(tenant))
	now := d.o.Now()
	o, err := d.o.Store.ClaimEvent(sys, tenant, id, d.o.Holder, credgate.Claim{Now: now, Until: now.Add(d.o.Timeout + 30*time.Second), Grace: d.o.PendingGrace})
	if err != nil || o == nil {
		if err != nil {
			d.o.Logger.Warn("webhook: claiming an event failed", zap.String("tenant", tenant), zap.String("event_id", id), zap.Error(err))
		}
		return false
	}
	if o.Pending {
		// Its request never confirmed it: the record says whether the
		// change stands.
		final, stands, err := d.o.Store.EventStands(sys, o)
		switch {
		case err != nil:
			d.o.Logger.Warn("webhook: proving a pending event failed", zap.String("tenant", tenant), zap.String("event_id", id), zap.Error(err))
			o.Due = now.Add(d.o.Backoff)
			_ = d.o.Store.SaveEvent(sys, o)
			return true
		case !stands:
			o.Targets = nil // done: nothing to send
			if err := d.o.Store.SaveEvent(sys, o); err != nil {
				d.o.Logger.Warn("webhook: dropping an event whose change was not made failed", zap.String("event_id", id), zap.Error(err))
			}
			return true
		}
		final.ID = o.Event.ID
		o.Event, o.Pending = final, false
	}
	hooks := r.hooks
	if hooks == nil {
		hooks, err = d.o.Store.TenantWebhooks(sys, tenant)
	}
	if err != nil {
		d.o.Logger.Warn("webhook: reading subscriptions failed", zap.String("tenant", tenant), zap.Error(err))
		o.Due = now.Add(d.o.Backoff)
		_ = d.o.Store.SaveEvent(sys, o)
		return true
	}
	byID := map[string]*credgate.Webhook{}
	for _, w := range hooks {
		byID[w.ID] = w
	}
	body, _ := json.Marshal(o.Event)
	var wg sync.WaitGroup
	for wid, t := range o.Targets {
		if t.Status == credgate.DeliveryDelivered || t.Status == credgate.DeliveryFailed || now.Before(t.Due) {
			continue
		}
		w := byID[wid]
		if w == nil || !w.Enabled { // deleted or disabled since: nothing to send
			t.Status = credgate.DeliveryFailed
			continue
		}
		wg.Go(func() { d.attempt(sys, o, w, t, body) })
	}
	wg.Wait()
	o.Due = time.Time{}
	for _, t := range o.Targets {
		if t.Status == credgate.DeliveryRetrying && (o.Due.IsZero() || t.Due.Before(o.Due)) {
			o.Due = t.Due
		}
	}
	if err := d.o.Store.SaveEvent(sys, o); err != nil {
		d.o.Logger.Warn("webhook: saving an event's delivery state failed", zap.String("tenant", tenant), zap.String("event_id", id), zap.Error(err))
		return true
	}
	if !o.Done() {
		d.retryLater(ref{tenant: tenant, id: id}, o.Due)
	}
	return true
}

// retryLater kicks r again when it is due, while few timers are pending.
func (d *Dispatcher) retryLater(r ref, due time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timed >= maxTimers {
		return
	}
	d.timed++
	time.AfterFunc(max(due.Sub(d.o.Now()), 0)+50*time.Millisecond, func() {
		d.mu.Lock()
		d.timed--
		d.mu.Unlock()
		d.kick(r)
	})
}

// attempt sends o's event to w once and records the outcome on t and in
// w's delivery log.
func (d *Dispatcher) attempt(ctx context.Context, o *credgate.Outgoing, w *credgate.Webhook, t *credgate.Target, body []byte) {
	t.Attempts++
	start := d.o.Now()
	status, err := d.send(ctx, o.Event.ID, w, body)
	took := d.o.Now().Sub(start)
	rec := credgate.Delivery{EventID: o.Event.ID, EventType: o.Event.Type, Attempt: t.Attempts, HTTPStatus: status, LatencyMs: took.Milliseconds(), At: start.UTC()}
	gone := status == http.StatusGone
	switch {
	case err == nil:
		t.Status = credgate.DeliveryDelivered
	case gone:
		t.Status = credgate.DeliveryFailed
		rec.Error = err.Error() + " (Gone): the subscription is disabled"
	case t.Attempts >= d.o.MaxAttempts || d.o.Now().Sub(o.Event.Timestamp) >= d.o.RetryFor:
		t.Status = credgate.DeliveryFailed
		rec.Error = err.Error()
	default:
		t.Status = credgate.DeliveryRetrying
		t.Due = d.o.Now().Add(d.backoff(t.Attempts))
		rec.Error = err.Error()
		due := t.Due.UTC()
		rec.NextRetryAt = &due
	}
	rec.Status = t.Status
	if d.o.Observe != nil {
		d.o.Observe(t.Status, took)
	}
	ctx = context.WithoutCancel(ctx)
	since, err := d.o.Store.RecordDelivery(ctx, o.Event.Data.Tenant, w.ID, rec)
	if err != nil {
		d.o.Logger.Warn("webhook: writing the delivery log failed", zap.String("webhook_id", w.ID), zap.Error(err))
		return
	}
	from := w.FailingSince(since)
	switch {
	case gone:
		d.disable(ctx, o.Event.Data.Tenant, w, "gone", "the receiver answered 410 Gone")
	case !from.IsZero() && d.o.Now().Sub(from) >= d.o.DisableAfter:
		t.Status = credgate.DeliveryFailed // no more retries: nobody takes them
		d.disable(ctx, o.Event.Data.Tenant, w, "failing", "every delivery failed since "+from.UTC().Format(time.RFC3339))
	}
}

// disable disables w, whose receiver cannot take events, and tells the
// tenant's other subscriptions (webhook.disabled), its metrics and its log
// once, whichever replica gets there first.
func (d *Dispatcher) disable(ctx context.Context, tenant string, w *credgate.Webhook, kind, reason string) {
	sys := credgate.WithPrincipal(ctx, credgate.SystemPrincipal(tenant))
	was, err := d.o.Store.DisableWebhook(sys, tenant, w.ID, reason)
	if err != nil {
		d.o.Logger.Warn("webhook: disabling a subscription failed; the next failure tries again", zap.String("tenant", tenant), zap.String("webhook_id", w.ID), zap.Error(err))
		return
	}
	if !was {
		return
	}
	d.o.Logger.Warn("webhook: a subscription was disabled", zap.String("tenant", tenant), zap.String("webhook_id", w.ID), zap.String("reason", reason))
	if d.o.OnDisabled != nil {
		d.o.OnDisabled(kind)
	}
	e := credgate.NewEvent(sys, credgate.EventWebhookDisabled, nil)
	e.Data.WebhookID, e.Data.Reason = w.ID, reason
	e.OnceID(credgate.EventWebhookDisabled, w.ID, w.UpdatedAt.UTC().Format(time.RFC3339))
	d.Announce(sys, e)
}

// backoff is the pause after the n-th failed attempt: Backoff doubled n-1
// times, at most MaxBackoff, with up to a fifth of jitter.
func (d *Dispatcher) backoff(n int) time.Duration {
	b := d.o.Backoff
	for i := 1; i < n && b < d.o.MaxBackoff; i++ {
		b *= 2
	}
	b = min(b, d.o.MaxBackoff)
	return b + rand.N(b/5+1)
}

// send makes one signed request. Its error says what failed in words fit
// for the delivery log: never what the receiver answered.
func (d *Dispatcher) send(ctx context.Context, id string, w *credgate.Webhook, body []byte) (int, error) {
	signer, err := standardwebhooks.NewWebhook(w.Secret)
	if err != nil {
		return 0, errors.New("the subscription's secret is unusable")
	}
	ts := d.o.Now()
	sig, err := signer.Sign(id, ts, body)
	if err != nil {
		return 0, errors.New("signing failed")
	}
	ctx, cancel := context.WithTimeout(ctx, d.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return 0, errors.New("the URL is unusable")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "credgate-webhooks/1")
	req.Header.Set(standardwebhooks.HeaderWebhookID, id)
	req.Header.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(ts.Unix(), 10))
	req.Header.Set(standardwebhooks.HeaderWebhookSignature, sig)
	res, err := d.o.Client.Do(req)
	if err != nil {
		switch why := outbound.Explain(req.URL, err); {
		case why != "":
			return 0, errors.New("not sent: the URL " + why)
		case errors.Is(err, context.DeadlineExceeded):
			return 0, fmt.Errorf("no answer within %s", d.o.Timeout)
		}
		return 0, errors.New("the receiver could not be reached")
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	res.Body.Close()
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return res.StatusCode, fmt.Errorf("the receiver answered %d", res.StatusCode)
	}
	return res.StatusCode, nil
}

// Package rotation runs rotations through the tenants' rotators: it calls
// a rotator's endpoint, signed as webhooks are (Standard Webhooks), at
// each step of a rotation (create, test, finish), promotes the values it
// created, and records every step in the store before the next, so that a
// rotation resumes where it stood on any replica. The steps' rules are
// credgate.Rotation's; this package is the protocol and the driving.
//
// The protocol (README "Rotation"): a POST of
//
//	{"type": "rotation.<step>", "timestamp": …, "data": {"rotationId", "step",
//	 "tenant", "integrationId", "credentialId", "authType", "version", "values"}}
//
// where values are the current values (create), the new ones (test) or the
// previous ones (finish). webhook-id is <rotationId>.<step>, the same on
// every try, so a rotator can answer a repeat as it answered the first. A
// 2xx answers the step; create's answer is {"values": {…}, "customFields":
// {…}, "expiresAt": …}. A 4xx other than 408 and 429 refuses it (for test:
// the new values do not work); anything else (5xx, 408, 429, no answer
// within the rotator's timeout, a body that is not the answer) is retried
// with backoff.
package rotation

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"go.uber.org/zap"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/fairqueue"
	"github.com/credgate/credgate/outbound"
)

// Store is what rotations need of the store (vaultstore.Store).
type Store interface {
	BeginRotation(ctx context.Context, cred, trigger string, ifMatch int) (*credgate.Credential, bool, error)
	Rotation(ctx context.Context, tenant, service, cred string) (*credgate.Rotation, error)
	UpdateRotation(ctx context.Context, tenant, service, cred string, fn func(*credgate.Rotation) error) (*credgate.Rotation, error)
	HoldRotation(ctx context.Context, tenant, cred, holder string, ttl time.Duration) error
	ReleaseRotation(ctx context.Context, tenant, cred, holder string)
	// CredentialAsCredgate is the credential with its values at version
	// (0: the current one), whatever its status, for the rotator.
	CredentialAsCredgate(ctx context.Context, tenant, service, cred string, version int) (*credgate.Credential, error)
	GetRotator(ctx context.Context, id string) (*credgate.Rotator, error)
	RotateCredential(ctx context.Context, cred string, ifMatch int, fn func(*credgate.Credential) error, repeatable bool) (*credgate.Credential, error)
}

// Publisher publishes events (webhook.Dispatcher).
type Publisher interface {
	Publish(ctx context.Context, e credgate.Event) error
	Intend(ctx context.Context, events ...credgate.Event) (credgate.Intent, error)
}

// Defaults of Options.
const (
	DefaultWorkers     = 4
	DefaultLeaseMargin = 30 * time.Second
	maxAnswer          = 64 << 10
)

// Options configures a Runner.
type Options struct {
	Store  Store
	Events Publisher
	// Client makes the calls to rotators (outbound.Guard.Client: only
	// where the tenant's calls may go), given a rotator's timeout.
	Client func(timeout time.Duration) *http.Client
	Logger *zap.Logger
	// Holder names this replica in the rotations' leases.
	Holder string
	Retry  credgate.RetryPolicy
	// Workers bounds the rotations driven at once (a tenant gets half).
	Workers int
	// LeaseMargin is how much longer than a rotator's timeout a replica
	// keeps its turn at a rotation (its Vault writes after the call).
	LeaseMargin time.Duration
	// OnStep is told of every step tried: its outcome is ok, retry or
	// failed.
	OnStep func(step, outcome string)
	// Now is the clock of the rotations' schedule (default time.Now).
	Now func() time.Time
}

// Runner drives rotations. Run it on every replica; any one may drive a
// rotation's next step, one at a time.
type Runner struct {
	o    Options
	work *fairqueue.Queue
}

// New returns a Runner.
func New(o Options) (*Runner, error) {
	if o.Store == nil || o.Events == nil || o.Client == nil || o.Logger == nil || o.Holder == "" {
		return nil, errors.New("rotation: Store, Events, Client, Logger and Holder are required")
	}
	o.LeaseMargin = cmp.Or(o.LeaseMargin, DefaultLeaseMargin)
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Runner{o: o, work: fairqueue.New(fairqueue.Options{Workers: cmp.Or(o.Workers, DefaultWorkers)})}, nil
}

// Run drives the rotations queued, until ctx ends.
func (r *Runner) Run(ctx context.Context) { r.work.Run(ctx) }

// Start starts a rotation of cred through its rotator for trigger, or
// joins the one under way, and queues its next step. It answers the
// credential's description with the rotation's status. ifMatch > 0 must
// be the credential's version. Errors: the store's (BeginRotation).
func (r *Runner) Start(ctx context.Context, cred, trigger string, ifMatch int) (*credgate.Credential, bool, error) {
	c, started, err := r.o.Store.BeginRotation(ctx, cred, trigger, ifMatch)
	if err != nil {
		return nil, false, err
	}
	r.Kick(credgate.PrincipalFrom(ctx).Tenant, c.IntegrationID, c.ID)
	return c, started, nil
}

// Kick queues a look at the rotation of cred: its next step runs if it is
// due and no other replica drives it.
func (r *Runner) Kick(tenant, service, cred string) {
	r.work.Add(tenant, cred, func(ctx context.Context) { r.drive(ctx, tenant, service, cred) })
}

// Examine does what c's rotation needs, for the monitor's scan: a
// rotation due by c's policy starts; one whose next step is due (or whose
// previous values ended) is driven.
func (r *Runner) Examine(ctx context.Context, tenant string, c *credgate.Credential) {
	now := r.o.Now()
	switch rot := c.Rotation; {
	case rot.Active():
		if rot.Due(now) || rot.FinishDue(c, now) {
			r.Kick(tenant, c.IntegrationID, c.ID)
		}
	case c.RotationStartDue(now):
		if _, _, err := r.Start(ctx, c.ID, credgate.TriggerPolicy, c.Version); err != nil && credgate.ErrorCode(err) != credgate.EVersionConflict {
			r.o.Logger.Warn("rotation: starting a rotation that is due failed", zap.String("credential_id", c.ID), zap.Error(err))
		}
	}
}

// Wait returns when no rotation is being driven or waits to be (tests).
func (r *Runner) Wait(ctx context.Context) { r.work.Wait(ctx) }

// maxSteps bounds the steps one drive takes (create, test, promote,
// finish and a margin).
const maxSteps = 6

// drive takes the turn at the rotation of cred and runs its steps while
// they are due; each step's result is recorded before the next.
func (r *Runner) drive(ctx context.Context, tenant, service, cred string) {
	ctx = credgate.WithPrincipal(ctx, credgate.SystemPrincipal(tenant))
	log := r.o.Logger.With(zap.String("tenant", tenant), zap.String("credential_id", cred))
	held := false
	defer func() {
		if held {
			r.o.Store.ReleaseRotation(context.WithoutCancel(ctx), tenant, cred, r.o.Holder)
		}
	}()
	for range maxSteps {
		rot, err := r.o.Store.Rotation(ctx, tenant, service, cred)
		if err != nil {
			if credgate.ErrorCode(err) != credgate.ENotFound {
				log.Warn("rotation: reading a rotation failed", zap.Error(err))
			}
			return
		}
		ctx := credgate.WithRequestID(ctx, rot.ID)
		if !rot.Active() {
			// Over, though the credential may still show it under way (a
			// status that could not be shown): show it again.
			_, _ = r.o.Store.UpdateRotation(ctx, tenant, service, cred, func(*credgate.Rotation) error { return nil })
			return
		}
		rotator, err := r.o.Store.GetRotator(ctx, rot.Rotator)
		if credgate.ErrorCode(err) == credgate.ENotFound {
			r.abandon(ctx, tenant, service, cred, rot, "the rotator "+rot.Rotator+" no longer exists")
			return
		} else if err != nil {
			log.Warn("rotation: reading a rotator failed", zap.Error(err))
			return
		}
		// The turn lasts one call and the writes after it; it is taken
		// again before each step.
		if err := r.o.Store.HoldRotation(ctx, tenant, cred, r.o.Holder, rotator.Timeout()+r.o.LeaseMargin); err != nil {
			return // another replica drives it, or Vault is away: the monitor looks again
		}
		held = true
		if rot, err = r.o.Store.Rotation(ctx, tenant, service, cred); err != nil || !rot.Active() {
			return
		}
		now := r.o.Now()
		if rot.Step != credgate.StepFinish && !rot.Due(now) {
			r.later(tenant, service, cred, *rot.NextAttemptAt)
			return
		}
		var more bool
		switch rot.Step {
		case credgate.StepCreate:
			more = r.create(ctx, tenant, service, cred, rot, rotator)
		case credgate.StepTest:
			more = r.test(ctx, tenant, service, cred, rot, rotator)
		case credgate.StepPromote:
			more = r.promote(ctx, tenant, service, cred, rot)
		case credgate.StepFinish:
			more = r.finish(ctx, tenant, service, cred, rot, rotator)
		}
		if !more {
			return
		}
	}
}

// later queues another look at the rotation at at (by this replica's
// clock; the monitor looks too, so a replica that stops loses nothing).
func (r *Runner) later(tenant, service, cred string, at time.Time) {
	d := at.Sub(r.o.Now())
	if d > time.Hour {
		return // the monitor's passes come sooner
	}
	time.AfterFunc(max(d, 0)+10*time.Millisecond, func() { r.Kick(tenant, service, cred) })
}

// record applies a step's result to the rotation and reports whether the
// next step may follow now; a result another replica recorded first is
// dropped.
func (r *Runner) record(ctx context.Context, tenant, service, cred string, fn func(*credgate.Rotation) error) (*credgate.Rotation, bool) {
	out, err := r.o.Store.UpdateRotation(ctx, tenant, service, cred, fn)
	if err != nil {
		if !errors.Is(err, credgate.ErrStepDone) {
			r.o.Logger.Warn("rotation: recording a step failed; it is tried again", zap.String("credential_id", cred), zap.Error(err))
		}
		return nil, false
	}
	return out, true
}

func (r *Runner) observe(step, outcome string) {
	if r.o.OnStep != nil {
		r.o.OnStep(step, outcome)
	}
}

// failed records that step failed (retried, or the rotation's end) and
// announces the end.
func (r *Runner) failed(ctx context.Context, tenant, service, cred string, rot *credgate.Rotation, step string, f *stepError) {
	ended := false
	out, ok := r.record(ctx, tenant, service, cred, func(x *credgate.Rotation) error {
		var err error
		ended, err = x.Failed(step, f.reason, f.transient, r.o.Now(), r.o.Retry)
		return err
	})
	if !ok {
		return
	}
	r.o.Logger.Info("rotation: a step failed", zap.String("credential_id", cred), zap.String("step", step), zap.String("reason", f.reason), zap.Int("attempts", out.Attempts), zap.Bool("ended", ended))
	if !ended {
		r.observe(step, "retry")
		r.later(tenant, service, cred, *out.NextAttemptAt)
		return
	}
	r.observe(step, "failed")
	r.announceFailure(ctx, tenant, service, cred, out)
}

// abandon fails rot at once for reason.
func (r *Runner) abandon(ctx context.Context, tenant, service, cred string, rot *credgate.Rotation, reason string) {
	out, ok := r.record(ctx, tenant, service, cred, func(x *credgate.Rotation) error {
		if x.ID != rot.ID || !x.Active() {
			return credgate.ErrStepDone
		}
		x.Abandon(reason, r.o.Now())
		return nil
	})
	if ok {
		r.observe(rot.Step, "failed")
		r.announceFailure(ctx, tenant, service, cred, out)
	}
}

func (r *Runner) announceFailure(ctx context.Context, tenant, service, cred string, rot *credgate.Rotation) {
	e := credgate.NewEvent(ctx, credgate.EventRotationFailed, &credgate.Credential{ID: cred, IntegrationID: service, Version: rot.FromVersion})
	e.Data.Tenant = tenant
	e.Data.Reason = rot.LastError
	st := rot.RotationStatus
	e.Data.Rotation = &st
	e.OnceID(credgate.EventRotationFailed, rot.ID)
	if err := r.o.Events.Publish(ctx, e); err != nil {
		r.o.Logger.Warn("rotation: publishing a failed rotation failed", zap.String("credential_id", cred), zap.Error(err))
	}
}

// subject reads the credential at version for a step; a credential gone
// abandons the rotation (false).
func (r *Runner) subject(ctx context.Context, tenant, service, cred string, rot *credgate.Rotation, version int) (*credgate.Credential, bool) {
	c, err := r.o.Store.CredentialAsCredgate(ctx, tenant, service, cred, version)
	switch code := credgate.ErrorCode(err); {
	case err == nil:
		return c, true
	case code == credgate.ECredentialNotFound || code == credgate.EServiceNotFound:
		r.abandon(ctx, tenant, service, cred, rot, "the credential no longer exists")
	default:
		r.o.Logger.Warn("rotation: reading the credential failed; it is tried again", zap.String("credential_id", cred), zap.Error(err))
	}
	return nil, false
}

// create asks the rotator for new values and keeps them, pending.
func (r *Runner) create(ctx context.Context, tenant, service, cred string, rot *credgate.Rotation, rotator *credgate.Rotator) bool {
	c, ok := r.subject(ctx, tenant, service, cred, rot, 0)
	if !ok {
		return false
	}
	if c.Status != credgate.CredActive || c.EffectiveStatus(r.o.Now()) == credgate.CredRevoked {
		r.abandon(ctx, tenant, service, cred, rot, "the credential is "+c.EffectiveStatus(r.o.Now())+"; only an active one is rotated")
		return false
	}
	body, f := r.call(ctx, rotator, rot, credgate.StepCreate, c, c.Secrets)
	var values credgate.Secrets
	var expiresAt *time.Time
	if f == nil {
		values, expiresAt, f = created(body, c)
	}
	if f != nil {
		r.failed(ctx, tenant, service, cred, rot, credgate.StepCreate, f)
		return false
	}
	_, ok = r.record(ctx, tenant, service, cred, func(x *credgate.Rotation) error { return x.Created(values, expiresAt, r.o.Now()) })
	if ok {
		r.observe(credgate.StepCreate, "ok")
	}
	return ok
}

// created reads create's answer: values that, set on c, make a valid
// credential with new values.
func created(body []byte, c *credgate.Credential) (credgate.Secrets, *time.Time, *stepError) {
	var a struct {
		Values       map[string]string `json:"values"`
		CustomFields map[string]string `json:"customFields"`
		ExpiresAt    *time.Time        `json:"expiresAt"`
	}
	if err := json.Unmarshal(body, &a); err != nil {
		return nil, nil, retry("the answer to create is not JSON")
	}
	values := credgate.Secrets{}
	for k, v := range a.Values {
		if !credgate.IsSecretField(k) {
			return nil, nil, retry("the answer to create names " + strconv.Quote(k) + ", which is not a secret field")
		}
		values[k] = v
	}
	for k, v := range a.CustomFields {
		values[credgate.CustomKey(k)] = v
	}
	if len(values) == 0 {
		return nil, nil, retry("the answer to create holds no values")
	}
	next := *c
	next.Secrets = c.Secrets.Clone()
	for k, v := range values {
		next.Secrets[k] = v
	}
	if a.ExpiresAt != nil {
		next.ExpiresAt = a.ExpiresAt
	}
	if err := next.Validate(); err != nil {
		return nil, nil, retry("the values create answered do not make a valid credential")
	}
	if credgate.ChangeOf(c.Secrets, next.Secrets) != credgate.ChangeRotated {
		return nil, nil, retry("the values create answered are the current ones")
	}
	return values, a.ExpiresAt, nil
}

// test asks the rotator whether the pending values work.
func (r *Runner) test(ctx context.Context, tenant, service, cred string, rot *credgate.Rotation, rotator *credgate.Rotator) bool {
	c, ok := r.subject(ctx, tenant, service, cred, rot, 0)
	if !ok {
		return false
	}
	pending := c.Secrets.Clone()
	for k, v := range rot.Pending {
		pending[k] = v
	}
	if _, f := r.call(ctx, rotator, rot, credgate.StepTest, c, pending); f != nil {
		r.failed(ctx, tenant, service, cred, rot, credgate.StepTest, f)
		return false
	}
	_, ok = r.record(ctx, tenant, service, cred, func(x *credgate.Rotation) error { return x.Tested(r.o.Now()) })
	if ok {
		r.observe(credgate.StepTest, "ok")
	}
	return ok
}

// promote makes the pending values the credential's, as one rotation
// through the store (its rotation lock, check-and-set, the event recorded
// before the write). A promotion that happened already (its record was not
// written: the replica stopped) is found in the credential and not made
// twice.
func (r *Runner) promote(ctx context.Context, tenant, service, cred string, rot *credgate.Rotation) bool {
	e := credgate.NewEvent(ctx, credgate.EventRotated, &credgate.Credential{ID: cred, IntegrationID: service})
	e.Data.Tenant = tenant
	in, err := r.o.Events.Intend(ctx, e)
	if err != nil {
		r.o.Logger.Warn("rotation: recording a promotion's event failed; it is tried again", zap.String("credential_id", cred), zap.Error(err))
		r.later(tenant, service, cred, r.o.Now().Add(r.o.Retry.Pause(1)))
		return false
	}
	var keep *time.Time
	if d, err := credgate.ParseWithin(rot.KeepPrevious); err == nil {
		t := r.o.Now().Add(d).UTC().Truncate(time.Second)
		keep = &t
	}
	seen := 0
	out, err := r.o.Store.RotateCredential(in.Context(ctx), cred, 0, func(c *credgate.Credential) error {
		seen = c.Version
		old := c.Secrets.Clone()
		for k, v := range rot.Pending {
			c.Secrets[k] = v
		}
		if rot.PendingExpiresAt != nil {
			c.ExpiresAt = rot.PendingExpiresAt
		}
		if credgate.ChangeOf(old, c.Secrets) == credgate.ChangeRotated {
			c.KeepPrevious(keep, false)
		}
		return nil
	}, true)
	if err != nil {
		switch code := credgate.ErrorCode(err); code {
		case credgate.EBackendUnavailable, credgate.EInternal:
			// Maybe written: the outbox settles the event from the record.
		default:
			in.Withdraw(ctx)
		}
		switch code := credgate.ErrorCode(err); code {
		case credgate.ECredentialNotFound, credgate.EServiceNotFound, credgate.EValidationFailed:
			r.abandon(ctx, tenant, service, cred, rot, "the credential cannot take the new values ("+code+")")
		default:
			r.failed(ctx, tenant, service, cred, rot, credgate.StepPromote, retry("writing the new values failed ("+code+")"))
		}
		return false
	}
	if out.Version != seen {
		final := credgate.NewEvent(ctx, credgate.EventRotated, out)
		final.Data.Tenant = tenant
		in.Confirm(ctx, final)
	} else {
		in.Withdraw(ctx) // promoted before: that change's own event stands
	}
	now := r.o.Now()
	_, ok := r.record(ctx, tenant, service, cred, func(x *credgate.Rotation) error {
		if err := x.Promoted(out.Version, now); err != nil {
			return err
		}
		if !x.FinishDue(out, now) && out.PreviousRevokeAt != nil {
			x.WaitFor(*out.PreviousRevokeAt)
		}
		return nil
	})
	if ok {
		r.observe(credgate.StepPromote, "ok")
	}
	return ok
}

// finish asks the rotator to revoke the previous values at the provider,
// once the credential serves them no more.
func (r *Runner) finish(ctx context.Context, tenant, service, cred string, rot *credgate.Rotation, rotator *credgate.Rotator) bool {
	c, ok := r.subject(ctx, tenant, service, cred, rot, 0)
	if !ok {
		return false
	}
	now := r.o.Now()
	if !rot.FinishDue(c, now) {
		if c.PreviousRevokeAt != nil && (rot.NextAttemptAt == nil || !rot.NextAttemptAt.Equal(*c.PreviousRevokeAt)) {
			r.record(ctx, tenant, service, cred, func(x *credgate.Rotation) error {
				x.WaitFor(*c.PreviousRevokeAt)
				return nil
			})
		}
		if c.PreviousRevokeAt != nil {
			r.later(tenant, service, cred, *c.PreviousRevokeAt)
		}
		return false
	}
	previous := credgate.Secrets{}
	if old, err := r.o.Store.CredentialAsCredgate(ctx, tenant, service, cred, rot.FromVersion); err == nil {
		previous = old.Secrets
	} else if code := credgate.ErrorCode(err); code != credgate.ECredentialNotFound {
		r.o.Logger.Warn("rotation: reading the previous values failed; it is tried again", zap.String("credential_id", cred), zap.Error(err))
		return false
	}
	if _, f := r.call(ctx, rotator, rot, credgate.StepFinish, c, previous); f != nil {
		r.failed(ctx, tenant, service, cred, rot, credgate.StepFinish, f)
		return false
	}
	_, ok = r.record(ctx, tenant, service, cred, func(x *credgate.Rotation) error { return x.Finished(r.o.Now()) })
	if ok {
		r.observe(credgate.StepFinish, "ok")
	}
	return false
}

// stepError is why a step failed, in words fit for the rotation's status
// (never what the rotator answered), and whether a retry may help.
type stepError struct {
	reason    string
	transient bool
}

func retry(reason string) *stepError { return &stepError{reason: reason, transient: true} }

// request is the body of a call to a rotator.
type request struct {
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Data      struct {
		RotationID    string            `json:"rotationId"`
		Step          string            `json:"step"`
		Tenant        string            `json:"tenant"`
		IntegrationID string            `json:"integrationId"`
		CredentialID  string            `json:"credentialId"`
		AuthType      string            `json:"authType"`
		Version       int               `json:"version"`
		Values        map[string]string `json:"values"`
		CustomFields  map[string]string `json:"customFields,omitempty"`
	} `json:"data"`
}

// call makes one signed call of step to rotator about c with values and
// answers the body of a 2xx.
func (r *Runner) call(ctx context.Context, rotator *credgate.Rotator, rot *credgate.Rotation, step string, c *credgate.Credential, values credgate.Secrets) ([]byte, *stepError) {
	var q request
	q.Type, q.Timestamp = "rotation."+step, time.Now().UTC().Truncate(time.Millisecond)
	d := &q.Data
	d.RotationID, d.Step, d.Tenant, d.IntegrationID, d.CredentialID, d.AuthType = rot.ID, step, credgate.PrincipalFrom(ctx).Tenant, c.IntegrationID, c.ID, c.AuthType
	d.Version = c.Version
	if step == credgate.StepFinish {
		d.Version = rot.FromVersion
	}
	d.Values, d.CustomFields = map[string]string{}, values.Custom()
	for k, v := range values {
		if credgate.IsSecretField(k) {
			d.Values[k] = v
		}
	}
	body, err := json.Marshal(q)
	if err != nil {
		return nil, retry("the request could not be made")
	}
	signer, err := standardwebhooks.NewWebhook(rotator.Secret)
	if err != nil {
		return nil, &stepError{reason: "the rotator's secret is unusable"}
	}
	id, ts := rot.ID+"."+step, time.Now()
	sig, err := signer.Sign(id, ts, body)
	if err != nil {
		return nil, retry("signing failed")
	}
	timeout := rotator.Timeout()
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodPost, rotator.URL, bytes.NewReader(body))
	if err != nil {
		return nil, &stepError{reason: "the rotator's URL is unusable"}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "credgate-rotation/1")
	req.Header.Set(standardwebhooks.HeaderWebhookID, id)
	req.Header.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(ts.Unix(), 10))
	req.Header.Set(standardwebhooks.HeaderWebhookSignature, sig)
	res, err := r.o.Client(timeout).Do(req)
	if err != nil {
		switch why := outbound.Explain(req.URL, err); {
		case why != "":
			return nil, retry("not sent: the URL " + why)
		case errors.Is(err, context.DeadlineExceeded) || errors.Is(cctx.Err(), context.DeadlineExceeded):
			return nil, retry(fmt.Sprintf("the rotator did not answer within %s", timeout))
		}
		return nil, retry("the rotator could not be reached")
	}
	defer res.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(res.Body, maxAnswer))
	switch code := res.StatusCode; {
	case err != nil:
		return nil, retry("the rotator's answer was cut off")
	case code >= 200 && code <= 299:
		return answer, nil
	case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500:
		return nil, retry(fmt.Sprintf("the rotator answered %d", code))
	case code >= 400:
		return nil, &stepError{reason: fmt.Sprintf("the rotator answered %d", code)}
	}
	return nil, retry(fmt.Sprintf("the rotator answered %d", res.StatusCode))
}

package credgate

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/google/uuid"
)

// The rules of rotation that runs itself: when a credential is due for
// rotation (RotationPolicy), which notices that makes, and the steps of a
// rotation through the tenant's rotator (Rotation), including those a
// crash can leave half done.

// RotationPolicy says how often a credential's values are to be rotated:
// Every (90d) after the last rotation, or after its creation when it was
// never rotated. KeepPrevious, when set, keeps the values a rotator's
// rotation replaces servable that long beside the new ones (a migration
// period); the rotator revokes them at the provider only after.
type RotationPolicy struct {
	Every        string `json:"every"`
	KeepPrevious string `json:"keepPrevious,omitempty"`
}

// Check names what is wrong with p under field.
func (p *RotationPolicy) Check(fe FieldErrors, field string) {
	if p == nil {
		return
	}
	if _, err := ParseWithin(p.Every); err != nil {
		fe.Add(field+".every", "must be "+err.Error())
	}
	if p.KeepPrevious != "" {
		if _, err := ParseWithin(p.KeepPrevious); err != nil {
			fe.Add(field+".keepPrevious", "must be "+err.Error())
		}
	}
}

// DefaultRotationOverdue is how long after rotationDueAt a credential not
// rotated is announced overdue, unless configured otherwise.
const DefaultRotationOverdue = 7 * 24 * time.Hour

// PolicyOf is the rotation policy that holds for c: its own, else def
// (the tenant's default; nil: none).
func (c *Credential) PolicyOf(def *RotationPolicy) *RotationPolicy {
	if c.RotationPolicy != nil {
		return c.RotationPolicy
	}
	return def
}

// DueForRotation is when c is due for rotation under its policy or def:
// the policy's interval after its last rotation (or its creation); nil when
// no policy holds.
func (c *Credential) DueForRotation(def *RotationPolicy) *time.Time {
	p := c.PolicyOf(def)
	if p == nil {
		return nil
	}
	every, err := ParseWithin(p.Every)
	if err != nil {
		return nil
	}
	base := c.CreatedAt
	if c.LastRotatedAt != nil {
		base = *c.LastRotatedAt
	}
	t := base.Add(every).UTC()
	return &t
}

// rotationWatched reports whether c's rotation schedule counts at now: it
// is due some time, and is stored active (an inactive or revoked
// credential is not rotated).
func (c *Credential) rotationWatched(now time.Time) bool {
	return c.RotationDueAt != nil && c.Status == CredActive && c.EffectiveStatus(now) != CredRevoked
}

// RotationIsDue reports whether c, watched, is due for rotation at now.
func (c *Credential) RotationIsDue(now time.Time) bool {
	return c.rotationWatched(now) && !now.Before(*c.RotationDueAt)
}

// RotationNotices records the rotation notices sent for one due date of a
// credential (For, Unix seconds); a new rotationDueAt starts afresh.
type RotationNotices struct {
	For     int64 `json:"x,omitempty"`
	Due     bool  `json:"d,omitempty"`
	Overdue bool  `json:"o,omitempty"`
}

// RotationNoticeDue says which rotation notice c is due at now:
// EventRotationDue once rotationDueAt has come, EventRotationOverdue once
// overdue has passed after it, or "". A credential found past both at once
// is sent the overdue one only.
func (c *Credential) RotationNoticeDue(now time.Time, overdue time.Duration) string {
	if !c.RotationIsDue(now) {
		return ""
	}
	n := c.rotationNotices()
	switch {
	case !now.Before(c.RotationDueAt.Add(overdue)):
		if !n.Overdue {
			return EventRotationOverdue
		}
	case !n.Due:
		return EventRotationDue
	}
	return ""
}

func (c *Credential) rotationNotices() RotationNotices {
	if c.RotationDueAt == nil || c.RotationSent.For != c.RotationDueAt.Unix() {
		return RotationNotices{}
	}
	return c.RotationSent
}

// MarkRotationNotice records on c that notice typ (RotationNoticeDue's)
// was sent; the overdue notice counts for the due one too.
func (c *Credential) MarkRotationNotice(typ string) {
	n := c.rotationNotices()
	n.For = c.RotationDueAt.Unix()
	n.Due = true
	if typ == EventRotationOverdue {
		n.Overdue = true
	}
	c.RotationSent = n
}

// RotationBucket is how c stands with its rotation at now: overdue, due,
// lt_7d, lt_30d, or "" (later, or no policy): the metrics' buckets.
func (c *Credential) RotationBucket(now time.Time, overdue time.Duration) string {
	if !c.rotationWatched(now) {
		return ""
	}
	switch left := c.RotationDueAt.Sub(now); {
	case left <= -overdue:
		return "overdue"
	case left <= 0:
		return "due"
	case left < 7*24*time.Hour:
		return "lt_7d"
	case left < 30*24*time.Hour:
		return "lt_30d"
	}
	return ""
}

// Rotation states: a rotation is running its steps, or waiting (promoted)
// for the previous values' end before the rotator revokes them; then it
// succeeded or failed.
const (
	RotationRunning   = "running"
	RotationWaiting   = "waiting"
	RotationSucceeded = "succeeded"
	RotationFailed    = "failed"
)

// Rotation steps, in order. create, test and finish are calls to the
// rotator; promote is credgate's write of the new values.
const (
	StepCreate  = "create"
	StepTest    = "test"
	StepPromote = "promote"
	StepFinish  = "finish"
)

// What starts a rotation.
const (
	TriggerPolicy  = "policy"  // the credential's rotation policy: it was due
	TriggerRequest = "request" // POST …/rotate {"via":"rotator"}
)

// RotationStatus is what a reader of a credential sees of its latest
// rotation through a rotator: never a value.
type RotationStatus struct {
	ID            string     `json:"id"`
	Rotator       string     `json:"rotator"`
	Trigger       string     `json:"trigger"`
	State         string     `json:"state"`
	Step          string     `json:"step"`
	Attempts      int        `json:"attempts"` // failed attempts of Step so far
	LastError     string     `json:"lastError,omitempty"`
	StartedAt     time.Time  `json:"startedAt"`
	UpdatedAt     time.Time  `json:"updatedAt"`
	NextAttemptAt *time.Time `json:"nextAttemptAt,omitempty"`
	// FromVersion is the version rotated from; ToVersion the version the
	// new values became.
	FromVersion int `json:"fromVersion"`
	ToVersion   int `json:"toVersion,omitempty"`
}

// maxLastError bounds RotationStatus.LastError, which is kept in a
// credential's metadata beside the rest (512 bytes).
const maxLastError = 160

// Encode renders s for a metadata value (at most 512 bytes).
func (s RotationStatus) Encode() string {
	s.LastError = plainText(s.LastError, maxLastError)
	b, _ := json.Marshal(s)
	return string(b)
}

// plainText is s in printable ASCII, at most n bytes: a reason kept where
// space is counted and shown as it is.
func plainText(s string, n int) string {
	out := make([]byte, 0, min(len(s), n))
	for i := 0; i < len(s) && len(out) < n; i++ {
		if c := s[i]; c >= 0x20 && c < 0x7f && c != '"' && c != '\\' {
			out = append(out, c)
		}
	}
	return string(out)
}

// DecodeRotationStatus reads what Encode wrote; nil for nothing or garbage.
func DecodeRotationStatus(v string) *RotationStatus {
	if v == "" { // most credentials: nothing to decode, nothing allocated
		return nil
	}
	var s RotationStatus
	if json.Unmarshal([]byte(v), &s) != nil || s.ID == "" {
		return nil
	}
	return &s
}

// Active reports whether the rotation is under way (running or waiting):
// a trigger while it is joins it.
func (s *RotationStatus) Active() bool {
	return s != nil && (s.State == RotationRunning || s.State == RotationWaiting)
}

// Due reports whether the rotation's next step may be tried at now.
func (s *RotationStatus) Due(now time.Time) bool {
	return s.Active() && (s.NextAttemptAt == nil || !now.Before(*s.NextAttemptAt))
}

// Rotation is a rotation of one credential through a rotator, as stored:
// its status and the values the rotator created, pending until promoted.
// Pending values are never in an answer: only the rotator sees them (test).
type Rotation struct {
	RotationStatus
	// KeepPrevious is the migration period chosen when it started
	// (RotationPolicy.KeepPrevious).
	KeepPrevious string `json:"keepPrevious,omitempty"`
	// Pending are the values create answered (and their expiry), until
	// promote makes them the credential's or the rotation fails.
	Pending          Secrets    `json:"pending,omitempty"`
	PendingExpiresAt *time.Time `json:"pendingExpiresAt,omitempty"`
}

// NewRotation returns a rotation of c (at its current version) through
// rotator, started by trigger at now, with the migration period of policy
// (nil: none).
func NewRotation(c *Credential, rotator, trigger string, policy *RotationPolicy, now time.Time) *Rotation {
	now = now.UTC().Truncate(time.Second)
	r := &Rotation{RotationStatus: RotationStatus{
		ID: "rtn_" + uuid.NewString(), Rotator: rotator, Trigger: trigger, State: RotationRunning, Step: StepCreate,
		StartedAt: now, UpdatedAt: now, FromVersion: c.Version,
	}}
	if policy != nil {
		r.KeepPrevious = policy.KeepPrevious
	}
	return r
}

// ErrStepDone is the answer of a transition of a step the rotation is no
// longer at: another replica (or an earlier try) recorded it already, so
// this result is dropped.
var ErrStepDone = errors.New("rotation: the step was recorded already")

func (r *Rotation) at(step string) error {
	if r.State != RotationRunning && !(r.State == RotationWaiting && step == StepFinish) || r.Step != step {
		return ErrStepDone
	}
	return nil
}

// next moves r to step, its attempts afresh.
func (r *Rotation) next(state, step string, now time.Time) {
	r.State, r.Step, r.Attempts, r.LastError, r.NextAttemptAt = state, step, 0, "", nil
	r.UpdatedAt = now.UTC().Truncate(time.Second)
}

// Created records what the rotator's create answered: the new values,
// pending; test is next.
func (r *Rotation) Created(values Secrets, expiresAt *time.Time, now time.Time) error {
	if err := r.at(StepCreate); err != nil {
		return err
	}
	r.Pending, r.PendingExpiresAt = values.Clone(), expiresAt
	r.next(RotationRunning, StepTest, now)
	return nil
}

// Tested records that the rotator found the pending values working;
// promote is next.
func (r *Rotation) Tested(now time.Time) error {
	if err := r.at(StepTest); err != nil {
		return err
	}
	r.next(RotationRunning, StepPromote, now)
	return nil
}

// Promoted records that the pending values became version of the
// credential: they are the credential's now, so the rotation keeps them
// no more. finish waits for the previous values' end (FinishDue).
func (r *Rotation) Promoted(version int, now time.Time) error {
	if err := r.at(StepPromote); err != nil {
		return err
	}
	r.ToVersion = version
	r.Pending, r.PendingExpiresAt = nil, nil
	r.next(RotationWaiting, StepFinish, now)
	return nil
}

// FinishDue reports whether the rotator may revoke the previous values at
// the provider: c serves them no more at now (their previousRevokeAt came,
// another rotation or a migration ended them, or c reads as revoked),
// never before.
func (s *RotationStatus) FinishDue(c *Credential, now time.Time) bool {
	return s.State == RotationWaiting && s.Step == StepFinish &&
		(!c.ServesVersion(s.FromVersion, now) || c.EffectiveStatus(now) == CredRevoked)
}

// WaitFor records that finish waits until until (c's previousRevokeAt).
func (r *Rotation) WaitFor(until time.Time) {
	u := until.UTC()
	r.NextAttemptAt = &u
}

// Finished records that the rotator revoked the previous values.
func (r *Rotation) Finished(now time.Time) error {
	if err := r.at(StepFinish); err != nil {
		return err
	}
	r.next(RotationSucceeded, StepFinish, now)
	return nil
}

// RetryPolicy is how a failed step is retried: after Backoff, doubled
// after each further failure up to an hour, at most MaxAttempts tries.
type RetryPolicy struct {
	Backoff     time.Duration
	MaxAttempts int
}

// Defaults of RetryPolicy.
const (
	DefaultRotationBackoff  = time.Minute
	DefaultRotationAttempts = 8
)

// Pause is the wait after the n-th failure in a row.
func (p RetryPolicy) Pause(n int) time.Duration {
	b := p.Backoff
	if b <= 0 {
		b = DefaultRotationBackoff
	}
	return min(time.Duration(float64(b)*math.Pow(2, float64(min(n-1, 12)))), time.Hour)
}

// Failed records that step failed for reason (never a value): a transient
// failure (the rotator unreachable, slow, answering 5xx or garbage) is
// retried after the policy's pause until its attempts are spent; a refusal
// (a 4xx: the provider said no; for test, the new values do not work)
// fails the rotation at once. A rotation that fails before promote drops
// its pending values; after it, the credential keeps the new ones. ended
// reports that the rotation failed (credential.rotation_failed).
func (r *Rotation) Failed(step, reason string, transient bool, now time.Time, p RetryPolicy) (ended bool, err error) {
	if err := r.at(step); err != nil {
		return false, err
	}
	r.Attempts++
	reason = plainText(reason, maxLastError)
	r.LastError = step + ": " + reason
	r.UpdatedAt = now.UTC().Truncate(time.Second)
	max := p.MaxAttempts
	if max <= 0 {
		max = DefaultRotationAttempts
	}
	if transient && r.Attempts < max {
		at := r.UpdatedAt.Add(p.Pause(r.Attempts))
		r.NextAttemptAt = &at
		return false, nil
	}
	if !transient {
		r.LastError = fmt.Sprintf("%s: refused: %s", step, reason)
	}
	r.State, r.NextAttemptAt = RotationFailed, nil
	r.Pending, r.PendingExpiresAt = nil, nil
	return true, nil
}

// Abandon fails r at once for reason (its rotator or credential is gone,
// or the credential was revoked), wherever it stands.
func (r *Rotation) Abandon(reason string, now time.Time) {
	r.State, r.NextAttemptAt, r.LastError = RotationFailed, nil, r.Step+": "+plainText(reason, maxLastError)
	r.Pending, r.PendingExpiresAt = nil, nil
	r.UpdatedAt = now.UTC().Truncate(time.Second)
}

// RestartAfterFailure is how long after a failed rotation the policy
// starts another one: a rotator that keeps failing is tried once a day,
// and rotation_overdue tells a person.
const RestartAfterFailure = 24 * time.Hour

// RotationStartDue reports whether c's policy starts a rotation through
// its rotator at now: it names one, is due, and no rotation is under way
// (nor failed within RestartAfterFailure).
func (c *Credential) RotationStartDue(now time.Time) bool {
	if c.Rotator == "" || !c.RotationIsDue(now) || c.Rotation.Active() {
		return false
	}
	if r := c.Rotation; r != nil && r.State == RotationFailed && now.Before(r.UpdatedAt.Add(RestartAfterFailure)) {
		return false
	}
	return true
}

package credgate_test

import (
	"errors"
	"testing"
	"time"

	"github.com/credgate/credgate"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestRotationDueAtCountsFromTheLastRotation(t *testing.T) {
	c := &credgate.Credential{CreatedAt: t0, Status: credgate.CredActive}
	if c.DueForRotation(nil) != nil {
		t.Fatal("a credential without a policy is due some time")
	}
	def := &credgate.RotationPolicy{Every: "30d"}
	if got := c.DueForRotation(def); !got.Equal(t0.Add(30 * 24 * time.Hour)) {
		t.Fatalf("tenant default from creation: %v", got)
	}
	c.RotationPolicy = &credgate.RotationPolicy{Every: "90d"}
	rotated := t0.Add(10 * 24 * time.Hour)
	c.LastRotatedAt = &rotated
	if got := c.DueForRotation(def); !got.Equal(rotated.Add(90 * 24 * time.Hour)) {
		t.Fatalf("own policy from the last rotation: %v", got)
	}
}

func TestRotationPolicyIsChecked(t *testing.T) {
	for _, p := range []credgate.RotationPolicy{{Every: ""}, {Every: "90"}, {Every: "0d"}, {Every: "90d", KeepPrevious: "soon"}} {
		c := &credgate.Credential{CredentialName: "x", AuthType: credgate.AuthAPIKey, Status: credgate.CredActive, Secrets: credgate.Secrets{"apiKey": "k"}, RotationPolicy: &p}
		err := c.Validate()
		if credgate.ErrorCode(err) != credgate.EValidationFailed {
			t.Fatalf("%+v: %v", p, err)
		}
	}
	c := &credgate.Credential{CredentialName: "x", AuthType: credgate.AuthAPIKey, Status: credgate.CredActive, Secrets: credgate.Secrets{"apiKey": "k"},
		RotationPolicy: &credgate.RotationPolicy{Every: "90d", KeepPrevious: "7d"}, Rotator: credgate.NewRotatorID()}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	c.Rotator = "rot_nope"
	if credgate.ErrorCode(c.Validate()) != credgate.EValidationFailed {
		t.Fatal("a malformed rotator id was taken")
	}
}

func dueCredential(due time.Time) *credgate.Credential {
	return &credgate.Credential{ID: "cred-1", Status: credgate.CredActive, RotationDueAt: &due}
}

func TestRotationNoticesOncePerDueDate(t *testing.T) {
	week := 7 * 24 * time.Hour
	c := dueCredential(t0)
	if got := c.RotationNoticeDue(t0.Add(-time.Minute), week); got != "" {
		t.Fatalf("before the due date: %q", got)
	}
	if got := c.RotationNoticeDue(t0.Add(24*time.Hour), week); got != credgate.EventRotationDue {
		t.Fatalf("a day past: %q", got)
	}
	c.MarkRotationNotice(credgate.EventRotationDue)
	if got := c.RotationNoticeDue(t0.Add(48*time.Hour), week); got != "" {
		t.Fatalf("due sent: %q", got)
	}
	if got := c.RotationNoticeDue(t0.Add(week), week); got != credgate.EventRotationOverdue {
		t.Fatalf("a week past: %q", got)
	}
	c.MarkRotationNotice(credgate.EventRotationOverdue)
	if got := c.RotationNoticeDue(t0.Add(2*week), week); got != "" {
		t.Fatalf("overdue sent: %q", got)
	}
	// The bookkeeping survives the metadata round trip.
	var back credgate.Credential
	back.ApplyWatch(credgate.WatchOf(c).Encode())
	back.RotationDueAt, back.Status = c.RotationDueAt, c.Status
	if got := back.RotationNoticeDue(t0.Add(2*week), week); got != "" {
		t.Fatalf("after a round trip: %q", got)
	}
	// A new due date (the credential was rotated) starts afresh.
	next := t0.Add(90 * 24 * time.Hour)
	c.RotationDueAt = &next
	if got := c.RotationNoticeDue(next, week); got != credgate.EventRotationDue {
		t.Fatalf("next due date: %q", got)
	}
	// Found past both at once: the overdue notice only.
	d := dueCredential(t0)
	if got := d.RotationNoticeDue(t0.Add(30*24*time.Hour), week); got != credgate.EventRotationOverdue {
		t.Fatalf("found late: %q", got)
	}
	d.MarkRotationNotice(credgate.EventRotationOverdue)
	if got := d.RotationNoticeDue(t0.Add(31*24*time.Hour), week); got != "" {
		t.Fatalf("the due notice after the overdue one: %q", got)
	}
	// Inactive and revoked credentials are not watched.
	for _, st := range []string{credgate.CredInactive, credgate.CredRevoked} {
		x := dueCredential(t0)
		x.Status = st
		if got := x.RotationNoticeDue(t0.Add(week), week); got != "" || x.RotationIsDue(t0.Add(week)) {
			t.Fatalf("%s: %q", st, got)
		}
	}
}

func TestRotationBuckets(t *testing.T) {
	week := 7 * 24 * time.Hour
	for _, tt := range []struct {
		at   time.Duration
		want string
	}{{-40 * 24 * time.Hour, ""}, {-20 * 24 * time.Hour, "lt_30d"}, {-time.Hour, "lt_7d"}, {0, "due"}, {week, "overdue"}} {
		if got := dueCredential(t0).RotationBucket(t0.Add(tt.at), week); got != tt.want {
			t.Errorf("%v from the due date: %q, want %q", tt.at, got, tt.want)
		}
	}
	n := credgate.NewInventoryCounts()
	n.Count(dueCredential(t0), t0.Add(time.Hour))
	if n.Rotation["due"] != 1 {
		t.Fatalf("counts: %v", n.Rotation)
	}
}

func newRotation() *credgate.Rotation {
	c := &credgate.Credential{ID: "cred-1", Version: 3}
	return credgate.NewRotation(c, credgate.NewRotatorID(), credgate.TriggerRequest, &credgate.RotationPolicy{Every: "90d", KeepPrevious: "7d"}, t0)
}

// The whole way, each transition once; a result recorded twice (a second
// replica's, an earlier try's) is refused and changes nothing.
func TestRotationStepsInOrder(t *testing.T) {
	r := newRotation()
	if r.State != credgate.RotationRunning || r.Step != credgate.StepCreate || r.FromVersion != 3 || r.KeepPrevious != "7d" || !r.Active() || !r.Due(t0) {
		t.Fatalf("new: %+v", r)
	}
	if err := r.Tested(t0); !errors.Is(err, credgate.ErrStepDone) {
		t.Fatalf("test before create: %v", err)
	}
	if err := r.Created(credgate.Secrets{"apiKey": "new"}, nil, t0); err != nil {
		t.Fatal(err)
	}
	if r.Step != credgate.StepTest || r.Pending["apiKey"] != "new" {
		t.Fatalf("created: %+v", r)
	}
	if err := r.Created(credgate.Secrets{"apiKey": "other"}, nil, t0); !errors.Is(err, credgate.ErrStepDone) || r.Pending["apiKey"] != "new" {
		t.Fatalf("a second create's answer replaced the first: %v %+v", err, r)
	}
	if err := r.Tested(t0); err != nil || r.Step != credgate.StepPromote {
		t.Fatalf("tested: %v %+v", err, r)
	}
	if err := r.Promoted(4, t0); err != nil {
		t.Fatal(err)
	}
	if r.State != credgate.RotationWaiting || r.Step != credgate.StepFinish || r.ToVersion != 4 || r.Pending != nil || !r.Active() {
		t.Fatalf("promoted: %+v", r)
	}
	if err := r.Promoted(5, t0); !errors.Is(err, credgate.ErrStepDone) {
		t.Fatalf("promoted twice: %v", err)
	}
	if err := r.Finished(t0); err != nil || r.State != credgate.RotationSucceeded || r.Active() {
		t.Fatalf("finished: %v %+v", err, r)
	}
	if err := r.Finished(t0); !errors.Is(err, credgate.ErrStepDone) {
		t.Fatalf("finished twice: %v", err)
	}
}

// finish waits until the credential serves the previous values no more.
func TestFinishWaitsForThePreviousValuesEnd(t *testing.T) {
	r := newRotation()
	_ = r.Created(credgate.Secrets{"apiKey": "new"}, nil, t0)
	_ = r.Tested(t0)
	until := t0.Add(7 * 24 * time.Hour)
	c := &credgate.Credential{Version: 4, PreviousVersion: 3, PreviousRevokeAt: &until}
	if r.FinishDue(c, t0) {
		t.Fatal("finish due before promote")
	}
	_ = r.Promoted(4, t0)
	if r.FinishDue(c, t0) {
		t.Fatal("finish due while version 3 is served")
	}
	r.WaitFor(until)
	if r.Due(t0) || !r.Due(until) {
		t.Fatalf("waiting: %+v", r.NextAttemptAt)
	}
	if !r.FinishDue(c, until) {
		t.Fatal("finish not due at previousRevokeAt")
	}
	revoked := *c
	revoked.Status = credgate.CredRevoked // a revoked credential serves nothing
	if !r.FinishDue(&revoked, t0) {
		t.Fatal("finish not due once the credential is revoked")
	}
	c.PreviousVersion, c.PreviousRevokeAt = 0, nil // ended by another rotation, or a rotation without migration
	if !r.FinishDue(c, t0) {
		t.Fatal("finish not due once the previous values ended")
	}
}

func TestFailedStepsRetryThenFail(t *testing.T) {
	p := credgate.RetryPolicy{Backoff: time.Minute, MaxAttempts: 3}
	r := newRotation()
	ended, err := r.Failed(credgate.StepCreate, "the rotator answered 500", true, t0, p)
	if err != nil || ended || r.Attempts != 1 || r.State != credgate.RotationRunning || !r.NextAttemptAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("first failure: %v %v %+v", ended, err, r)
	}
	if r.Due(t0) || !r.Due(t0.Add(time.Minute)) {
		t.Fatal("retried before its pause")
	}
	if _, err := r.Failed(credgate.StepTest, "x", true, t0, p); !errors.Is(err, credgate.ErrStepDone) {
		t.Fatalf("a failure of another step was recorded: %v", err)
	}
	_, _ = r.Failed(credgate.StepCreate, "timed out", true, t0, p)
	if !r.NextAttemptAt.Equal(t0.Add(2 * time.Minute)) {
		t.Fatalf("second pause: %v", r.NextAttemptAt)
	}
	ended, _ = r.Failed(credgate.StepCreate, "timed out", true, t0, p)
	if !ended || r.State != credgate.RotationFailed || r.Active() || r.LastError != "create: timed out" {
		t.Fatalf("attempts spent: %+v", r)
	}
	// Success after failures starts the next step afresh.
	r = newRotation()
	_, _ = r.Failed(credgate.StepCreate, "x", true, t0, p)
	_ = r.Created(credgate.Secrets{"apiKey": "new"}, nil, t0)
	if r.Attempts != 0 || r.LastError != "" || r.NextAttemptAt != nil {
		t.Fatalf("after success: %+v", r)
	}
	if got := (credgate.RetryPolicy{Backoff: time.Minute}).Pause(20); got != time.Hour {
		t.Fatalf("pause is bounded: %v", got)
	}
}

// A test that refuses the new values fails the rotation at once and drops
// them: the credential keeps serving the current ones.
func TestARefusedTestDropsThePendingValues(t *testing.T) {
	r := newRotation()
	_ = r.Created(credgate.Secrets{"apiKey": "new"}, nil, t0)
	ended, err := r.Failed(credgate.StepTest, "422", false, t0, credgate.RetryPolicy{})
	if err != nil || !ended || r.State != credgate.RotationFailed || r.Pending != nil || r.LastError != "test: refused: 422" {
		t.Fatalf("%v %v %+v", ended, err, r)
	}
	if _, err := r.Failed(credgate.StepTest, "x", true, t0, credgate.RetryPolicy{}); !errors.Is(err, credgate.ErrStepDone) {
		t.Fatal("a failed rotation took another failure")
	}
	r = newRotation()
	_ = r.Created(credgate.Secrets{"apiKey": "new"}, nil, t0)
	r.Abandon("the rotator was deleted", t0)
	if r.State != credgate.RotationFailed || r.Pending != nil || r.LastError != "test: the rotator was deleted" {
		t.Fatalf("abandoned: %+v", r)
	}
}

// The policy starts a rotation only when due, with a rotator, none under
// way, and not again within a day of a failure.
func TestRotationStartDue(t *testing.T) {
	c := dueCredential(t0)
	if c.RotationStartDue(t0) {
		t.Fatal("started without a rotator")
	}
	c.Rotator = credgate.NewRotatorID()
	if c.RotationStartDue(t0.Add(-time.Second)) || !c.RotationStartDue(t0) {
		t.Fatal("due date")
	}
	r := newRotation()
	c.Rotation = &r.RotationStatus
	if c.RotationStartDue(t0) {
		t.Fatal("started beside one under way")
	}
	r.Abandon("x", t0)
	if c.RotationStartDue(t0.Add(time.Hour)) || !c.RotationStartDue(t0.Add(credgate.RestartAfterFailure)) {
		t.Fatal("restart after a failure")
	}
}

func TestRotationStatusRoundTrip(t *testing.T) {
	r := newRotation()
	_, _ = r.Failed(credgate.StepCreate, string(make([]byte, 1000)), true, t0, credgate.RetryPolicy{})
	enc := r.RotationStatus.Encode()
	if len(enc) > 512 {
		t.Fatalf("%d bytes do not fit a metadata value", len(enc))
	}
	back := credgate.DecodeRotationStatus(enc)
	if back == nil || back.ID != r.ID || back.Attempts != 1 || back.State != credgate.RotationRunning {
		t.Fatalf("%+v", back)
	}
	if credgate.DecodeRotationStatus("{") != nil || credgate.DecodeRotationStatus("") != nil {
		t.Fatal("garbage decoded")
	}
}

func TestRotatorValidation(t *testing.T) {
	r := &credgate.Rotator{URL: " https://rotator.example/rotate "}
	if err := r.Validate(); err != nil || r.URL != "https://rotator.example/rotate" || r.Timeout() != credgate.DefaultRotatorTimeout {
		t.Fatalf("%v %+v", err, r)
	}
	for _, bad := range []credgate.Rotator{{}, {URL: "http://rotator.example"}, {URL: "https://x.example", TimeoutSeconds: 121}} {
		if credgate.ErrorCode(bad.Validate()) != credgate.EValidationFailed {
			t.Fatalf("%+v taken", bad)
		}
	}
	if !credgate.ValidRotatorID(credgate.NewRotatorID()) || credgate.ValidRotatorID("rot_x") || credgate.ValidRotatorID("wh_"+credgate.NewRotatorID()[4:]) {
		t.Fatal("rotator ids")
	}
}

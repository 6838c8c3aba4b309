package credgate

import (
	"testing"
	"time"
)

func TestExpiryNoticesOncePerThreshold(t *testing.T) {
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	exp := now.Add(40 * 24 * time.Hour)
	c := &Credential{Status: CredActive, ExpiresAt: &exp}
	th := []int{30, 7, 1}
	at := func(daysLeft float64) time.Time { return exp.Add(-time.Duration(daysLeft * float64(24*time.Hour))) }
	steps := []struct {
		left    float64
		days    int
		expired bool
	}{
		{40, 0, false}, {30.5, 0, false}, {29.9, 30, false}, {29, 0, false},
		{6.5, 7, false}, {6, 0, false}, {0.5, 1, false}, {0.1, 0, false}, {-1, 0, true}, {-2, 0, false},
	}
	for _, s := range steps {
		days, expired := c.NoticeDue(at(s.left), th)
		if days != s.days || expired != s.expired {
			t.Fatalf("%.1f days left: due %d/%v, want %d/%v", s.left, days, expired, s.days, s.expired)
		}
		if days > 0 || expired {
			c.MarkSent(days, expired, th)
		}
	}
	// A new expiry starts afresh; one set inside 7 days gets the 7-day
	// notice only, and the 30-day one counts as sent.
	exp2 := at(-10).Add(5 * 24 * time.Hour)
	c.ExpiresAt = &exp2
	now2 := at(-10)
	if days, _ := c.NoticeDue(now2, th); days != 7 {
		t.Fatalf("new expiry 5 days out: due %d, want 7", days)
	}
	c.MarkSent(7, false, th)
	if days, _ := c.NoticeDue(now2, th); days != 0 {
		t.Fatalf("after the 7-day notice: due %d", days)
	}
	// Bookkeeping survives its stored form.
	var back Credential
	back.ExpiresAt = &exp2
	back.ApplyWatch(WatchOf(c).Encode())
	if days, _ := back.NoticeDue(now2, th); days != 0 {
		t.Fatalf("the stored notices were lost: due %d", days)
	}
	// Revoked or inactive credentials get no notices.
	c.Status = CredInactive
	if days, expired := c.NoticeDue(exp2.Add(time.Hour), th); days != 0 || expired {
		t.Fatal("an inactive credential is due a notice")
	}
}

func TestRevokeAtAndRefreshAt(t *testing.T) {
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	later, exp := now.Add(time.Hour), now.Add(2*time.Hour)
	c := &Credential{Status: CredActive, RevokeAt: &later, ExpiresAt: &exp, AutoRefresh: true, RefreshLeadTime: "30m"}
	if c.EffectiveStatus(now) != CredActive || c.EffectiveStatus(later) != CredRevoked || c.Servable(later) == nil {
		t.Fatal("revokeAt does not revoke at its time")
	}
	if at, ok := c.RefreshAt(); !ok || !at.Equal(exp.Add(-30*time.Minute)) {
		t.Fatalf("RefreshAt %v %v", at, ok)
	}
	retry := exp.Add(-10 * time.Minute)
	c.Refresh = &RefreshState{Failures: 2, NextAttemptAt: &retry}
	if at, _ := c.RefreshAt(); !at.Equal(retry) {
		t.Fatalf("a failing refresh is retried at %v, want its backoff %v", at, retry)
	}
	c.RefreshLeadTime = ""
	c.Refresh = nil
	if at, _ := c.RefreshAt(); !at.Equal(exp.Add(-DefaultRefreshLead)) {
		t.Fatalf("default lead: %v", at)
	}
}

func TestAutoRefreshNeedsARefreshableCredential(t *testing.T) {
	c := &Credential{CredentialName: "k", AuthType: AuthAPIKey, Status: CredActive, AutoRefresh: true, Secrets: Secrets{"apiKey": "x"}}
	err := c.Validate()
	if fe := FieldsOf(err); fe["autoRefresh"] == "" {
		t.Fatalf("autoRefresh on an api_key: %v", err)
	}
	c = &Credential{CredentialName: "o", AuthType: AuthOAuth2Bearer, Status: CredActive, AutoRefresh: true, RefreshLeadTime: "5x",
		TokenEndpoint: "https://auth.example.com/token", Secrets: Secrets{"accessToken": "a", "refreshToken": "r"}}
	if fe := FieldsOf(c.Validate()); fe["refreshLeadTime"] == "" || fe["autoRefresh"] != "" {
		t.Fatalf("fields: %v", fe)
	}
}

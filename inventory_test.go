package credgate_test

import (
	"testing"
	"time"

	"github.com/credgate/credgate"
)

func TestCredentialPositionRoundTripsAndRefusesForgeries(t *testing.T) {
	p := &credgate.CredentialPosition{IntegrationID: "billing", CreatedAt: time.Unix(1700000000, 0).UTC(), ID: "cred-0b6b9e3e-5f0c-4c8e-9d3a-2a7c1f1e9b10"}
	got, err := credgate.ParseCredentialPosition(p.String())
	if err != nil || *got != *p {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	for _, bad := range []string{"", "billing", "billing/1/x", "../x/1/cred-0b6b9e3e-5f0c-4c8e-9d3a-2a7c1f1e9b10",
		"billing/now/cred-0b6b9e3e-5f0c-4c8e-9d3a-2a7c1f1e9b10", "billing/1/0b6b9e3e-5f0c-4c8e-9d3a-2a7c1f1e9b10", "a/b/1/cred-0b6b9e3e-5f0c-4c8e-9d3a-2a7c1f1e9b10"} {
		if _, err := credgate.ParseCredentialPosition(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestInventoryOrderAndFilter(t *testing.T) {
	t0 := time.Now().Truncate(time.Second)
	a := &credgate.Credential{ID: "cred-a", CreatedAt: t0}
	b := &credgate.Credential{ID: "cred-b", CreatedAt: t0}
	c := &credgate.Credential{ID: "cred-c", CreatedAt: t0.Add(time.Second)}
	list := []*credgate.Credential{b, a, c}
	credgate.SortInventory(list)
	if list[0] != c || list[1] != a || list[2] != b {
		t.Fatalf("order: %s %s %s; want newest first, then by id", list[0].ID, list[1].ID, list[2].ID)
	}
	if pos := credgate.PositionOf(a); !pos.Precedes(b) || pos.Precedes(c) || pos.Precedes(a) {
		t.Fatal("Precedes disagrees with the order")
	}
	soon := t0.Add(24 * time.Hour)
	cr := &credgate.Credential{IntegrationID: "s", AuthType: credgate.AuthAPIKey, Status: credgate.CredActive, ExpiresAt: &soon}
	for f, want := range map[*credgate.CredentialFilter]bool{
		{}:                                      true,
		{Status: credgate.CredActive}:           true,
		{Status: credgate.CredExpired}:          false,
		{AuthType: credgate.AuthBasic}:          false,
		{IntegrationID: "other"}:                false,
		{ExpiresBefore: t0.Add(48 * time.Hour)}: true,
		{ExpiresBefore: t0.Add(time.Hour)}:      false,
	} {
		if got := f.Matches(cr, t0); got != want {
			t.Errorf("%+v: %v", *f, got)
		}
	}
	if got := (credgate.CredentialFilter{ExpiresBefore: t0}).Matches(&credgate.Credential{}, t0); got {
		t.Error("a credential without expiry matched expiresBefore")
	}
	if fe := (credgate.CredentialFilter{Status: "gone", AuthType: "saml", IntegrationID: "a..b"}).Check(); len(fe) != 3 {
		t.Errorf("Check: %v", fe)
	}
	for in, want := range map[string]time.Duration{"30d": 30 * 24 * time.Hour, "12h": 12 * time.Hour, "90m": 90 * time.Minute} {
		if d, err := credgate.ParseWithin(in); err != nil || d != want {
			t.Errorf("%s: %v %v", in, d, err)
		}
	}
	// 9223372036854775807m overflowed to -1 minute and passed.
	for _, bad := range []string{"", "30", "d", "-1d", "0d", "1w", "3651d", "1.5d", "9223372036854775807m", "9223372036854775807d", "5256001m", "87601h"} {
		if _, err := credgate.ParseWithin(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// The end of an integration is a position nothing of it comes after, and
// it survives the cursor's text.
func TestEndOfAnIntegration(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	c := &credgate.Credential{IntegrationID: "stripe", ID: "cred-3b241101-e2bb-4255-8caf-4136c566a962", CreatedAt: now}
	end := credgate.EndOf(c)
	back, err := credgate.ParseCredentialPosition(end.String())
	if err != nil || !back.PastEnd() || back.IntegrationID != "stripe" {
		t.Fatalf("%s read back as %+v, %v", end, back, err)
	}
	for _, d := range []time.Duration{0, -time.Hour, -24 * 365 * time.Hour} {
		if back.Precedes(&credgate.Credential{IntegrationID: "stripe", ID: c.ID, CreatedAt: now.Add(d)}) {
			t.Errorf("a credential made %s from now comes after the end", d)
		}
	}
	if credgate.PositionOf(c).PastEnd() {
		t.Error("a credential's own position is past the end")
	}
}

package credgate

import (
	"testing"
	"time"
)

func TestGrantRules(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	known := func(r string) bool { return r == "credential_reader" || r == "integration_admin" }
	later, past, far := now.Add(time.Hour), now.Add(-time.Hour), now.Add(11*365*24*time.Hour)
	good := Grant{Subject: "system:serviceaccount:payments:checkout", Role: "credential_reader", Integrations: []string{"stripe_production", "sendgrid_*"}, ExpiresAt: &later}
	if err := good.Validate(now, known); err != nil {
		t.Fatalf("a good grant: %v", err)
	}
	for name, change := range map[string]func(*Grant){
		"subject and group": func(g *Grant) { g.Group = "team" },
		"neither":           func(g *Grant) { g.Subject = "" },
		"credgate":          func(g *Grant) { g.Subject = SystemSubject },
		"unknown role":      func(g *Grant) { g.Role = "root" },
		"no integrations":   func(g *Grant) { g.Integrations = nil },
		"a path":            func(g *Grant) { g.Integrations = []string{"a/b"} },
		"an inner glob":     func(g *Grant) { g.Integrations = []string{"a*b"} },
		"a dot-dot prefix":  func(g *Grant) { g.Integrations = []string{"a..*"} },
		"twice":             func(g *Grant) { g.Integrations = []string{"x", "x"} },
		"expired":           func(g *Grant) { g.ExpiresAt = &past },
		"too far":           func(g *Grant) { g.ExpiresAt = &far },
	} {
		g := good
		g.Integrations = append([]string(nil), good.Integrations...)
		change(&g)
		if err := g.Validate(now, known); ErrorCode(err) != EValidationFailed {
			t.Errorf("%s: %v", name, err)
		}
	}
	for p, ok := range map[string]bool{"stripe": true, "sendgrid_*": true, "*": true, "a.*": true, ".x*": false, "a**": false, "": false} {
		if ValidIntegrationPattern(p) != ok {
			t.Errorf("ValidIntegrationPattern(%q) != %v", p, ok)
		}
	}
	id := NewGrantID()
	cfg := ConfigGrantID("acme", good)
	if !ValidGrantID(id) || !ValidGrantID(cfg) || ValidGrantID("grant_x") || ValidGrantID("wh_"+id[6:]) || cfg == ConfigGrantID("globex", good) {
		t.Fatalf("grant ids: %s, %s", id, cfg)
	}
}

func TestApplicableGrants(t *testing.T) {
	now := time.Now()
	past := now.Add(-time.Second)
	all := []Grant{
		{ID: "a", Subject: "app"},
		{ID: "b", Group: "team"},
		{ID: "c", Subject: "other"},
		{ID: "d", Subject: "app", ExpiresAt: &past},
	}
	got := ApplicableGrants(all, &Principal{Subject: "app", Groups: []string{"team", "x"}}, now)
	if len(got) != 2 || got[0].ID != "a" || got[1].ID != "b" {
		t.Fatalf("ApplicableGrants = %+v; want a and b (c is another's, d expired)", got)
	}
}

package vaultstore

import (
	"testing"

	"github.com/credgate/credgate"
)

// A caller token is kept for exactly the principal and grant set it was
// minted for: any change of who, roles or grants is another key, and a
// field's text cannot pass for its neighbour's (fields end in a NUL, which
// a verified subject cannot hold; a grant's parts are ids and patterns,
// which hold no ':' or '|'). The key is computed on every request, without
// an allocation.
func TestPrincipalKeyTellsCallersAndGrantSetsApart(t *testing.T) {
	base := credgate.Principal{Issuer: "https://idp.example", Subject: "app", Tenant: "acme", Email: "app@acme.example", Name: "App",
		Roles: []string{"credential_reader"}, Grants: []credgate.Grant{{ID: "g1", Role: "credential_reader", Integrations: []string{"stripe", "pay-*"}}}}
	variants := map[string]func(p *credgate.Principal){
		"issuer":      func(p *credgate.Principal) { p.Issuer = "https://other.example" },
		"subject":     func(p *credgate.Principal) { p.Subject = "app2" },
		"tenant":      func(p *credgate.Principal) { p.Tenant = "globex" },
		"email":       func(p *credgate.Principal) { p.Email = "x@acme.example" },
		"name":        func(p *credgate.Principal) { p.Name = "Other" },
		"a role more": func(p *credgate.Principal) { p.Roles = []string{"credential_reader", "integration_admin"} },
		"no grant":    func(p *credgate.Principal) { p.Grants = nil },
		"a grant's role": func(p *credgate.Principal) {
			p.Grants = []credgate.Grant{{ID: "g1", Role: "integration_admin", Integrations: []string{"stripe", "pay-*"}}}
		},
		"a grant's scope": func(p *credgate.Principal) {
			p.Grants = []credgate.Grant{{ID: "g1", Role: "credential_reader", Integrations: []string{"stripe"}}}
		},
		"a grant more": func(p *credgate.Principal) {
			p.Grants = append(p.Grants, credgate.Grant{ID: "g2", Role: "credential_reader", Integrations: []string{"x"}})
		},
		"subject into name": func(p *credgate.Principal) { p.Subject, p.Name = "ap", "pApp" },
		"roles into grants": func(p *credgate.Principal) {
			p.Roles = nil
			p.Grants = []credgate.Grant{{ID: "credential_reader", Role: "g1", Integrations: []string{"stripe", "pay-*"}}}
		},
	}
	want := principalKey(&base)
	same := base
	if principalKey(&same) != want {
		t.Fatal("the same principal has two keys")
	}
	for name, change := range variants {
		p := base
		change(&p)
		if principalKey(&p) == want {
			t.Errorf("%s: same key", name)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = principalKey(&base) }); n != 0 {
		t.Errorf("principalKey allocates %v times", n)
	}
}

package policy_test

import (
	"strings"
	"testing"

	"github.com/credgate/credgate/policy"
)

func TestMatches(t *testing.T) {
	for _, tt := range []struct {
		pattern, integration string
		want                 bool
	}{
		{"stripe", "stripe", true}, {"stripe", "stripe2", false}, {"stripe", "strip", false},
		{"sendgrid_*", "sendgrid_eu", true}, {"sendgrid_*", "sendgrid_", true}, {"sendgrid_*", "sendgrid", false},
		{"*", "anything", true},
	} {
		if got := policy.Matches(tt.pattern, tt.integration); got != tt.want {
			t.Errorf("Matches(%q, %q) = %v", tt.pattern, tt.integration, got)
		}
	}
}

func TestAccessIsRolesPlusGrants(t *testing.T) {
	a := policy.Access{Roles: []string{"integration_viewer"}, Scopes: []policy.Scope{
		{ID: "g1", Role: policy.CredentialReader, Integrations: []string{"stripe_production"}},
		{ID: "g2", Role: policy.IntegrationAdmin, Integrations: []string{"sendgrid_*"}},
	}}
	for _, tt := range []struct {
		p           policy.Permission
		integration string
		want        bool
	}{
		{policy.CredentialsMetaRead, "crm", true}, // the tenant-wide viewer role
		{policy.CredentialsRead, "crm", false},
		{policy.CredentialsRead, "stripe_production", true}, // g1
		{policy.CredentialsWrite, "stripe_production", false},
		{policy.CredentialsWrite, "sendgrid_eu", true}, // g2
		{policy.WebhooksManage, "sendgrid_eu", false},  // never a grant's
		{policy.GrantsManage, "sendgrid_eu", false},
	} {
		if got := a.Allows(tt.p, tt.integration); got != tt.want {
			t.Errorf("Allows(%s, %s) = %v", tt.p, tt.integration, got)
		}
	}
	if through := a.Through(policy.CredentialsRead, "sendgrid_us"); len(through) != 1 || through[0].ID != "g2" {
		t.Fatalf("Through = %v", through)
	}
	if !a.Some(policy.CredentialsWrite) || a.Some(policy.WebhooksManage) || a.Tenantwide(policy.CredentialsRead) {
		t.Fatal("Some or Tenantwide")
	}
}

// TestAGrantsPolicyReachesOnlyItsIntegrations: every path of a grant's
// policy is of the integrations it names, but the records keyed by other
// things that its role writes; it never lists a folder, reads the
// credential index, or reaches webhooks, the outbox or the grants.
func TestAGrantsPolicyReachesOnlyItsIntegrations(t *testing.T) {
	l := policy.Layout{Mount: "credgate"}
	for _, role := range policy.Roles() {
		text := l.RenderGrant("acme", policy.Scope{ID: "grant_x", Role: role, Integrations: []string{"stripe_production", "sendgrid_*"}})
		paths := 0
		for _, line := range strings.Split(text, "\n") {
			path, ok := strings.CutPrefix(line, "path ")
			if !ok {
				continue
			}
			paths++
			p := strings.Trim(strings.TrimSuffix(path, " {"), `"`)
			_, rest, _ := strings.Cut(p, "/tenants/acme/")
			switch {
			case rest == "services/stripe_production", rest == "services/sendgrid_*",
				rest == "credentials/stripe_production/*", rest == "credentials/sendgrid_*",
				rest == "inventory/stripe_production/*", rest == "inventory/sendgrid_*":
			case role == policy.IntegrationAdmin && (rest == "rotations/stripe_production/*" || rest == "rotations/sendgrid_*"):
				// a deleted credential's rotation goes with it
			case role == policy.IntegrationAdmin && (rest == "ledgers/stripe_production/*" || rest == "ledgers/sendgrid_*"):
				// who read its integrations' credentials
			case role != policy.IntegrationViewer && role != policy.CredentialReader && strings.HasPrefix(rest, "idempotency/"):
				// the answers its own POSTs keep, keyed by caller and key
			case role == policy.IntegrationAdmin && (strings.HasPrefix(rest, "service-names/") || strings.HasPrefix(rest, "credential-index/") || strings.HasPrefix(rest, "credential-locks/")):
				if strings.Contains(p, "/data/tenants/acme/credential-index/") && !strings.Contains(text, "create") {
					t.Errorf("%s: index read without a write", role)
				}
			default:
				t.Errorf("%s: a path outside its integrations: %s", role, p)
			}
		}
		if paths < 4 {
			t.Errorf("%s: %d paths:\n%s", role, paths, text)
		}
		if role != policy.IntegrationViewer && !strings.Contains(text, `path "credgate/data/tenants/acme/credentials/stripe_production/*"`) {
			t.Errorf("%s: no read of its integration's values:\n%s", role, text)
		}
		if role == policy.IntegrationViewer && strings.Contains(text, "/data/tenants/acme/credentials/") {
			t.Errorf("a viewer's grant reads values:\n%s", text)
		}
	}
	if n := policy.GrantPolicyName("Acme", "grant_x"); !strings.HasPrefix(n, "credgate-acme-grant_x-") || n == policy.GrantPolicyName("acme", "grant_x") {
		t.Fatalf("a grant's policy name of a mixed-case tenant: %s", n)
	}
}

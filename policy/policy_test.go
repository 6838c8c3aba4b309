package policy_test

import (
	"strings"
	"testing"

	"github.com/credgate/credgate/policy"
)

func TestRenderStaysInsideTheTenant(t *testing.T) {
	l := policy.Layout{Mount: "credgate"}
	for _, r := range policy.Roles() {
		text := l.Render("acme", r)
		paths := 0
		for _, line := range strings.Split(text, "\n") {
			if !strings.HasPrefix(line, "path ") {
				continue
			}
			paths++
			if !strings.HasPrefix(line, `path "credgate/data/tenants/acme/`) && !strings.HasPrefix(line, `path "credgate/metadata/tenants/acme/`) {
				t.Errorf("%s: path outside the tenant: %s", r, line)
			}
		}
		// Every role reads services: at least their data and metadata.
		if paths < 2 || !strings.Contains(text, `path "credgate/data/tenants/acme/services/*" {`) {
			t.Errorf("%s renders %d paths and no read of the tenant's services:\n%s", r, paths, text)
		}
	}
}

func TestRenderGrantsWhatEachRoleNeeds(t *testing.T) {
	l := policy.Layout{Mount: "credgate"}
	tests := []struct {
		role policy.Role
		path string
		caps string
	}{
		{policy.IntegrationViewer, "credgate/metadata/tenants/acme/credentials/*", `["list", "read"]`},
		{policy.CredentialReader, "credgate/data/tenants/acme/credentials/*", `["read"]`},
		{policy.IntegrationAdmin, "credgate/data/tenants/acme/credentials/*", `["create", "read", "update"]`},
		{policy.IntegrationAdmin, "credgate/metadata/tenants/acme/credentials/*", `["create", "delete", "list", "patch", "read", "update"]`},
		{policy.IntegrationAdmin, "credgate/data/tenants/acme/credential-locks/*", `["create", "read", "update"]`},
	}
	for _, tt := range tests {
		want := "path \"" + tt.path + "\" {\n  capabilities = " + tt.caps + "\n}"
		if text := l.Render("acme", tt.role); !strings.Contains(text, want) {
			t.Errorf("%s: want\n%s\nin\n%s", tt.role, want, text)
		}
	}
}

func TestOnlyAdminAndReaderMayReadSecretValues(t *testing.T) {
	l := policy.Layout{Mount: "credgate"}
	tests := []struct {
		role      policy.Role
		canValues bool
		canWrite  bool
	}{
		{policy.IntegrationAdmin, true, true},
		{policy.CredentialReader, true, false},
		{policy.IntegrationViewer, false, false},
	}
	for _, tt := range tests {
		text := l.Render("acme", tt.role)
		values := strings.Contains(text, `path "credgate/data/tenants/acme/credentials/*"`)
		if values != tt.canValues {
			t.Errorf("%s: Vault policy grants secret values = %v; want %v", tt.role, values, tt.canValues)
		}
		if got := policy.Allowed([]string{string(tt.role)}, policy.CredentialsRead); got != tt.canValues {
			t.Errorf("%s: local check CredentialsRead = %v; want %v", tt.role, got, tt.canValues)
		}
		if got := policy.Allowed([]string{string(tt.role)}, policy.ServicesWrite); got != tt.canWrite {
			t.Errorf("%s: local check ServicesWrite = %v; want %v", tt.role, got, tt.canWrite)
		}
	}
}

func TestNamesOfTenantsDifferingInCaseDiffer(t *testing.T) {
	a, b := policy.Name("acme", policy.IntegrationAdmin), policy.Name("Acme", policy.IntegrationAdmin)
	if a != "credgate-acme-integration_admin" {
		t.Fatalf("Name(acme) = %q", a)
	}
	if strings.EqualFold(a, b) {
		t.Fatalf("Name(acme) and Name(Acme) fold to one Vault policy: %q, %q", a, b)
	}
}

func TestRoleMap(t *testing.T) {
	m := policy.RoleMap{"admins": {policy.IntegrationAdmin}, "ops": {policy.CredentialReader, policy.IntegrationViewer}}
	got := m.Map([]string{"ops", "admins", "unknown", "ops"})
	want := "credential_reader,integration_admin,integration_viewer"
	if strings.Join(got, ",") != want {
		t.Fatalf("Map = %v; want %s", got, want)
	}
	if errs := (policy.RoleMap{"x": {"superuser"}}).Validate(); len(errs) != 1 {
		t.Fatalf("Validate of an unknown role: %v", errs)
	}
}

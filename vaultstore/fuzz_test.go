package vaultstore

import (
	"strings"
	"testing"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/policy"
)

// FuzzPaths builds every record path from ids a request could carry: for
// ids the API accepts, no path leaves tenants/<tenant>/ or its record's
// folder, has an empty, "." or ".." segment, or falls outside what the
// tenant's Vault policy grants.
func FuzzPaths(f *testing.F) {
	f.Add("acme", "stripe", "cred-3993f31c-802f-4acf-8ae0-a4180aa7ba24", "Stripe")
	f.Add("a..b", "../x", "3993F31C-802F-4ACF-8AE0-A4180AA7BA24", "../../sys")
	f.Add("Acme", "svc_1.2-3", "cred-00000000-0000-4000-8000-000000000000", "")
	f.Add("t", "s/x", "cred-../y", "name/with/slashes")
	layout := policy.Layout{Mount: "credgate"}
	f.Fuzz(func(t *testing.T, tenant, service, cred, name string) {
		cred, ok := credgate.CanonicalCredentialID(cred)
		if !credgate.ValidID(tenant) || !credgate.ValidID(service) || !ok {
			return
		}
		k := &session{tenant: tenant}
		grants := layout.Render(tenant, policy.IntegrationAdmin)
		for _, p := range []struct{ folder, path string }{
			{policy.FolderServices, k.servicePath(service)},
			{policy.FolderServiceNames, k.serviceNamePath(name)},
			{policy.FolderCredentials, k.credPath(service, cred)},
			{policy.FolderCredIndex, k.credIndexPath(cred)},
			{policy.FolderCredLocks, k.credLockPath(cred)},
		} {
			prefix := policy.TenantPrefix(tenant) + p.folder + "/"
			rest, found := strings.CutPrefix(p.path, prefix)
			if !found || rest == "" {
				t.Fatalf("%s is not under %s", p.path, prefix)
			}
			for _, seg := range strings.Split(p.path, "/") {
				if seg == "" || seg == "." || seg == ".." {
					t.Fatalf("%s has the segment %q", p.path, seg)
				}
			}
			if !strings.Contains(grants, `path "credgate/data/`+prefix+`*"`) {
				t.Fatalf("the tenant's policy grants nothing under %s", prefix)
			}
		}
	})
}

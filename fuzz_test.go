package credgate_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/credgate/credgate"
)

// Ids become parts of Vault paths: whatever the input, an accepted id is one
// path segment that cannot climb out of its folder.

func FuzzValidID(f *testing.F) {
	for _, s := range []string{"acme", "svc_abc", "a..b", "../x", "a/b", "", "a%2Fb", ".hidden", "A-1.2_3", strings.Repeat("x", 129)} {
		f.Add(s)
	}
	rule := regexp.MustCompile(credgate.IDPattern)
	f.Fuzz(func(t *testing.T, s string) {
		want := rule.MatchString(s) && !strings.Contains(s, "..")
		if credgate.ValidID(s) != want {
			t.Fatalf("ValidID(%q) = %v; the rule says %v", s, !want, want)
		}
		if want && strings.ContainsAny(s, "/\\%\x00") {
			t.Fatalf("ValidID(%q) though it is not one safe path segment", s)
		}
	})
}

func FuzzCanonicalCredentialID(f *testing.F) {
	for _, s := range []string{"cred-3993f31c-802f-4acf-8ae0-a4180aa7ba24", "3993F31C-802F-4ACF-8AE0-A4180AA7BA24", "cred-../x", "cred-", "CRED-3993f31c-802f-4acf-8ae0-a4180aa7ba24x"} {
		f.Add(s)
	}
	canonical := regexp.MustCompile(`^cred-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	rule := regexp.MustCompile(credgate.CredentialIDPattern)
	f.Fuzz(func(t *testing.T, s string) {
		id, ok := credgate.CanonicalCredentialID(s)
		if want := rule.MatchString(strings.ToLower(s)); ok != want {
			t.Fatalf("CanonicalCredentialID(%q) ok = %v; the rule says %v", s, ok, want)
		}
		if !ok {
			return
		}
		again, ok2 := credgate.CanonicalCredentialID(id)
		if !canonical.MatchString(id) || !ok2 || again != id || !credgate.ValidID(id) {
			t.Fatalf("CanonicalCredentialID(%q) = %q, not a fixed canonical, valid id", s, id)
		}
		if !strings.EqualFold(strings.TrimPrefix(strings.ToLower(s), "cred-"), strings.TrimPrefix(id, "cred-")) {
			t.Fatalf("CanonicalCredentialID(%q) = %q names another credential", s, id)
		}
	})
}

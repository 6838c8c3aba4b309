package credgate_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/credgate/credgate"
)

func valid() *credgate.Credential {
	return &credgate.Credential{CredentialName: "live", AuthType: credgate.AuthAPIKey, Status: credgate.CredActive,
		Metadata: map[string]any{}, Secrets: credgate.Secrets{"apiKey": "k"}}
}

func TestCredentialValidate(t *testing.T) {
	deep := map[string]any{}
	cur := deep
	for range 9 {
		next := map[string]any{}
		cur["n"] = next
		cur = next
	}
	many := map[string]any{}
	for i := range 129 {
		many[strings.Repeat("k", i+1)] = true
	}
	tests := []struct {
		name  string
		edit  func(c *credgate.Credential)
		field string // "" when valid
	}{
		{"valid", func(c *credgate.Credential) {}, ""},
		{"name trimmed to nothing", func(c *credgate.Credential) { c.CredentialName = "  " }, "credentialName"},
		{"unknown auth type", func(c *credgate.Credential) { c.AuthType = "kerberos" }, "authType"},
		{"expired is not stored", func(c *credgate.Credential) { c.Status = credgate.CredExpired }, "status"},
		{"api_key needs apiKey", func(c *credgate.Credential) { c.Secrets = credgate.Secrets{"apiSecret": "s"} }, "apiKey"},
		{"basic needs a password", func(c *credgate.Credential) {
			c.AuthType, c.Secrets = credgate.AuthBasic, credgate.Secrets{"username": "u"}
		}, "password"},
		{"client credentials need an endpoint", func(c *credgate.Credential) {
			c.AuthType, c.Secrets = credgate.AuthOAuth2ClientCredentials, credgate.Secrets{"clientId": "i", "clientSecret": "s"}
		}, "tokenEndpoint"},
		{"a refresh token needs an endpoint", func(c *credgate.Credential) {
			c.AuthType, c.Secrets = credgate.AuthOAuth2Bearer, credgate.Secrets{"accessToken": "a", "refreshToken": "r"}
		}, "tokenEndpoint"},
		{"empty value", func(c *credgate.Credential) { c.Secrets["apiSecret"] = "" }, "apiSecret"},
		{"oversized value", func(c *credgate.Credential) { c.Secrets["apiKey"] = strings.Repeat("x", credgate.MaxSecretBytes+1) }, "apiKey"},
		{"not a secret field", func(c *credgate.Credential) { c.Secrets["apikey"] = "x" }, "apikey"},
		{"bad custom key", func(c *credgate.Credential) { c.Secrets[credgate.CustomKey("a b")] = "x" }, "customFields"},
		{"empty custom value", func(c *credgate.Credential) { c.Secrets[credgate.CustomKey("region")] = "" }, "customFields.region"},
		{"custom needs a value", func(c *credgate.Credential) { c.AuthType, c.Secrets = credgate.AuthCustom, credgate.Secrets{} }, "customFields"},
		{"http endpoint", func(c *credgate.Credential) { c.TokenEndpoint = "http://idp.example.com/token" }, "tokenEndpoint"},
		{"scope with a space", func(c *credgate.Credential) { c.Scopes = []string{"a b"} }, "scopes"},
		{"metadata too deep", func(c *credgate.Credential) { c.Metadata = deep }, "metadata"},
		{"metadata with too many keys", func(c *credgate.Credential) { c.Metadata = many }, "metadata"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.edit(c)
			err := c.Validate()
			var ce *credgate.Error
			switch {
			case tt.field == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.field == "":
			case !errors.As(err, &ce) || ce.Code != credgate.EValidationFailed:
				t.Fatalf("got %v; want VALIDATION_FAILED", err)
			case ce.Fields[tt.field] == "":
				t.Fatalf("fields %v do not name %s", ce.Fields, tt.field)
			}
		})
	}
}

func TestCanonicalCredentialID(t *testing.T) {
	const id = "cred-3993f31c-802f-4acf-8ae0-a4180aa7ba24"
	for _, in := range []string{id, strings.TrimPrefix(id, "cred-"), strings.ToUpper(id), strings.ToUpper(strings.TrimPrefix(id, "cred-"))} {
		if got, ok := credgate.CanonicalCredentialID(in); !ok || got != id {
			t.Errorf("%s: %q %v; want %s", in, got, ok, id)
		}
	}
	for _, in := range []string{"", "cred-", "cred-../x", "3993f31c802f4acf8ae0a4180aa7ba24", id + "0", "x" + id} {
		if got, ok := credgate.CanonicalCredentialID(in); ok {
			t.Errorf("%q accepted as %q", in, got)
		}
	}
}

func TestPickServableAndServable(t *testing.T) {
	now := time.Now()
	at := func(d time.Duration) time.Time { return now.Add(d) }
	past := at(-time.Hour)
	mk := func(id, status string, created time.Time, expires *time.Time) *credgate.Credential {
		return &credgate.Credential{ID: id, Status: status, CreatedAt: created, ExpiresAt: expires}
	}
	list := []*credgate.Credential{
		mk("old", credgate.CredActive, at(-3*time.Hour), nil),
		mk("new", credgate.CredActive, at(-2*time.Hour), nil),
		mk("newer-revoked", credgate.CredRevoked, at(-time.Hour), nil),
		mk("newest-expired", credgate.CredActive, at(-time.Minute), &past),
	}
	if got := credgate.PickServable(list, now); got.ID != "new" {
		t.Fatalf("picked %s; want the newest active", got.ID)
	}
	if got := credgate.PickServable(list[2:], now); got.ID != "newest-expired" {
		t.Fatalf("picked %s; want the newest expired when none is active", got.ID)
	}
	if got := credgate.PickServable(list[2:3], now); got != nil {
		t.Fatalf("picked %s from revoked ones", got.ID)
	}
	var ce *credgate.Error
	if err := list[2].Servable(now); !errors.As(err, &ce) || ce.Code != credgate.ECredentialNotFound || ce.Status != credgate.CredRevoked {
		t.Fatalf("revoked: %v", err)
	}
	if err := list[3].Servable(now); err != nil || list[3].EffectiveStatus(now) != credgate.CredExpired {
		t.Fatalf("expired: %v %s", err, list[3].EffectiveStatus(now))
	}
}

func TestGenerateReplacesOnlyWhatMayBeGenerated(t *testing.T) {
	n := 0
	random := func() (string, error) { n++; return "gen", nil }
	c := &credgate.Credential{AuthType: credgate.AuthBasic, Secrets: credgate.Secrets{"username": "bot", "password": "pw"}}
	if err := c.Generate(random); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(credgate.Secrets{"username": "bot", "password": "gen"}, c.Secrets); diff != "" {
		t.Fatalf("basic (-want +got):\n%s", diff)
	}
	c = &credgate.Credential{AuthType: credgate.AuthOAuth2Bearer, Secrets: credgate.Secrets{"accessToken": "a"}}
	if err := c.Generate(random); credgate.ErrorCode(err) != credgate.EValidationFailed || c.Secrets["accessToken"] != "a" {
		t.Fatalf("an OAuth2 token is never made up: %v %v", err, c.Secrets)
	}
	c = &credgate.Credential{AuthType: credgate.AuthCustom, Secrets: credgate.Secrets{credgate.CustomKey("pin"): "1"}}
	if err := c.Generate(random); err != nil || c.Secrets[credgate.CustomKey("pin")] != "gen" || n != 2 {
		t.Fatalf("custom: %v %v after %d values", err, c.Secrets, n)
	}
}

func TestSecretsAsTheServicesFamilySeesThem(t *testing.T) {
	s := credgate.SecretsFromServiceKeys(map[string]string{"api_key": "k", "client_secret": "s", "environment": "prod"})
	want := credgate.Secrets{"apiKey": "k", "clientSecret": "s", credgate.CustomKey("environment"): "prod"}
	if diff := cmp.Diff(want, s); diff != "" {
		t.Fatalf("from service keys (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"api_key": "k", "client_secret": "s", "environment": "prod"}, s.ServiceKeys()); diff != "" {
		t.Fatalf("back (-want +got):\n%s", diff)
	}
	fe := credgate.FieldErrors{"apiKey": "is required", "customFields.environment": "must not be empty", "customFields": "at most 32", "expiresAt": "x", "name": "y"}
	got := fe.InServiceTerms()
	for _, k := range []string{"credentials.api_key", "credentials.environment", "credentials", "metadata.expires_at", "name"} {
		if got[k] == "" {
			t.Errorf("%s missing from %v", k, got)
		}
	}
	if credgate.ChangeOf(s, s.Clone()) != credgate.ChangeUpdated || credgate.ChangeOf(s, credgate.Secrets{"apiKey": "k"}) != credgate.ChangeRotated {
		t.Fatal("ChangeOf")
	}
}

func TestCheckVersion(t *testing.T) {
	if credgate.CheckVersion(3, 0) != nil || credgate.CheckVersion(3, 3) != nil {
		t.Fatal("an absent or matching If-Match is refused")
	}
	var ce *credgate.Error
	if err := credgate.CheckVersion(3, 2); !errors.As(err, &ce) || ce.Code != credgate.EVersionConflict || ce.CurrentVersion != 3 {
		t.Fatalf("stale: %v", err)
	}
}

// TestRevokedIsFinal: no change makes a credential that reads as revoked
// (stored so, or past its revokeAt) active or inactive again, and no role
// reads the previous version after its previousRevokeAt.
func TestRevokedIsFinal(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	past, future := now.Add(-time.Hour), now.Add(time.Hour)
	for _, tt := range []struct {
		name      string
		old, next credgate.Credential
		ok        bool
	}{
		{"reactivated", credgate.Credential{Status: credgate.CredRevoked}, credgate.Credential{Status: credgate.CredActive}, false},
		{"made inactive", credgate.Credential{Status: credgate.CredRevoked}, credgate.Credential{Status: credgate.CredInactive}, false},
		{"revokeAt passed, then cleared", credgate.Credential{Status: credgate.CredActive, RevokeAt: &past}, credgate.Credential{Status: credgate.CredActive}, false},
		{"revokeAt passed, then moved on", credgate.Credential{Status: credgate.CredActive, RevokeAt: &past}, credgate.Credential{Status: credgate.CredActive, RevokeAt: &future}, false},
		{"described anew", credgate.Credential{Status: credgate.CredRevoked}, credgate.Credential{Status: credgate.CredRevoked, Description: "gone"}, true},
		{"revokeAt not yet come, cleared", credgate.Credential{Status: credgate.CredActive, RevokeAt: &future}, credgate.Credential{Status: credgate.CredActive}, true},
		{"inactive, reactivated", credgate.Credential{Status: credgate.CredInactive}, credgate.Credential{Status: credgate.CredActive}, true},
	} {
		if err := tt.next.CheckSuccessor(&tt.old, now); (err == nil) != tt.ok {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
	c := &credgate.Credential{ID: "cred-x", Version: 3, PreviousVersion: 2, PreviousRevokeAt: &past, ReadAt: now}
	for _, r := range []credgate.CredentialRead{{Version: 2}, {Version: 2, History: true}} {
		if err := r.MayRead(c); credgate.ErrorCode(err) != credgate.ECredentialNotFound {
			t.Errorf("%+v reads the revoked previous version: %v", r, err)
		}
	}
	if err := (credgate.CredentialRead{Version: 1, History: true}).MayRead(c); err != nil {
		t.Errorf("an earlier version with History: %v", err)
	}
}

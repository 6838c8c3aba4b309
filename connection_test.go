package credgate_test

import (
	"testing"
	"time"

	"github.com/credgate/credgate"
)

func connectable() *credgate.Credential {
	return &credgate.Credential{
		CredentialName: "itsm", AuthType: credgate.AuthOAuth2Bearer, Status: credgate.CredActive,
		AuthorizationEndpoint: "https://idp.example/authorize", TokenEndpoint: "https://idp.example/token",
		Secrets: credgate.Secrets{"clientId": "c"},
	}
}

func TestACredentialMayAwaitItsConnection(t *testing.T) {
	c := connectable()
	if err := c.Validate(); err != nil || !c.Pending() {
		t.Fatalf("%v %+v", err, c.Connection)
	}
	if err := c.Servable(t0); credgate.ErrorCode(err) != credgate.ECredentialNotFound {
		t.Fatalf("a pending credential is served: %v", err)
	}
	if credgate.PickServable([]*credgate.Credential{c}, t0) != nil {
		t.Fatal("a pending credential was picked to serve")
	}
	// Without what a connect needs, the access token is required again.
	c.AuthorizationEndpoint = ""
	if credgate.ErrorCode(c.Validate()) != credgate.EValidationFailed {
		t.Fatal("an oauth2_bearer credential without tokens or a way to connect was taken")
	}
	// Tokens stored by hand: connected.
	c = connectable()
	_ = c.Validate()
	c.Secrets["accessToken"] = "at"
	if err := c.Validate(); err != nil || c.Connection.State != credgate.ConnectionConnected {
		t.Fatalf("%v %+v", err, c.Connection)
	}
	c.TokenEndpointAuthMethod = "private_key_jwt"
	if credgate.ErrorCode(c.Validate()) != credgate.EValidationFailed {
		t.Fatal("an unknown token endpoint auth method was taken")
	}
}

func TestConnectionAfterRefresh(t *testing.T) {
	c := connectable()
	c.Secrets["refreshToken"] = "rt"
	next, ev := c.ConnectionAfterRefresh("invalid_grant", false, t0)
	if next == nil || next.State != credgate.ConnectionBroken || next.Reason != "invalid_grant" || ev != credgate.EventConnectionBroken {
		t.Fatalf("%+v %q", next, ev)
	}
	// Kept for the version it was found at; a version written since is
	// past it.
	c.Version = 3
	mark := c.BrokenMark(next)
	at3, at4 := &credgate.Credential{Version: 3}, &credgate.Credential{Version: 4}
	at3.ApplyBrokenMark(mark)
	at4.ApplyBrokenMark(mark)
	if at3.Connection == nil || at3.Connection.State != credgate.ConnectionBroken || at4.Connection != nil {
		t.Fatalf("the mark: %+v %+v", at3.Connection, at4.Connection)
	}
	c.Connection = next
	if again, ev := c.ConnectionAfterRefresh("invalid_grant", false, t0); again != nil || ev != "" {
		t.Fatal("a broken connection broke twice")
	}
	if n, ev := c.ConnectionAfterRefresh("temporarily_unavailable", false, t0); n != nil || ev != "" {
		t.Fatal("only invalid_grant breaks")
	}
	next, ev = c.ConnectionAfterRefresh("", true, t0)
	if next == nil || next.State != credgate.ConnectionConnected || ev != credgate.EventConnectionRestored {
		t.Fatalf("restored: %+v %q", next, ev)
	}
	c.Connection = next
	if n, ev := c.ConnectionAfterRefresh("", true, t0); n != nil || ev != "" {
		t.Fatal("a refresh of a connected credential changed its connection")
	}
	// A connect of a broken one restores it too.
	c.Connection = &credgate.Connection{State: credgate.ConnectionBroken}
	if evs := c.Connected("at2", "", nil, t0); len(evs) != 2 || evs[1] != credgate.EventConnectionRestored || c.Secrets["refreshToken"] != "rt" {
		t.Fatalf("%v %v", evs, c.Secrets)
	}
}

func TestTokenDue(t *testing.T) {
	exp := t0.Add(time.Hour)
	c := &credgate.Credential{AuthType: credgate.AuthOAuth2ClientCredentials, Status: credgate.CredActive, TokenEndpoint: "https://idp.example/token",
		Secrets: credgate.Secrets{"clientId": "c", "clientSecret": "s"}, UpdatedAt: t0}
	if !c.TokenDue(t0) {
		t.Fatal("no token: due")
	}
	c.Secrets["accessToken"], c.ExpiresAt = "at", &exp
	if c.TokenDue(t0.Add(50*time.Minute)) || !c.TokenDue(t0.Add(55*time.Minute)) {
		t.Fatal("the default lead is 5 minutes")
	}
	short := t0.Add(4 * time.Second) // a life shorter than the lead: half of it
	c.ExpiresAt = &short
	if c.TokenDue(t0.Add(time.Second)) || !c.TokenDue(t0.Add(2*time.Second)) {
		t.Fatal("a short-lived token is reused for half its life")
	}
	c.Secrets["refreshToken"] = "rt" // refreshed, not minted
	if c.TokenDue(t0.Add(time.Hour)) {
		t.Fatal("a credential with a refresh token is not minted")
	}
}

func TestAConnectStateIsTakenOnce(t *testing.T) {
	st := &credgate.ConnectState{ExpiresAt: t0.Add(time.Minute)}
	if err := st.Take(t0); err != nil || !st.Used {
		t.Fatal(err)
	}
	if credgate.ErrorCode(st.Take(t0)) != credgate.EInvalidRequest {
		t.Fatal("taken twice")
	}
	late := &credgate.ConnectState{ExpiresAt: t0}
	if err := late.Take(t0); credgate.ErrorCode(err) != credgate.EInvalidRequest || !late.Used {
		t.Fatalf("expired: %v", err)
	}
}

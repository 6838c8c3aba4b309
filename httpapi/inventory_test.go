package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestInventoryFiltersAndPages lists a tenant's credentials across three
// services with every filter, two at a time: each page holds what the
// filter selects, in order (by integration, newest first), no credential
// twice and none missing, no secret value anywhere; and the seed 000
// question "which credentials expire within 30 days?" is one call.
func TestInventoryFiltersAndPages(t *testing.T) {
	a := newAPI(t, apiOptions{})
	tok, ten := adminWithService(t, a, "billing")
	a.mustCreate(tok, map[string]any{"id": "crm", "name": "CRM"})
	a.mustCreate(tok, map[string]any{"id": "mail", "name": "Mail"})
	viewer := token(t, "auditor", ten, "integration_viewer")
	soon := time.Now().Add(10 * 24 * time.Hour).UTC().Format(time.RFC3339)
	later := time.Now().Add(90 * 24 * time.Hour).UTC().Format(time.RFC3339)

	type made struct{ id, service, authType, status, expires string }
	var all []made
	var secrets []string
	mk := func(service, authType, status, expires string) {
		v := secret("inv-" + randHex(8))
		secrets = append(secrets, v)
		body := map[string]any{"integrationId": service, "credentialName": fmt.Sprintf("c%d", len(all)), "authType": authType}
		switch authType {
		case "api_key":
			body["apiKey"] = v
		case "basic":
			body["username"], body["password"] = "u", v
		}
		if status != "" {
			body["status"] = status
		}
		if expires != "" {
			body["expiresAt"] = expires
		}
		id := a.mustCreateCredential(tok, body)["id"].(string)
		all = append(all, made{id, service, authType, status, expires})
	}
	mk("billing", "api_key", "", soon)
	mk("billing", "basic", "", "")
	mk("billing", "api_key", "revoked", soon)
	mk("crm", "api_key", "", later)
	mk("crm", "basic", "", "2020-01-01T00:00:00Z") // expired
	mk("mail", "api_key", "inactive", "")
	mk("mail", "api_key", "", soon)

	type item struct{ id, service, created string }
	var listed []item // the last walk's items, in order
	// pages walks a query two at a time and returns the ids in order.
	pages := func(query string) []string {
		t.Helper()
		var ids []string
		listed = nil
		cursor := ""
		for n := 0; ; n++ {
			if n > 10 {
				t.Fatalf("%s: no end of pages", query)
			}
			q := query + "&limit=2"
			if cursor != "" {
				q += "&cursor=" + url.QueryEscape(cursor)
			}
			r := a.do("GET", "/api/v1/credentials?"+q, viewer, nil)
			if r.Status != 200 {
				t.Fatalf("%s: %d %s", q, r.Status, r.Raw)
			}
			noSecrets(t, r, secrets...)
			var body struct {
				Data []struct {
					ID            string `json:"id"`
					IntegrationID string `json:"integrationId"`
					CreatedAt     string `json:"createdAt"`
				} `json:"data"`
				NextCursor string `json:"nextCursor"`
			}
			if err := json.Unmarshal(r.Raw, &body); err != nil {
				t.Fatal(err)
			}
			if len(body.Data) > 2 {
				t.Fatalf("%s: %d on a page of 2", q, len(body.Data))
			}
			for _, d := range body.Data {
				ids = append(ids, d.ID)
				listed = append(listed, item{d.ID, d.IntegrationID, d.CreatedAt})
			}
			if body.NextCursor == "" {
				return ids
			}
			cursor = body.NextCursor
		}
	}
	want := func(keep func(m made) bool) []string {
		var ids []string
		for _, m := range all {
			if keep(m) {
				ids = append(ids, m.id)
			}
		}
		return ids
	}
	sameSet := func(name string, got, want []string) {
		t.Helper()
		g, w := slices.Clone(got), slices.Clone(want)
		slices.Sort(g)
		slices.Sort(w)
		if !slices.Equal(g, w) || len(slices.Compact(g)) != len(got) {
			t.Errorf("%s: got %v, want %v", name, got, want)
		}
	}

	everything := pages("")
	sameSet("everything", everything, want(func(made) bool { return true }))
	// By integration, then newest first, then by id.
	for i := 1; i < len(listed); i++ {
		p, c := listed[i-1], listed[i]
		pt, _ := time.Parse(time.RFC3339, p.created)
		ct, _ := time.Parse(time.RFC3339, c.created)
		if p.service > c.service || (p.service == c.service && (ct.After(pt) || (ct.Equal(pt) && c.id < p.id))) {
			t.Errorf("out of order: %v then %v", p, c)
		}
	}
	sameSet("integrationId", pages("integrationId=crm"), want(func(m made) bool { return m.service == "crm" }))
	sameSet("status=active", pages("status=active"), want(func(m made) bool { return m.status == "" && m.expires != "2020-01-01T00:00:00Z" }))
	sameSet("status=expired", pages("status=expired"), want(func(m made) bool { return m.expires == "2020-01-01T00:00:00Z" }))
	sameSet("authType", pages("authType=basic"), want(func(m made) bool { return m.authType == "basic" }))
	sameSet("expiresBefore", pages("expiresBefore="+url.QueryEscape(time.Now().Add(30*24*time.Hour).UTC().Format(time.RFC3339))),
		want(func(m made) bool { return m.expires == soon || m.expires == "2020-01-01T00:00:00Z" }))
	// Seed 000's question, one call: active credentials expiring within 30 days.
	sameSet("expiringWithin=30d&status=active", pages("expiringWithin=30d&status=active"),
		want(func(m made) bool { return m.expires == soon && m.status == "" }))
	sameSet("combined", pages("integrationId=billing&authType=api_key&status=active"), []string{all[0].id})

	// A cursor of one integration's listing is refused for another's.
	r := a.do("GET", "/api/v1/credentials?integrationId=billing&limit=1", viewer, nil)
	var first struct{ NextCursor string }
	_ = json.Unmarshal(r.Raw, &first)
	if first.NextCursor == "" {
		t.Fatalf("no next cursor: %s", r.Raw)
	}
	wantEnvelopeError(t, a.do("GET", "/api/v1/credentials?integrationId=crm&cursor="+url.QueryEscape(first.NextCursor), viewer, nil), 400, "INVALID_PARAMETER")
	wantEnvelopeError(t, a.do("GET", "/api/v1/credentials?integrationId=nope", viewer, nil), 404, "SERVICE_NOT_FOUND")
}

// TestAccessLogNamesTheIntegrationAndCredential: the access-log line of a
// credential route says which integration and credential it was about
// (ids only), whether the route named the integration, the credential, or
// neither (a create).
func TestAccessLogNamesTheIntegrationAndCredential(t *testing.T) {
	a := newAPI(t, apiOptions{})
	tok, _ := adminWithService(t, a, "ledger")
	v := secret("log-" + randHex(8))
	rid := func() string { return "log-" + randHex(8) }
	createID := rid()
	r := a.do("POST", "/api/v1/credentials", tok, map[string]any{"integrationId": "ledger", "credentialName": "k", "authType": "api_key", "apiKey": v}, "X-Request-Id", createID)
	if r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r.Raw)
	}
	cred := r.data()["id"].(string)
	readID, patchID, missingID := rid(), rid(), rid()
	a.do("GET", "/api/v1/credentials/ledger", tok, nil, "X-Request-Id", readID)
	a.do("PATCH", "/api/v1/credentials/"+cred, tok, map[string]any{"description": "d"}, "X-Request-Id", patchID)
	a.do("GET", "/api/v1/credentials/ledger?credentialId=cred-00000000-0000-4000-8000-000000000000", tok, nil, "X-Request-Id", missingID)
	for id, want := range map[string][2]string{
		createID:  {"ledger", cred},
		readID:    {"ledger", cred},
		patchID:   {"ledger", cred},
		missingID: {"ledger", ""},
	} {
		line := accessLine(t, id)
		if line["integration_id"] != want[0] || line["credential_id"] != want[1] {
			t.Errorf("request %s logged integration %v, credential %v; want %v", id, line["integration_id"], line["credential_id"], want)
		}
	}
}

// accessLine finds the access-log line of request id.
func accessLine(t *testing.T, id string) map[string]any {
	t.Helper()
	for _, l := range strings.Split(s.logs.String(), "\n") {
		if !strings.Contains(l, id) {
			continue
		}
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == "request" && m["request_id"] == id {
			return m
		}
	}
	t.Fatalf("no access-log line for request %s", id)
	return nil
}

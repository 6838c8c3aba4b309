package httpapi_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/credgate/credgate/vaultstore/vaulttest"
)

// Every multi-step write is cut off from Vault between each two of its
// steps (a connection cut before Vault sees a request, and one after Vault
// answered it, so that the write happened but its answer is lost). After
// each cut the records must be whole: a credential's values are read from
// one whole version, and what a viewer's listing describes is that version
// or, when the cut fell between the values and their description, the one
// before. Then the same request is repeated: it must finish the write, after
// which every credential in Vault is either fully visible (listed, readable,
// the same version both ways) or not at all.

// writeCase is one multi-step write.
type writeCase struct {
	name string
	// setup makes the records the write starts from in a new tenant.
	setup func(t *testing.T, a *testAPI, tok string) map[string]string
	write func(a *testAPI, tok string, ids map[string]string) reply
	// retried lists the answers a repeat may give: the write's own, or,
	// for a write that is not idempotent and happened, its "already so".
	retried []int
	// check fails unless the records are what the write makes; last is the
	// write's last answer.
	check func(t *testing.T, a *testAPI, tok, ten string, ids map[string]string, last reply)
}

func TestEveryWriteIsWholeWhenVaultIsCutBetweenSteps(t *testing.T) {
	px := vaulttest.StartFaultProxy(t, s.vault.Addr)
	// A rotation whose lock write was answered but whose answer was lost
	// holds the lock until the lease ends: a short one keeps this quick.
	a := newAPI(t, apiOptions{vaultURL: px.URL, noAccess: true, lockLease: 500 * time.Millisecond})
	k1, k2 := secret("k1-"+randHex(8)), secret("k2-"+randHex(8))
	createSvc := func(t *testing.T, a *testAPI, tok string) map[string]string {
		a.mustCreate(tok, map[string]any{"id": "svc", "name": "Svc"})
		return map[string]string{}
	}
	withCred := func(t *testing.T, a *testAPI, tok string) map[string]string {
		createSvc(t, a, tok)
		id := a.mustCreateCredential(tok, map[string]any{"integrationId": "svc", "credentialName": "c", "authType": "api_key", "apiKey": k1})["id"].(string)
		return map[string]string{"cred": id}
	}
	cases := []writeCase{{
		name: "create service",
		setup: func(t *testing.T, a *testAPI, tok string) map[string]string {
			a.do("GET", "/api/v1/services", tok, nil) // mint the caller's Vault token
			return nil
		},
		write: func(a *testAPI, tok string, _ map[string]string) reply {
			return a.do("POST", "/api/v1/services", tok, map[string]any{"id": "svc", "name": "Svc"})
		},
		retried: []int{201, 409},
		check: func(t *testing.T, a *testAPI, tok, ten string, _ map[string]string, _ reply) {
			if r := a.do("GET", "/api/v1/services/svc", tok, nil); r.Status != 200 || r.str("name") != "Svc" {
				t.Fatalf("service: %d %s", r.Status, r.Raw)
			}
			wantError(t, a.do("POST", "/api/v1/services", tok, map[string]any{"id": "other", "name": "SVC"}), 409, "SERVICE_ALREADY_EXISTS")
		},
	}, {
		name:  "rename service",
		setup: createSvc,
		write: func(a *testAPI, tok string, _ map[string]string) reply {
			return a.do("PATCH", "/api/v1/services/svc", tok, map[string]any{"name": "Renamed"}, "If-Match", `"1"`)
		},
		retried: []int{200},
		check: func(t *testing.T, a *testAPI, tok, ten string, _ map[string]string, _ reply) {
			if r := a.do("GET", "/api/v1/services/svc", tok, nil); r.str("name") != "Renamed" || r.Header.Get("ETag") != `"2"` {
				t.Fatalf("service: %s %s", r.Header.Get("ETag"), r.Raw)
			}
			a.mustCreate(tok, map[string]any{"id": "svc2", "name": "Svc"}) // the old name is free again
			wantError(t, a.do("POST", "/api/v1/services", tok, map[string]any{"id": "svc3", "name": "renamed"}), 409, "SERVICE_ALREADY_EXISTS")
		},
	}, {
		name: "replace service with credentials",
		setup: func(t *testing.T, a *testAPI, tok string) map[string]string {
			createSvc(t, a, tok)
			a.do("PUT", "/api/v1/services/svc/credentials", tok, map[string]any{"credentials": map[string]any{"api_key": k1}})
			return nil
		},
		write: func(a *testAPI, tok string, _ map[string]string) reply {
			return a.do("PUT", "/api/v1/services/svc", tok, map[string]any{"name": "Svc2", "credentials": map[string]any{"api_key": k2}}, "If-Match", `"1"`)
		},
		retried: []int{200},
		check: func(t *testing.T, a *testAPI, tok, ten string, _ map[string]string, _ reply) {
			if r := a.do("GET", "/api/v1/services/svc", tok, nil); r.str("name") != "Svc2" || r.Header.Get("ETag") != `"2"` {
				t.Fatalf("service: %s", r.Raw)
			}
			if r := a.do("GET", "/api/v1/services/svc/credentials", tok, nil); r.Body["credentials"].(map[string]any)["api_key"] != k2 {
				t.Fatalf("credentials: %s", r.Raw)
			}
		},
	}, {
		name:  "first credentials of a service",
		setup: createSvc,
		write: func(a *testAPI, tok string, _ map[string]string) reply {
			return a.do("PUT", "/api/v1/services/svc/credentials", tok, map[string]any{"credentials": map[string]any{"api_key": k1}})
		},
		retried: []int{200},
		check: func(t *testing.T, a *testAPI, tok, ten string, _ map[string]string, _ reply) {
			if r := a.do("GET", "/api/v1/services/svc/credentials", tok, nil); r.Status != 200 || r.Body["credentials"].(map[string]any)["api_key"] != k1 {
				t.Fatalf("credentials: %d %s", r.Status, r.Raw)
			}
			if n := len(listed(t, a, tok)); n != 1 {
				t.Fatalf("%d credentials listed; want 1", n)
			}
		},
	}, {
		name:  "create credential",
		setup: createSvc,
		write: func(a *testAPI, tok string, _ map[string]string) reply {
			return a.do("POST", "/api/v1/credentials", tok, map[string]any{"integrationId": "svc", "credentialName": "c", "authType": "api_key", "apiKey": k1})
		},
		retried: []int{201},
		check: func(t *testing.T, a *testAPI, tok, ten string, _ map[string]string, _ reply) {
			// A create whose answer was lost made a credential, and the
			// repeat makes another: POST is not idempotent. Both are whole.
			if n := len(listed(t, a, tok)); n < 1 || n > 2 {
				t.Fatalf("%d credentials listed; want the one created (two if the first answer was lost)", n)
			}
		},
	}, {
		name:  "patch credential",
		setup: withCred,
		write: func(a *testAPI, tok string, ids map[string]string) reply {
			return a.do("PATCH", "/api/v1/credentials/"+ids["cred"], tok, map[string]any{"description": "d2", "apiKey": k2}, "If-Match", `"1"`)
		},
		retried: []int{200},
		check: func(t *testing.T, a *testAPI, tok, ten string, ids map[string]string, _ reply) {
			if d := wantEnvelope(t, a.do("GET", "/api/v1/credentials/svc", tok, nil), 200); d["description"] != "d2" || d["apiKey"] != k2 || d["version"] != float64(2) {
				t.Fatalf("credential: %v", d)
			}
		},
	}, {
		name:  "rotate credential",
		setup: withCred,
		write: func(a *testAPI, tok string, ids map[string]string) reply {
			return a.do("POST", "/api/v1/credentials/"+ids["cred"]+"/rotate", tok, map[string]any{"apiKey": k2}, "If-Match", `"1"`)
		},
		// A rotation is not repeated: when the first one happened, the
		// repeat's If-Match is stale (409); when the cut took the rotation
		// lock's answer, the lock is held until its lease ends (409, the
		// credential as it was).
		retried: []int{200, 409},
		check: func(t *testing.T, a *testAPI, tok, ten string, ids map[string]string, last reply) {
			d := wantEnvelope(t, a.do("GET", "/api/v1/credentials/svc", tok, nil), 200)
			rotated := d["apiKey"] == k2 && d["version"] == float64(2)
			unchanged := d["apiKey"] == k1 && d["version"] == float64(1)
			if !rotated && !(unchanged && last.Status == 409) {
				t.Fatalf("credential after %d: %v", last.Status, d)
			}
		},
	}, {
		name:  "delete credential",
		setup: withCred,
		write: func(a *testAPI, tok string, ids map[string]string) reply {
			return a.do("DELETE", "/api/v1/credentials/"+ids["cred"], tok, nil, "If-Match", `"1"`)
		},
		retried: []int{200, 404},
		check: func(t *testing.T, a *testAPI, tok, ten string, ids map[string]string, _ reply) {
			wantEnvelopeError(t, a.do("GET", "/api/v1/credentials/svc?credentialId="+ids["cred"], tok, nil), 404, "CREDENTIAL_NOT_FOUND")
			for _, folder := range []string{"credentials/svc", "credential-index", "credential-locks"} {
				if keys := vaultKeys(t, ten, folder); len(keys) > 0 {
					t.Fatalf("left in Vault under %s: %v", folder, keys)
				}
			}
		},
	}, {
		name: "delete service",
		setup: func(t *testing.T, a *testAPI, tok string) map[string]string {
			ids := withCred(t, a, tok)
			ids["cred2"] = a.mustCreateCredential(tok, map[string]any{"integrationId": "svc", "credentialName": "c2", "authType": "api_key", "apiKey": k2})["id"].(string)
			return ids
		},
		write: func(a *testAPI, tok string, _ map[string]string) reply {
			return a.do("DELETE", "/api/v1/services/svc", tok, nil, "If-Match", `"1"`)
		},
		retried: []int{204, 404},
		check: func(t *testing.T, a *testAPI, tok, ten string, ids map[string]string, _ reply) {
			wantError(t, a.do("GET", "/api/v1/services/svc", tok, nil), 404, "SERVICE_NOT_FOUND")
			for _, id := range ids {
				wantEnvelopeError(t, a.do("GET", "/api/v1/credentials/svc?credentialId="+id, tok, nil), 404, "CREDENTIAL_NOT_FOUND")
			}
			for _, folder := range []string{"services", "service-names", "credentials/svc", "credential-index", "credential-locks"} {
				if keys := vaultKeys(t, ten, folder); len(keys) > 0 {
					t.Fatalf("left in Vault under %s: %v", folder, keys)
				}
			}
		},
	}}

	cuts := 0
	for _, wc := range cases {
		t.Run(wc.name, func(t *testing.T) {
			steps := 0
			for n := 1; ; n++ {
				finished := false
				for _, after := range []bool{false, true} {
					ten := tenant(t)
					tok := token(t, "admin", ten, "integration_admin")
					ids := wc.setup(t, a, tok)
					px.Cut(n, after)
					r := wc.write(a, tok, ids)
					seen, cut, requests := px.Heal()
					if !cut {
						// The write needs fewer than n Vault requests.
						if r.Status >= 300 {
							t.Fatalf("uncut: %d %s", r.Status, r.Raw)
						}
						steps, finished = seen, true
						wc.check(t, a, tok, ten, ids, r)
						break
					}
					cuts++
					where := fmt.Sprintf("cut %s request %d (%s)", map[bool]string{false: "before", true: "after"}[after], n, requests[len(requests)-1])
					if r.Status != 503 && r.Status >= 300 {
						t.Fatalf("%s: %d %s; want 503 or success", where, r.Status, r.Raw)
					}
					whole(t, a, tok, ten, where, false)
					again := wc.write(a, tok, ids)
					if !slices.Contains(wc.retried, again.Status) {
						t.Fatalf("%s, then repeated: %d %s; want one of %v", where, again.Status, again.Raw, wc.retried)
					}
					whole(t, a, tok, ten, where+", then repeated", true)
					wc.check(t, a, tok, ten, ids, again)
				}
				if finished {
					break
				}
				if n > 60 {
					t.Fatal("the write never finished within 60 Vault requests")
				}
			}
			if steps < 2 {
				t.Fatalf("the write took %d Vault requests: nothing was cut between steps", steps)
			}
			t.Logf("%d Vault requests; cut before and after each", steps)
		})
	}
	if cuts < 40 {
		t.Fatalf("only %d cuts were made", cuts)
	}
}

// listed returns the credentials the API lists for service svc.
func listed(t *testing.T, a *testAPI, tok string) []any {
	t.Helper()
	items, ok := wantEnvelope(t, a.do("GET", "/api/v1/credentials?integrationId=svc", tok, nil), 200)["data"].([]any)
	if !ok {
		items, _ = a.do("GET", "/api/v1/credentials?integrationId=svc", tok, nil).Body["data"].([]any)
	}
	return items
}

// vaultKeys lists what Vault holds under folder of tenant ten.
func vaultKeys(t *testing.T, ten, folder string) []string {
	t.Helper()
	sec, err := s.root.Logical().List("credgate/metadata/tenants/" + ten + "/" + folder)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	if sec != nil {
		for _, k := range sec.Data["keys"].([]any) {
			out = append(out, k.(string))
		}
	}
	return out
}

// whole fails when a credential of tenant ten is half there. Strictly:
// every credential Vault keeps is listed and readable at the same version,
// or neither. Otherwise (right after a cut) the listing may describe the
// version before the one read, and may still list a credential whose
// current version is its deletion.
func whole(t *testing.T, a *testAPI, tok, ten, where string, strict bool) {
	t.Helper()
	for _, svc := range vaultKeys(t, ten, "services") {
		list := a.do("GET", "/api/v1/credentials?integrationId="+svc, tok, nil)
		if list.Status == 404 {
			continue // a service being deleted: nothing of it is visible
		}
		versions := map[string]float64{}
		items, _ := list.Body["data"].([]any)
		for _, it := range items {
			m := it.(map[string]any)
			versions[m["id"].(string)] = m["version"].(float64)
		}
		for _, id := range vaultKeys(t, ten, "credentials/"+svc) {
			r := a.do("GET", "/api/v1/credentials/"+svc+"?credentialId="+id, tok, nil)
			lv, isListed := versions[id]
			var rv float64
			if r.Status == 200 {
				rv = r.data()["version"].(float64)
				secret(r.data()["apiKey"].(string))
			}
			switch {
			case r.Status == 200 && !isListed:
				t.Fatalf("%s: credential %s is readable but not listed", where, id)
			case r.Status != 200 && isListed && (strict || !deleting(t, ten, svc, id)):
				t.Fatalf("%s: credential %s is listed but reads %d %s", where, id, r.Status, r.Raw)
			case r.Status == 200 && lv != rv && (strict || lv != rv-1):
				t.Fatalf("%s: credential %s is listed at version %v but reads at %v", where, id, lv, rv)
			}
		}
	}
}

// deleting reports whether credential id's current version in Vault is
// the mark of its deletion.
func deleting(t *testing.T, ten, svc, id string) bool {
	t.Helper()
	sec, err := s.root.Logical().Read("credgate/data/tenants/" + ten + "/credentials/" + svc + "/" + id)
	if err != nil || sec == nil {
		return false
	}
	data, _ := sec.Data["data"].(map[string]any)
	info, _ := data["info"].(map[string]any)
	return info["deleted"] == true
}

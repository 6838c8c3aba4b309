package httpapi_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/vaultstore/vaulttest"
)

// TestAChangeThatStandsIsAnnouncedOnceWhateverTheCut: each write (create,
// rotate, both PUTs of the services family, revoke, delete) is cut off from Vault before and after each of
// its Vault requests, through a replica that sends the events it makes;
// another replica, on a whole connection, sweeps. After recovery, every
// change that stands was announced exactly once (one webhook-id, the
// right version), and none that was not made was. A rotation answered
// 503 is repeated with the If-Match its client read: it succeeds.
func TestAChangeThatStandsIsAnnouncedOnceWhateverTheCut(t *testing.T) {
	px := vaulttest.StartFaultProxy(t, s.vault.Addr)
	var c clock
	cut := newAPI(t, apiOptions{vaultURL: px.URL, noAccess: true, lockLease: 500 * time.Millisecond, monitor: &monitorSetup{now: c.now, noMonitor: true}})
	newAPI(t, apiOptions{noAccess: true, monitor: c.setup()}) // the sweeper
	key1, key2 := secret("k1-"+randHex(8)), secret("k2-"+randHex(8))
	type writeCase struct {
		name, event string
		// write makes the change; stands says whether it stands now.
		write  func(a *testAPI, tok, cred string) reply
		stands func(a *testAPI, tok, cred string) bool
		repeat bool // repeated after a 503, as a client would
	}
	// read is what a reader gets of the credential now (its values prove
	// its state; a listing may lag a change whose description was cut).
	read := func(a *testAPI, tok, cred string) (version int, status string) {
		r := a.do("GET", "/api/v1/credentials/svc?credentialId="+cred, tok, nil)
		if r.Status == 200 {
			v, _ := r.Body["data"].(map[string]any)["version"].(float64)
			return int(v), credgate.CredActive
		}
		e, _ := r.Body["error"].(map[string]any)
		st, _ := e["status"].(string)
		return 0, st
	}
	cases := []writeCase{
		{name: "create", event: credgate.EventCreated,
			write: func(a *testAPI, tok, cred string) reply {
				return a.do("POST", "/api/v1/credentials", tok, map[string]any{"id": cred, "integrationId": "svc", "credentialName": "c", "authType": "api_key", "apiKey": key1})
			},
			stands: func(a *testAPI, tok, cred string) bool { v, _ := read(a, tok, cred); return v == 1 }},
		{name: "rotate", event: credgate.EventRotated, repeat: true,
			write: func(a *testAPI, tok, cred string) reply {
				return a.do("POST", "/api/v1/credentials/"+cred+"/rotate", tok, map[string]any{"apiKey": key2}, "If-Match", `"1"`)
			},
			stands: func(a *testAPI, tok, cred string) bool { v, _ := read(a, tok, cred); return v == 2 }},
		{name: "PUT services/{id}/credentials", event: credgate.EventRotated,
			write: func(a *testAPI, tok, cred string) reply {
				return a.do("PUT", "/api/v1/services/svc/credentials", tok, map[string]any{"credentials": map[string]any{"api_key": key2}})
			},
			stands: func(a *testAPI, tok, cred string) bool { v, _ := read(a, tok, cred); return v == 2 }},
		{name: "PUT services/{id} with credentials", event: credgate.EventRotated,
			write: func(a *testAPI, tok, cred string) reply {
				return a.do("PUT", "/api/v1/services/svc", tok, map[string]any{"name": "Svc", "credentials": map[string]any{"api_key": key2}})
			},
			stands: func(a *testAPI, tok, cred string) bool { v, _ := read(a, tok, cred); return v == 2 }},
		{name: "revoke", event: credgate.EventRevoked,
			write: func(a *testAPI, tok, cred string) reply {
				return a.do("PATCH", "/api/v1/credentials/"+cred, tok, map[string]any{"status": "revoked"})
			},
			stands: func(a *testAPI, tok, cred string) bool {
				_, st := read(a, tok, cred)
				return st == credgate.CredRevoked
			}},
		{name: "delete", event: credgate.EventDeleted,
			write: func(a *testAPI, tok, cred string) reply {
				return a.do("DELETE", "/api/v1/credentials/"+cred, tok, nil)
			},
			stands: func(a *testAPI, tok, cred string) bool { v, st := read(a, tok, cred); return v == 0 && st == "" }},
	}
	type outcome struct {
		where  string
		rec    *receiver
		stands bool
		cred   string
	}
	var outcomes []outcome
	cuts := 0
	for _, wc := range cases {
		for n := 1; ; n++ {
			finished := false
			for _, after := range []bool{false, true} {
				ten := tenant(t)
				tok := token(t, "admin", ten, "integration_admin")
				cut.mustCreate(tok, map[string]any{"id": "svc", "name": "Svc"})
				cred := "cred-" + uuidLike()
				if wc.name != "create" {
					cut.mustCreateCredential(tok, map[string]any{"id": cred, "integrationId": "svc", "credentialName": "c", "authType": "api_key", "apiKey": key1})
				}
				rec := startReceiver(t, 0)
				rec.subscribe(cut, tok, wc.event)
				px.Cut(n, after)
				r := wc.write(cut, tok, cred)
				seen, wasCut, requests := px.Heal()
				where := fmt.Sprintf("%s, no cut (%d requests)", wc.name, seen)
				if wasCut {
					cuts++
					where = fmt.Sprintf("%s, cut %s request %d of %s", wc.name, map[bool]string{false: "before", true: "after"}[after], n, requests[len(requests)-1])
				}
				if r.Status >= 300 && r.Status != 503 {
					t.Fatalf("%s: %d %s", where, r.Status, r.Raw)
				}
				if wc.repeat && r.Status == 503 {
					if again := wc.write(cut, tok, cred); again.Status != 200 {
						t.Fatalf("%s, repeated with the If-Match read before: %d %s", where, again.Status, again.Raw)
					}
				}
				outcomes = append(outcomes, outcome{where, rec, wc.stands(cut, tok, cred), cred})
				if !wasCut {
					finished = true
					break
				}
			}
			if finished {
				break
			}
			if n > 40 {
				t.Fatalf("%s never finished within 40 Vault requests", wc.name)
			}
		}
	}
	if cuts < 40 {
		t.Fatalf("only %d cuts", cuts)
	}
	// Every pending event is settled within the grace (3 s) and a sweep.
	var wg sync.WaitGroup
	for _, o := range outcomes {
		wg.Go(func() {
			deadline := time.Now().Add(15 * time.Second)
			for time.Now().Before(deadline) && o.stands && len(o.rec.all()) == 0 {
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	time.Sleep(4 * time.Second) // what is not to come has had its chance
	stood := 0
	for _, o := range outcomes {
		ids := map[string]bool{}
		for _, d := range o.rec.all() {
			ids[d.id] = true
			if d.event.Data.CredentialID != o.cred {
				t.Errorf("%s: an event about %s", o.where, d.event.Data.CredentialID)
			}
		}
		switch {
		case o.stands && len(ids) != 1:
			t.Errorf("%s: the change stands; %d events (webhook-ids %v)", o.where, len(ids), ids)
		case !o.stands && len(ids) != 0:
			t.Errorf("%s: no change; %d events", o.where, len(ids))
		}
		if o.stands {
			stood++
		}
		o.rec.check()
	}
	t.Logf("%d writes, %d cut; %d changes stood, each announced once", len(outcomes), cuts, stood)
}

// uuidLike is a random UUID, for a client-chosen credential id.
func uuidLike() string { return uuid.NewString() }

// all returns every delivery r received.
func (r *receiver) all() []delivered {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivered(nil), r.got...)
}

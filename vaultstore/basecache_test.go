package vaultstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/vaultstore"
)

// A replica lists a service whose inventory nothing changed with one Vault
// read (its delta), serving the base it keeps; and whatever another
// replica changes is listed at once: a fold (entries leave the delta for a
// newer base), a rebuild that corrects a base, a service deleted and made
// again under the same id.
func TestAReplicaServesTheBaseItKeepsOnlyWhileTheDeltaNamesIt(t *testing.T) {
	var baseReads, deltaReads atomic.Int64
	now := time.Now().UTC().Truncate(time.Second)
	e := mustEnvWith(t, func(o *vaultstore.Options) {
		o.Now = func() time.Time { return now }
		o.Observe = func(op string, _ time.Duration, _ error) {
			switch op {
			case "inventory_base_read":
				baseReads.Add(1)
			case "inventory_delta_read":
				deltaReads.Add(1)
			}
		}
	})
	replica := func() *vaultstore.Store {
		opts := e.opts
		opts.Observe = nil
		s, err := vaultstore.New(opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close(context.Background()) })
		return s
	}
	other := replica()
	const tenant = "basecache"
	ctx := as(principal(tenant, "ann", "integration_admin"))
	makeService := func(s *vaultstore.Store) {
		t.Helper()
		if _, err := s.CreateService(ctx, &credgate.Service{ID: "pay", Name: "Pay", Status: credgate.StatusActive, Metadata: map[string]any{}}); err != nil {
			t.Fatal(err)
		}
	}
	add := func(s *vaultstore.Store, n int, label string) {
		t.Helper()
		for i := range n {
			exp := now.Add(time.Duration(1+i%20) * 24 * time.Hour)
			if _, err := s.CreateCredential(ctx, &credgate.Credential{
				IntegrationID: "pay", CredentialName: fmt.Sprint(label, i), AuthType: credgate.AuthAPIKey, Status: credgate.CredActive,
				Secrets: credgate.Secrets{"apiKey": "k"}, ExpiresAt: &exp, Metadata: map[string]any{},
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	list := func(s *vaultstore.Store, walk bool) string {
		t.Helper()
		page, err := s.ListCredentials(ctx, credgate.CredentialFilter{IntegrationID: "pay", Limit: 500, Walk: walk})
		if err != nil {
			t.Fatal(err)
		}
		names := make([]string, 0, len(page.Credentials))
		for _, c := range page.Credentials {
			j, _ := json.Marshal(c)
			names = append(names, string(j))
		}
		slices.Sort(names)
		return strings.Join(names, "\n")
	}
	same := func(when string, s *vaultstore.Store, want int) {
		t.Helper()
		got, walked := list(s, false), list(other, true)
		if got != walked {
			t.Fatalf("%s: the replica lists\n%s\nthe credentials' own metadata says\n%s", when, got, walked)
		}
		if n := strings.Count(got, `"credentialName"`); n != want {
			t.Fatalf("%s: %d credentials listed, want %d", when, n, want)
		}
	}

	// readsOnlyTheDelta lists the service on e.store and fails unless
	// that read its delta alone.
	readsOnlyTheDelta := func(when string) {
		t.Helper()
		baseReads.Store(0)
		deltaReads.Store(0)
		list(e.store, false)
		if b, d := baseReads.Load(), deltaReads.Load(); b != 0 || d != 1 {
			t.Errorf("%s: listing the service read %d deltas and %d bases, want 1 and 0", when, d, b)
		}
	}

	makeService(e.store)
	add(e.store, 10, "first ")
	// The replica that made the service wrote its first base: it keeps it.
	readsOnlyTheDelta("the base written here, never read")
	same("made here", e.store, 10) // the walk wrote the base anew
	list(e.store, false)
	readsOnlyTheDelta("nothing changed")

	// Another replica's writes fold entries out of the delta into a newer
	// base: the base kept here no longer holds them all.
	add(other, 70, "folded ")
	same("after another replica's folds", e.store, 80)

	// A base that says otherwise than the credentials (written behind
	// credgate's back), kept by a new replica, and then corrected by a
	// rebuild elsewhere: the replica lists the correction.
	fresh := replica()
	path := e.mount + "/data/tenants/" + tenant + "/inventory/pay/base"
	sec, err := e.root.Logical().Read(path)
	if err != nil || sec == nil {
		t.Fatalf("no base: %v", err)
	}
	base := sec.Data["data"].(map[string]any)
	entries := base["entries"].(map[string]any)
	dsec, err := e.root.Logical().Read(e.mount + "/data/tenants/" + tenant + "/inventory/pay/delta")
	if err != nil || dsec == nil {
		t.Fatalf("no delta: %v", err)
	}
	inDelta, _ := dsec.Data["data"].(map[string]any)["entries"].(map[string]any)
	dropped := ""
	for id := range entries {
		if _, ok := inDelta[id]; !ok {
			dropped = id
			break
		}
	}
	if dropped == "" {
		t.Fatal("every base entry is in the delta: nothing was folded")
	}
	delete(entries, dropped)
	if _, err := e.root.Logical().Write(path, map[string]any{"data": base}); err != nil {
		t.Fatal(err)
	}
	if got := list(fresh, false); strings.Contains(got, dropped) || strings.Count(got, `"credentialName"`) != 79 {
		t.Fatalf("the new replica does not list the base as written (79 credentials, without %s):\n%s", dropped, got)
	}
	list(other, true) // the rebuild
	same("after a rebuild elsewhere", fresh, 80)

	// This replica's own writes fold the delta into a base newer than the
	// one it read: it keeps what it folded.
	add(e.store, 70, "mine ")
	readsOnlyTheDelta("after this replica's folds")
	same("after this replica's folds", e.store, 150)

	// The base removed behind credgate's back (its delta left) and built
	// again elsewhere starts its versions at 1 again. A replica that keeps
	// a version of the old base is not served it once the new base reaches
	// that version with entries folded out of the delta since.
	meta := e.mount + "/metadata/tenants/" + tenant + "/inventory/pay/base"
	baseVersion := func() int {
		t.Helper()
		sec, err := e.root.Logical().Read(meta)
		if err != nil || sec == nil {
			t.Fatalf("no base: %v", err)
		}
		v, _ := sec.Data["current_version"].(json.Number).Int64()
		return int(v)
	}
	third := replica()
	list(third, false)
	kept := baseVersion()
	if dsec, err := e.root.Logical().Read(e.mount + "/data/tenants/" + tenant + "/inventory/pay/delta"); err != nil || dsec == nil ||
		fmt.Sprint(dsec.Data["data"].(map[string]any)["b"]) != fmt.Sprint(kept) {
		t.Fatalf("the delta does not name the base's current version %d: %v", kept, err)
	}
	if _, err := e.root.Logical().Delete(meta); err != nil {
		t.Fatal(err)
	}
	list(other, true)            // the rebuild: version 1
	for baseVersion() < kept-1 { // by hand, saying the same
		sec, err := e.root.Logical().Read(path)
		if err != nil || sec == nil {
			t.Fatalf("no base: %v", err)
		}
		if _, err := e.root.Logical().Write(path, map[string]any{"data": sec.Data["data"]}); err != nil {
			t.Fatal(err)
		}
	}
	n := 150
	for baseVersion() < kept { // until a fold writes the version kept
		add(other, 1, fmt.Sprint("new life ", n))
		n++
	}
	same("after the base was removed and built again", third, n)

	// The service deleted and made again elsewhere, with the same id: its
	// base's versions start again.
	if err := other.DeleteService(ctx, "pay", 0); err != nil {
		t.Fatal(err)
	}
	makeService(other)
	add(other, 3, "again ")
	same("after the service was made again", e.store, 3)
	same("after the service was made again", fresh, 3)
}

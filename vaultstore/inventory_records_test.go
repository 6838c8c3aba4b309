package vaultstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/vaultstore"
)

// The inventory read from the services' records answers what a walk of
// every credential's own metadata answers, filter by filter and page by
// page, over a keyring of every auth type and status, expiries, rotation
// policies, reads, updates, deletions and revocations, enough changes for
// folds, a service made before records existed and a write whose
// projection was cut.
func TestTheInventoryRecordsAnswerAsTheWalk(t *testing.T) {
	var clock atomic.Int64
	start := time.Now().UTC().Truncate(time.Second)
	clock.Store(start.UnixNano())
	var metaReads, recordWrites, deltaReads atomic.Int64
	e := mustEnvWith(t, func(o *vaultstore.Options) {
		o.Now = func() time.Time { return time.Unix(0, clock.Load()).UTC() }
		o.Observe = func(op string, _ time.Duration, _ error) {
			switch op {
			case "credential_metadata_read":
				metaReads.Add(1)
			case "inventory_base_write":
				recordWrites.Add(1)
			case "inventory_delta_read":
				deltaReads.Add(1)
			}
		}
	})
	const tenant = "inventory"
	ann := principal(tenant, "ann", "integration_admin")
	ann.Expiry = start.Add(30 * 24 * time.Hour) // the store's clock moves ten days on
	ctx := as(ann)
	for _, svc := range []string{"pay", "mail", "old"} {
		if _, err := e.store.CreateService(ctx, &credgate.Service{ID: svc, Name: strings.ToUpper(svc), Status: credgate.StatusActive, Metadata: map[string]any{}}); err != nil {
			t.Fatal(err)
		}
	}
	secrets := map[string]credgate.Secrets{
		credgate.AuthAPIKey:       {"apiKey": "k"},
		credgate.AuthBasic:        {"username": "u", "password": "p"},
		credgate.AuthBearer:       {"accessToken": "t"},
		credgate.AuthOAuth2Bearer: {"accessToken": "t"},
		credgate.AuthCustom:       {credgate.CustomKey("pin"): "c"},
	}
	types := []string{credgate.AuthAPIKey, credgate.AuthBasic, credgate.AuthBearer, credgate.AuthOAuth2Bearer, credgate.AuthCustom}
	var ids []string
	serviceOf := map[string]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	recordWrites.Store(0)
	for i := range 240 {
		wg.Go(func() {
			c := &credgate.Credential{
				IntegrationID: []string{"pay", "mail", "old"}[i%3], CredentialName: fmt.Sprint("key ", i), AuthType: types[i%len(types)],
				Status: credgate.CredActive, Metadata: map[string]any{"i": i},
				Secrets: secrets[types[i%len(types)]].Clone(), Description: fmt.Sprint("credential ", i),
			}
			if i%4 != 0 {
				exp := start.Add(time.Duration(i%40) * 24 * time.Hour)
				c.ExpiresAt = &exp
			}
			if i%7 == 0 {
				c.Status = credgate.CredInactive
			}
			if i%5 == 0 {
				c.RotationPolicy = &credgate.RotationPolicy{Every: "7d"}
			}
			out, err := e.store.CreateCredential(ctx, c)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			ids = append(ids, out.ID)
			serviceOf[out.ID] = out.IntegrationID
			mu.Unlock()
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	// Updates, revocations, deletions, reads.
	for n, id := range ids {
		switch n % 6 {
		case 1:
			if _, err := e.store.UpdateCredential(ctx, id, 0, func(c *credgate.Credential) error { c.Description = "changed"; return nil }); err != nil {
				t.Fatal(err)
			}
		case 2:
			if _, err := e.store.UpdateCredential(ctx, id, 0, func(c *credgate.Credential) error { c.Status = credgate.CredRevoked; return nil }); err != nil {
				t.Fatal(err)
			}
		case 3:
			if _, err := e.store.DeleteCredential(ctx, id, 0); err != nil {
				t.Fatal(err)
			}
		case 4:
			if _, err := e.store.GetCredential(ctx, credgate.CredentialRead{Service: serviceOf[id], ID: id}); err == nil {
				e.store.RecordAccess(ctx, serviceOf[id], id)
			}
		}
	}
	// Past foldAt (64) changes, a service's delta was folded into its base.
	if recordWrites.Load() == 0 {
		t.Error("240 credentials in three services and no base was written: nothing was folded")
	}
	if sec, err := e.root.Logical().Read(e.mount + "/data/tenants/" + tenant + "/inventory/pay/delta"); err != nil || sec == nil {
		t.Fatalf("no delta: %v", err)
	} else if n := len(sec.Data["data"].(map[string]any)["entries"].(map[string]any)); n > 65 {
		t.Errorf("the delta holds %d entries after folds", n)
	}
	// A write whose projection was cut: its data is a version ahead.
	path := e.mount + "/data/tenants/" + tenant + "/credentials/" + serviceOf[ids[5]] + "/" + ids[5]
	stored, err := e.root.Logical().Read(path)
	if err != nil || stored == nil {
		t.Fatal(err)
	}
	data := stored.Data["data"].(map[string]any)
	data["info"].(map[string]any)["description"] = "written, not projected"
	if _, err := e.root.Logical().Write(path, map[string]any{"data": data, "options": map[string]any{"cas": stored.Data["metadata"].(map[string]any)["version"]}}); err != nil {
		t.Fatal(err)
	}
	// The "old" service was made before records existed.
	for _, name := range []string{"base", "delta"} {
		if _, err := e.root.Logical().Delete(e.mount + "/metadata/tenants/" + tenant + "/inventory/old/" + name); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.store.Close(context.Background()); err != nil { // writes the lastAccessedAt values
		t.Fatal(err)
	}
	clock.Store(start.Add(10 * 24 * time.Hour).UnixNano())

	filters := []credgate.CredentialFilter{
		{},
		{IntegrationID: "pay"},
		{IntegrationID: "old"},
		{Status: credgate.CredActive}, {Status: credgate.CredExpired}, {Status: credgate.CredRevoked}, {Status: credgate.CredInactive},
		{AuthType: credgate.AuthOAuth2Bearer},
		{ExpiresBefore: start.Add(30 * 24 * time.Hour)},
		{UnusedSince: start.Add(time.Hour)},
		{RotationDue: true},
	}
	listAll := func(f credgate.CredentialFilter) string {
		var b strings.Builder
		f.Limit = 25
		for {
			page, err := e.store.ListCredentials(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			j, _ := json.Marshal(page)
			b.Write(j)
			b.WriteByte('\n')
			if page.Next == nil {
				return b.String()
			}
			f.After = page.Next
		}
	}
	check := func(when string) {
		t.Helper()
		for _, f := range filters {
			walk := f
			walk.Walk = true
			got := listAll(f)
			want := listAll(walk)
			if got != want {
				t.Errorf("%s, filter %+v: the records answer\n%s\nthe walk answers\n%s", when, f, got, want)
			}
			if strings.Count(want, `"id"`) == 0 && f.Status != credgate.CredInactive {
				t.Errorf("%s, filter %+v selects nothing: the test proves nothing", when, f)
			}
		}
	}
	// Every write was noted: the services with records are listed without
	// reading any credential's metadata.
	metaReads.Store(0)
	listAll(credgate.CredentialFilter{IntegrationID: "pay"})
	listAll(credgate.CredentialFilter{IntegrationID: "mail"})
	if n := metaReads.Load(); n != 0 {
		t.Errorf("listing services with records read %d credentials' metadata, want none", n)
	}
	// A page that ends with a service's last credential resumes at the
	// next service, without reading that one again and without loss.
	mail, err := e.store.ListCredentials(ctx, credgate.CredentialFilter{IntegrationID: "mail", Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	first, err := e.store.ListCredentials(ctx, credgate.CredentialFilter{Limit: len(mail.Credentials)})
	if err != nil {
		t.Fatal(err)
	}
	if first.Next == nil || !first.Next.PastEnd() {
		t.Fatalf("a page ending with mail's last credential resumes at %+v", first.Next)
	}
	deltaReads.Store(0)
	second, err := e.store.ListCredentials(ctx, credgate.CredentialFilter{Limit: 1, After: first.Next})
	if err != nil {
		t.Fatal(err)
	}
	if len(second.Credentials) != 1 || second.Credentials[0].IntegrationID != "old" {
		t.Fatalf("the page after mail's end: %+v", second.Credentials)
	}
	if n := deltaReads.Load(); n != 1 {
		t.Errorf("the page after mail's end read %d services' inventories, want 1 (old's)", n)
	}
	check("with a service without a record")
	if sec, err := e.root.Logical().Read(e.mount + "/data/tenants/" + tenant + "/inventory/old/base"); err != nil || sec == nil {
		t.Fatalf("the walk built no record for the service without one: %v", err)
	}
	recordWrites.Store(0)
	check("after a walk built its record")
	// A walk writes a record only when it says otherwise: the records
	// read back equal what the walks made of the same metadata.
	if n := recordWrites.Load(); n != 0 {
		t.Errorf("walks over records they had settled wrote %d of them again", n)
	}
	// The records answer without reading any credential's metadata.
	metaReads.Store(0)
	listAll(credgate.CredentialFilter{})
	if n := metaReads.Load(); n != 0 {
		t.Errorf("listing the inventory read %d credentials' metadata, want none", n)
	}
}

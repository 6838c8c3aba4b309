// Package conformance is the behaviour every vaultstore.Store must show
// against a real Vault, in the habit of Dex's storage/conformance: the
// credential records (values in KV data, descriptions projected into
// custom_metadata), the projection following every write, check-and-set and
// If-Match, the rotation lock, and the records a service's incarnation and a
// deletion guard. Run it with a store over a Vault set up by
// vaultstore.Bootstrap; vaultstore's own tests run it against a dev server.
package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/policy"
)

// Store is what the suite calls: vaultstore.Store's record methods.
type Store interface {
	CreateService(ctx context.Context, svc *credgate.Service) (*credgate.Service, error)
	GetService(ctx context.Context, id string) (*credgate.Service, error)
	UpdateService(ctx context.Context, id string, ifMatch int, fn func(*credgate.Service) error, creds *credgate.PrimaryUpdate) (*credgate.Service, error)
	DeleteService(ctx context.Context, id string, ifMatch int) error
	CreateCredential(ctx context.Context, c *credgate.Credential) (*credgate.Credential, error)
	GetCredential(ctx context.Context, r credgate.CredentialRead) (*credgate.Credential, error)
	ListCredentials(ctx context.Context, f credgate.CredentialFilter) (*credgate.CredentialPage, error)
	UpdateCredential(ctx context.Context, cred string, ifMatch int, fn func(*credgate.Credential) error) (*credgate.Credential, error)
	DeleteCredential(ctx context.Context, cred string, ifMatch int) (string, error)
	CredentialVersions(ctx context.Context, cred string) ([]credgate.CredentialVersion, error)
	RotateCredential(ctx context.Context, cred string, ifMatch int, fn func(*credgate.Credential) error, repeatable bool) (*credgate.Credential, error)
	TokenFor(ctx context.Context, p *credgate.Principal) (string, error)
	// The credentials' ledgers: reads gathered, merged, read back.
	RecordRead(ctx context.Context, service, cred string, version int, grant string)
	FlushLedgers()
	CredentialLedger(ctx context.Context, service, cred string) (*credgate.Ledger, error)
	// Rotations through rotators: their records and the turn at driving one.
	CreateRotator(ctx context.Context, r *credgate.Rotator) (*credgate.Rotator, error)
	BeginRotation(ctx context.Context, cred, trigger string, ifMatch int) (*credgate.Credential, bool, error)
	Rotation(ctx context.Context, tenant, service, cred string) (*credgate.Rotation, error)
	UpdateRotation(ctx context.Context, tenant, service, cred string, fn func(*credgate.Rotation) error) (*credgate.Rotation, error)
	HoldRotation(ctx context.Context, tenant, cred, holder string, ttl time.Duration) error
	ReleaseRotation(ctx context.Context, tenant, cred, holder string)
}

// Env is a store under test and a way to look behind it.
type Env struct {
	Store Store
	// Root is a client with an admin token on the store's Vault: the suite
	// reads and writes records as they are kept, to check them and to set
	// up what a failed writer leaves behind.
	Root  *api.Client
	Mount string
	// LockWait is the store's Options.LockWait: the suite holds a rotation
	// lock past it.
	LockWait time.Duration
}

// Run runs the suite; newEnv returns a fresh Env for each test.
func Run(t *testing.T, newEnv func(t *testing.T) *Env) {
	tests := []struct {
		name string
		run  func(t *testing.T, e *Env)
	}{
		{"CredentialValuesAreInDataDescriptionsInMetadata", testRecordLayout},
		{"ViewerReadsDescriptionsNeverValues", testViewer},
		{"ProjectionFollowsEveryWrite", testProjectionFollows},
		{"ConcurrentWritersLeaveTheNewestProjected", testConcurrentProjection},
		{"AWriterRepairsAProjectionLeftBehind", testProjectionRepair},
		{"VersionNotesAreKeptForTheNewestTen", testVersionNotes},
		{"IfMatchIsCheckAndSet", testIfMatch},
		{"ConcurrentUpdatesLoseNothing", testConcurrentUpdates},
		{"RotationsTakeTurns", testRotationLock},
		{"ALockOfADeadHolderIsWaitedForThenRefused", testDeadLock},
		{"TheValueReadProvesItsOwnStatus", testValueProvesStatus},
		{"CredentialsOfAnEarlierServiceAreNotInherited", testIncarnation},
		{"DeleteMarksFirstAndFinishesOnRepeat", testDeleteFinishes},
		{"LedgerMergesAddUpAcrossConcurrentWriters", testLedgerMerges},
		{"ConcurrentTriggersMakeOneRotation", testOneRotation},
		{"RotationStepsAreRecordedOnceAndPendingValuesNeverServed", testRotationSteps},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, newEnv(t)) })
	}
}

var tenantSeq atomic.Int64

// fixture is a tenant with a service and the principals of each role.
type fixture struct {
	e                     *Env
	tenant                string
	admin, reader, viewer context.Context
}

func newFixture(t *testing.T, e *Env) *fixture {
	t.Helper()
	ten := fmt.Sprintf("conf-%d-%d", time.Now().UnixNano()%1e6, tenantSeq.Add(1))
	as := func(sub, role string) context.Context {
		p := &credgate.Principal{Subject: sub, Email: sub + "@example.test", Name: sub, Tenant: ten, Roles: []string{role}, Expiry: time.Now().Add(time.Hour)}
		return credgate.WithRequestID(credgate.WithPrincipal(context.Background(), p), "conformance-"+sub)
	}
	f := &fixture{e: e, tenant: ten, admin: as("ann", "integration_admin"), reader: as("rita", "credential_reader"), viewer: as("vic", "integration_viewer")}
	if _, err := e.Store.CreateService(f.admin, &credgate.Service{ID: "svc", Name: "Svc", Status: credgate.StatusActive, Metadata: map[string]any{}}); err != nil {
		t.Fatal(err)
	}
	return f
}

// cred stores an api_key credential with key.
func (f *fixture) cred(t *testing.T, name, key string) *credgate.Credential {
	t.Helper()
	c, err := f.e.Store.CreateCredential(f.admin, &credgate.Credential{
		IntegrationID: "svc", CredentialName: name, AuthType: credgate.AuthAPIKey, Status: credgate.CredActive,
		Description: "about " + name, Metadata: map[string]any{"team": "billing"}, Secrets: credgate.Secrets{"apiKey": key},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (f *fixture) path(api, folder, name string) string {
	l, p := policy.Layout{Mount: f.e.Mount}, policy.Path(f.tenant, folder, name)
	if api == "metadata" {
		return l.Metadata(p)
	}
	return l.Data(p)
}

// stored reads a credential's KV data and custom_metadata as root.
func (f *fixture) stored(t *testing.T, id string) (data map[string]any, version int, custom map[string]any) {
	t.Helper()
	sec, err := f.e.Root.Logical().Read(f.path("data", policy.FolderCredentials, "svc/"+id))
	if err != nil || sec == nil {
		t.Fatalf("reading %s: %v", id, err)
	}
	data, _ = sec.Data["data"].(map[string]any)
	meta, _ := sec.Data["metadata"].(map[string]any)
	n, _ := meta["version"].(json.Number).Int64()
	custom, _ = meta["custom_metadata"].(map[string]any)
	return data, int(n), custom
}

// described returns how the listing describes credential id.
func (f *fixture) described(t *testing.T, id string) *credgate.Credential {
	t.Helper()
	page, err := f.e.Store.ListCredentials(f.viewer, credgate.CredentialFilter{IntegrationID: "svc"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range page.Credentials {
		if c.ID == id {
			return c
		}
	}
	return nil
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if credgate.ErrorCode(err) != code {
		t.Fatalf("got %v; want %s", err, code)
	}
}

func testRecordLayout(t *testing.T, e *Env) {
	f := newFixture(t, e)
	key := "sk_" + fmt.Sprint(time.Now().UnixNano())
	c := f.cred(t, "live", key)
	if c.Version != 1 || !strings.HasPrefix(c.ID, "cred-") {
		t.Fatalf("created %+v", c)
	}
	data, version, custom := f.stored(t, c.ID)
	secrets, _ := data["secrets"].(map[string]any)
	info, _ := data["info"].(map[string]any)
	if version != 1 || secrets["apiKey"] != key || info["credentialName"] != "live" || info["description"] != "about live" {
		t.Fatalf("KV data at version %d: %v", version, data)
	}
	if strings.Contains(fmt.Sprint(info), key) {
		t.Fatal("the descriptive part of the data holds the value")
	}
	if custom["projected"] != "1" || custom["status"] != "active" || custom["authType"] != "api_key" {
		t.Fatalf("custom_metadata: %v", custom)
	}
	for k, v := range custom {
		if strings.Contains(fmt.Sprint(v), key) {
			t.Fatalf("custom_metadata %s holds the value", k)
		}
	}
	idx, err := e.Root.Logical().Read(f.path("data", policy.FolderCredIndex, c.ID))
	if err != nil || idx == nil || idx.Data["data"].(map[string]any)["service_id"] != "svc" {
		t.Fatalf("index: %v %v", idx, err)
	}
	got, err := e.Store.GetCredential(f.reader, credgate.CredentialRead{Service: "svc", ID: c.ID})
	if err != nil || got.Secrets["apiKey"] != key || got.Description != "about live" || got.Version != 1 {
		t.Fatalf("read: %+v %v", got, err)
	}
}

func testViewer(t *testing.T, e *Env) {
	f := newFixture(t, e)
	key := "sk_" + fmt.Sprint(time.Now().UnixNano())
	c := f.cred(t, "live", key)
	d := f.described(t, c.ID)
	if d == nil || d.CredentialName != "live" || d.Description != "about live" || d.Metadata["team"] != "billing" || len(d.Secrets) != 0 {
		t.Fatalf("viewer's description: %+v", d)
	}
	_, err := e.Store.GetCredential(f.viewer, credgate.CredentialRead{Service: "svc", ID: c.ID})
	wantCode(t, err, credgate.EInsufficientPermissions)
	// Vault itself refuses the viewer's token the values.
	p := credgate.PrincipalFrom(f.viewer)
	tok, err := e.Store.TokenFor(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	vc, err := e.Root.Clone()
	if err != nil {
		t.Fatal(err)
	}
	vc.SetToken(tok)
	_, err = vc.Logical().Read(f.path("data", policy.FolderCredentials, "svc/"+c.ID))
	var re *api.ResponseError
	if !errors.As(err, &re) || re.StatusCode != 403 {
		t.Fatalf("the viewer's Vault token on the values: %v; want 403", err)
	}
	if _, err := vc.Logical().Read(f.path("metadata", policy.FolderCredentials, "svc/"+c.ID)); err != nil {
		t.Fatalf("the viewer's Vault token on the description: %v", err)
	}
}

func testProjectionFollows(t *testing.T, e *Env) {
	f := newFixture(t, e)
	c := f.cred(t, "live", "k0")
	steps := []func(c *credgate.Credential){
		func(c *credgate.Credential) { c.Description = "two" },
		func(c *credgate.Credential) { c.Secrets["apiKey"] = "k1" },
		func(c *credgate.Credential) { c.Scopes = []string{"read", "write"}; c.Metadata["env"] = "prod" },
		func(c *credgate.Credential) { c.Status = credgate.CredInactive },
		func(c *credgate.Credential) { c.Description = strings.Repeat("long ", 390) }, // several chunks
		func(c *credgate.Credential) { c.Description = "short again" },                // fewer chunks
	}
	for i, step := range steps {
		out, err := e.Store.UpdateCredential(f.admin, c.ID, 0, func(c *credgate.Credential) error { step(c); return nil })
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		data, version, _ := f.stored(t, c.ID)
		d := f.described(t, c.ID)
		info := data["info"].(map[string]any)
		if d == nil || d.Version != version || out.Version != version || d.Description != info["description"] || d.Status != info["status"] {
			t.Fatalf("step %d: described %+v; stored version %d, %v", i, d, version, info)
		}
	}
	vs, err := e.Store.CredentialVersions(f.viewer, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	var changes []string
	for _, v := range vs {
		changes = append(changes, v.Change)
	}
	if got := strings.Join(changes, ","); got != "created,updated,rotated,updated,updated,updated,updated" {
		t.Fatalf("changes: %s", got)
	}
}

func testConcurrentProjection(t *testing.T, e *Env) {
	f := newFixture(t, e)
	c := f.cred(t, "live", "k0")
	const n = 10
	f.updateConcurrently(t, c.ID, n, func(i int, c *credgate.Credential) { c.Description = fmt.Sprintf("writer %d", i) })
	data, version, _ := f.stored(t, c.ID)
	d := f.described(t, c.ID)
	if version != n+1 || d.Version != version || d.Description != data["info"].(map[string]any)["description"] {
		t.Fatalf("after %d concurrent writes: stored version %d (%v), described %d (%q)", n, version, data["info"].(map[string]any)["description"], d.Version, d.Description)
	}
}

// updateConcurrently makes n updates of credential id at once, the i-th
// applying change(i, ·), each without If-Match.
func (f *fixture) updateConcurrently(t *testing.T, id string, n int, change func(i int, c *credgate.Credential)) {
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if _, err := f.e.Store.UpdateCredential(f.admin, id, 0, func(c *credgate.Credential) error {
				change(i, c)
				return nil
			}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

func testProjectionRepair(t *testing.T, e *Env) {
	f := newFixture(t, e)
	c := f.cred(t, "live", "k0")
	// A writer wrote version 2 and died before projecting it.
	data, _, _ := f.stored(t, c.ID)
	data["info"].(map[string]any)["description"] = "written, not projected"
	if _, err := e.Root.Logical().Write(f.path("data", policy.FolderCredentials, "svc/"+c.ID), map[string]any{"data": data, "options": map[string]any{"cas": 1}}); err != nil {
		t.Fatal(err)
	}
	if d := f.described(t, c.ID); d.Version != 1 {
		t.Fatalf("set-up: described at %d", d.Version)
	}
	// The next writer's request fails its If-Match, but repairs first.
	_, err := e.Store.UpdateCredential(f.admin, c.ID, 1, func(c *credgate.Credential) error { c.Description = "stale"; return nil })
	wantCode(t, err, credgate.EVersionConflict)
	if d := f.described(t, c.ID); d.Version != 2 || d.Description != "written, not projected" {
		t.Fatalf("after the next writer: described %d %q", d.Version, d.Description)
	}
}

func testVersionNotes(t *testing.T, e *Env) {
	f := newFixture(t, e)
	c := f.cred(t, "live", "k0")
	for i := range 14 {
		if _, err := e.Store.UpdateCredential(f.admin, c.ID, 0, func(c *credgate.Credential) error { c.Secrets["apiKey"] = fmt.Sprint("k", i+1); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	_, _, custom := f.stored(t, c.ID)
	notes := 0
	for k := range custom {
		if strings.HasPrefix(k, "v.") {
			notes++
		}
	}
	if notes != 10 || len(custom) > 64 {
		t.Fatalf("%d version notes, %d custom_metadata keys; want 10 notes and at most 64 keys", notes, len(custom))
	}
	vs, err := e.Store.CredentialVersions(f.admin, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if last := vs[len(vs)-1]; last.Version != 15 || !last.Current || last.Change != credgate.ChangeRotated || last.ChangedBy != "ann" {
		t.Fatalf("newest version: %+v", last)
	}
}

func testIfMatch(t *testing.T, e *Env) {
	f := newFixture(t, e)
	c := f.cred(t, "live", "k0")
	set := func(desc string) func(*credgate.Credential) error {
		return func(c *credgate.Credential) error { c.Description = desc; return nil }
	}
	out, err := e.Store.UpdateCredential(f.admin, c.ID, 1, set("two"))
	if err != nil || out.Version != 2 {
		t.Fatalf("matching If-Match: %v %v", out, err)
	}
	_, err = e.Store.UpdateCredential(f.admin, c.ID, 1, set("lost"))
	var ce *credgate.Error
	if !errors.As(err, &ce) || ce.Code != credgate.EVersionConflict || ce.CurrentVersion != 2 {
		t.Fatalf("stale If-Match: %v", err)
	}
	// The same change again with the stale version: it is in the record
	// already, so it succeeds and writes nothing.
	out, err = e.Store.UpdateCredential(f.admin, c.ID, 1, set("two"))
	if err != nil || out.Version != 2 {
		t.Fatalf("a change already made: %v %v", out, err)
	}
	if _, v, _ := f.stored(t, c.ID); v != 2 {
		t.Fatalf("version %d; want 2", v)
	}
	// Services too, and a stale DELETE writes nothing.
	_, err = e.Store.UpdateService(f.admin, "svc", 9, func(s *credgate.Service) error { s.Description = "x"; return nil }, nil)
	wantCode(t, err, credgate.EVersionConflict)
	wantCode(t, e.Store.DeleteService(f.admin, "svc", 9), credgate.EVersionConflict)
	_, err = e.Store.DeleteCredential(f.admin, c.ID, 1)
	wantCode(t, err, credgate.EVersionConflict)
	if _, err := e.Store.GetCredential(f.reader, credgate.CredentialRead{Service: "svc", ID: c.ID}); err != nil {
		t.Fatalf("after stale deletes: %v", err)
	}
}

func testConcurrentUpdates(t *testing.T, e *Env) {
	f := newFixture(t, e)
	c := f.cred(t, "live", "k0")
	const n = 8
	f.updateConcurrently(t, c.ID, n, func(i int, c *credgate.Credential) { c.Metadata[fmt.Sprint("writer-", i)] = true })
	got, err := e.Store.GetCredential(f.admin, credgate.CredentialRead{Service: "svc", ID: c.ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Metadata) != n+1 || got.Version != n+1 {
		t.Fatalf("after %d concurrent updates: %d metadata keys at version %d; want %d at %d", n, len(got.Metadata), got.Version, n+1, n+1)
	}
}

func testRotationLock(t *testing.T, e *Env) {
	f := newFixture(t, e)
	c := f.cred(t, "live", "k0")
	const n = 5
	var inside, most atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, err := e.Store.RotateCredential(f.admin, c.ID, 0, func(c *credgate.Credential) error {
				now := inside.Add(1)
				for {
					m := most.Load()
					if now <= m || most.CompareAndSwap(m, now) {
						break
					}
				}
				time.Sleep(50 * time.Millisecond) // as a token endpoint takes its time
				inside.Add(-1)
				c.Secrets["apiKey"] = fmt.Sprint("rotated-", i)
				return nil
			}, false)
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if most.Load() != 1 {
		t.Fatalf("%d rotations ran at once; want 1", most.Load())
	}
	if _, v, _ := f.stored(t, c.ID); v != n+1 {
		t.Fatalf("version %d after %d rotations; want %d", v, n, n+1)
	}
}

func testDeadLock(t *testing.T, e *Env) {
	f := newFixture(t, e)
	c := f.cred(t, "live", "k0")
	hold := func(d time.Duration) {
		t.Helper()
		_, err := e.Root.Logical().Write(f.path("data", policy.FolderCredLocks, c.ID), map[string]any{
			"data": map[string]any{"holder": "a rotation that died", "until": time.Now().Add(d).UTC().Format(time.RFC3339Nano)},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	rotate := func() error {
		_, err := e.Store.RotateCredential(f.admin, c.ID, 0, func(c *credgate.Credential) error { c.Secrets["apiKey"] = "new"; return nil }, true)
		return err
	}
	// Held past the wait: refused, nothing written.
	hold(e.LockWait + 5*time.Second)
	start := time.Now()
	wantCode(t, rotate(), credgate.EVersionConflict)
	if took := time.Since(start); took < e.LockWait || took > e.LockWait+3*time.Second {
		t.Fatalf("the refusal took %s; want about the wait, %s", took, e.LockWait)
	}
	if _, v, _ := f.stored(t, c.ID); v != 1 {
		t.Fatalf("a refused rotation wrote version %d", v)
	}
	// Held by a holder whose lease ends within the wait: the rotation waits
	// for it, then goes ahead.
	hold(e.LockWait / 3)
	if err := rotate(); err != nil {
		t.Fatalf("after the lease: %v", err)
	}
	if _, v, _ := f.stored(t, c.ID); v != 2 {
		t.Fatalf("version %d; want 2", v)
	}
}

func testValueProvesStatus(t *testing.T, e *Env) {
	f := newFixture(t, e)
	older := f.cred(t, "older", "k-older")
	time.Sleep(1100 * time.Millisecond) // createdAt has second resolution
	newer := f.cred(t, "newer", "k-newer")
	if got, err := e.Store.GetCredential(f.reader, credgate.CredentialRead{Service: "svc"}); err != nil || got.ID != newer.ID {
		t.Fatalf("default read: %v %v", got, err)
	}
	// The newer one is revoked in its values, while its description still
	// says active (its writer died before projecting).
	data, _, _ := f.stored(t, newer.ID)
	data["info"].(map[string]any)["status"] = credgate.CredRevoked
	if _, err := e.Root.Logical().Write(f.path("data", policy.FolderCredentials, "svc/"+newer.ID), map[string]any{"data": data, "options": map[string]any{"cas": 1}}); err != nil {
		t.Fatal(err)
	}
	got, err := e.Store.GetCredential(f.reader, credgate.CredentialRead{Service: "svc"})
	if err != nil || got.ID != older.ID {
		t.Fatalf("default read with a revoked newest: %v %v; want the older one", got, err)
	}
	_, err = e.Store.GetCredential(f.reader, credgate.CredentialRead{Service: "svc", ID: newer.ID})
	var ce *credgate.Error
	if !errors.As(err, &ce) || ce.Code != credgate.ECredentialNotFound || ce.Status != credgate.CredRevoked {
		t.Fatalf("read of the revoked one: %v", err)
	}
	// Its earlier version, active when written, is not served either.
	if _, err := e.Store.GetCredential(f.admin, credgate.CredentialRead{Service: "svc", ID: newer.ID, Version: 1, History: true}); credgate.ErrorCode(err) != credgate.ECredentialNotFound {
		t.Fatalf("read of version 1 of the revoked one: %v", err)
	}
}

func testIncarnation(t *testing.T, e *Env) {
	f := newFixture(t, e)
	old := f.cred(t, "old", "k-old")
	// The service record goes, its credentials stay (as if a DELETE were cut
	// short), and a new service gets the same id.
	if _, err := e.Root.Logical().Delete(f.path("metadata", policy.FolderServices, "svc")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Store.CreateService(f.admin, &credgate.Service{ID: "svc", Name: "Svc again", Status: credgate.StatusActive}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Store.GetCredential(f.reader, credgate.CredentialRead{Service: "svc", ID: old.ID}); credgate.ErrorCode(err) != credgate.ECredentialNotFound {
		t.Fatalf("the earlier service's credential read through the new one: %v", err)
	}
	if _, err := e.Store.GetCredential(f.reader, credgate.CredentialRead{Service: "svc"}); credgate.ErrorCode(err) != credgate.ECredentialNotFound {
		t.Fatalf("the new service's default read: %v", err)
	}
	if page, err := e.Store.ListCredentials(f.viewer, credgate.CredentialFilter{IntegrationID: "svc"}); err != nil || len(page.Credentials) != 0 {
		t.Fatalf("the new service lists %v %v", page, err)
	}
	_, err := e.Store.UpdateCredential(f.admin, old.ID, 0, func(c *credgate.Credential) error { c.Description = "x"; return nil })
	wantCode(t, err, credgate.ECredentialNotFound)
}

func testDeleteFinishes(t *testing.T, e *Env) {
	f := newFixture(t, e)
	c := f.cred(t, "live", "k0")
	// A DELETE stopped after removing the values: the index is left.
	if _, err := e.Root.Logical().Delete(f.path("metadata", policy.FolderCredentials, "svc/"+c.ID)); err != nil {
		t.Fatal(err)
	}
	if svc, err := e.Store.DeleteCredential(f.admin, c.ID, 0); err != nil || svc != c.IntegrationID {
		t.Fatalf("repeating the DELETE: %v", err)
	}
	for _, p := range []string{f.path("data", policy.FolderCredIndex, c.ID), f.path("data", policy.FolderCredLocks, c.ID)} {
		if sec, _ := e.Root.Logical().Read(p); sec != nil {
			t.Fatalf("%s is left", p)
		}
	}
	_, err := e.Store.DeleteCredential(f.admin, c.ID, 0)
	wantCode(t, err, credgate.ECredentialNotFound)

	// A service DELETE marks the service first: it is gone for readers and
	// writers at once, and the next DELETE finishes.
	c2 := f.cred(t, "two", "k2")
	svc, err := e.Store.GetService(f.admin, "svc")
	if err != nil {
		t.Fatal(err)
	}
	sec, err := e.Root.Logical().Read(f.path("data", policy.FolderServices, "svc"))
	if err != nil {
		t.Fatal(err)
	}
	rec := sec.Data["data"].(map[string]any)
	rec["deleting"], rec["delete_of"] = true, svc.Version
	if _, err := e.Root.Logical().Write(f.path("data", policy.FolderServices, "svc"), map[string]any{"data": rec}); err != nil {
		t.Fatal(err)
	}
	_, err = e.Store.GetService(f.admin, "svc")
	wantCode(t, err, credgate.EServiceNotFound)
	_, err = e.Store.GetCredential(f.reader, credgate.CredentialRead{Service: "svc", ID: c2.ID})
	wantCode(t, err, credgate.EServiceNotFound)
	_, err = e.Store.UpdateCredential(f.admin, c2.ID, 0, func(c *credgate.Credential) error { return nil })
	wantCode(t, err, credgate.ECredentialNotFound)
	_, err = e.Store.UpdateService(f.admin, "svc", 0, func(s *credgate.Service) error { return nil }, nil)
	wantCode(t, err, credgate.EServiceNotFound)
	if err := e.Store.DeleteService(f.admin, "svc", svc.Version); err != nil {
		t.Fatalf("finishing the DELETE with its If-Match: %v", err)
	}
	for _, folder := range []string{"services", policy.FolderCredentials, "svc/" + policy.FolderCredIndex, "service-names"} {
		if sec, _ := e.Root.Logical().List(policy.Layout{Mount: f.e.Mount}.Metadata(policy.FolderPath(f.tenant, folder))); sec != nil {
			t.Fatalf("left under %s: %v", folder, sec.Data["keys"])
		}
	}
}

// testLedgerMerges: reads gathered and flushed by many writers at once
// (each flush merges through check-and-set into the same ledger) add up
// exactly: no read counted twice, none lost, each reader's last version
// the one it read last; a reader may not read the ledger, its admin may.
func testLedgerMerges(t *testing.T, e *Env) {
	f := newFixture(t, e)
	c := f.cred(t, "ledger", "key-"+f.tenant)
	const writers, reads = 8, 25
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range reads {
				who := f.reader
				if i%5 == 0 {
					who = f.viewer // (the ledger counts whoever the caller says read)
				}
				e.Store.RecordRead(who, "svc", c.ID, 1+w%2, "")
				if i%7 == 0 {
					e.Store.FlushLedgers()
				}
			}
			e.Store.FlushLedgers()
		})
	}
	wg.Wait()
	e.Store.RecordRead(f.reader, "svc", c.ID, 3, "")
	e.Store.FlushLedgers()
	l, err := e.Store.CredentialLedger(f.admin, "svc", c.ID)
	if err != nil {
		t.Fatal(err)
	}
	var total, hours int64
	for _, r := range l.Readers {
		total += r.Reads
	}
	for _, h := range l.Hours {
		hours += h.Reads
	}
	if want := int64(writers*reads + 1); total != want || hours != want || len(l.Readers) != 2 {
		t.Fatalf("%d reads by %d readers, %d in the hours; want %d by 2", total, len(l.Readers), hours, want)
	}
	if rita := l.ReaderOf("", "rita"); rita == nil || rita.LastVersion != 3 || rita.Reads != writers*reads*4/5+1 {
		t.Fatalf("rita: %+v", rita)
	}
	if _, err := e.Store.CredentialLedger(f.reader, "svc", c.ID); credgate.ErrorCode(err) != credgate.EInsufficientPermissions {
		t.Fatalf("a reader reads the ledger: %v", err)
	}
}

// rotating is a credential of f named to be rotated by a new rotator.
func (f *fixture) rotating(t *testing.T, key string) *credgate.Credential {
	t.Helper()
	rot, err := f.e.Store.CreateRotator(f.admin, &credgate.Rotator{URL: "https://rotator.example/rotate"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.e.Store.CreateCredential(f.admin, &credgate.Credential{
		IntegrationID: "svc", CredentialName: "rotated", AuthType: credgate.AuthAPIKey, Status: credgate.CredActive,
		Metadata: map[string]any{}, Secrets: credgate.Secrets{"apiKey": key}, Rotator: rot.ID,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func testOneRotation(t *testing.T, e *Env) {
	f := newFixture(t, e)
	c := f.rotating(t, "key-"+f.tenant)
	const n = 8
	ids := make([]string, n)
	started := atomic.Int32{}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			out, ok, err := e.Store.BeginRotation(f.admin, c.ID, credgate.TriggerRequest, 0)
			if err != nil {
				t.Error(err)
				return
			}
			if ok {
				started.Add(1)
			}
			ids[i] = out.Rotation.ID
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("%d triggers made several rotations: %v", n, ids)
		}
	}
	if started.Load() != 1 {
		t.Fatalf("%d triggers say they started it", started.Load())
	}
	sec, err := e.Root.Logical().Read(f.path("data", policy.FolderRotations, "svc/"+c.ID))
	if err != nil || sec == nil {
		t.Fatalf("the rotation is not kept where the layout says: %v", err)
	}
	if d := sec.Data["data"].(map[string]any); d["id"] != ids[0] || d["state"] != credgate.RotationRunning || d["step"] != credgate.StepCreate {
		t.Fatalf("stored: %v", d)
	}
	// A viewer sees where it stands on the credential, without values.
	if got := f.described(t, c.ID); got.Rotation == nil || got.Rotation.ID != ids[0] || got.Rotation.FromVersion != 1 {
		t.Fatalf("described: %+v", got.Rotation)
	}
	// A stale If-Match starts nothing; neither does a credential without
	// a rotator.
	if _, _, err := e.Store.BeginRotation(f.admin, c.ID, credgate.TriggerRequest, 9); credgate.ErrorCode(err) != credgate.EVersionConflict {
		t.Fatalf("stale If-Match: %v", err)
	}
	plain := f.cred(t, "plain", "k-"+f.tenant)
	wantCode(t, func() error {
		_, _, err := e.Store.BeginRotation(f.admin, plain.ID, credgate.TriggerRequest, 0)
		return err
	}(), credgate.EValidationFailed)
}

func testRotationSteps(t *testing.T, e *Env) {
	f := newFixture(t, e)
	c := f.rotating(t, "key-"+f.tenant)
	if _, _, err := e.Store.BeginRotation(f.admin, c.ID, credgate.TriggerRequest, 0); err != nil {
		t.Fatal(err)
	}
	sys := credgate.WithPrincipal(context.Background(), credgate.SystemPrincipal(f.tenant))
	// Two holders: one turn at a time.
	if err := e.Store.HoldRotation(sys, f.tenant, c.ID, "one", time.Minute); err != nil {
		t.Fatal(err)
	}
	wantCode(t, e.Store.HoldRotation(sys, f.tenant, c.ID, "two", time.Minute), credgate.EVersionConflict)
	// Replicas recording the same step's result: one is recorded.
	pending := "pending-" + f.tenant
	var recorded atomic.Int32
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() {
			_, err := e.Store.UpdateRotation(sys, f.tenant, "svc", c.ID, func(r *credgate.Rotation) error {
				return r.Created(credgate.Secrets{"apiKey": fmt.Sprint(pending, i)}, nil, time.Now())
			})
			switch {
			case err == nil:
				recorded.Add(1)
			case !errors.Is(err, credgate.ErrStepDone):
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if recorded.Load() != 1 {
		t.Fatalf("%d results of one step recorded", recorded.Load())
	}
	rot, err := e.Store.Rotation(sys, f.tenant, "svc", c.ID)
	if err != nil || rot.Step != credgate.StepTest || !strings.HasPrefix(rot.Pending["apiKey"], pending) {
		t.Fatalf("rotation: %+v %v", rot, err)
	}
	// The pending values are served to nobody: not by a read, not in the
	// description, and a reader's Vault token cannot read the record.
	got, err := e.Store.GetCredential(f.reader, credgate.CredentialRead{Service: "svc", ID: c.ID})
	if err != nil || got.Secrets["apiKey"] != "key-"+f.tenant {
		t.Fatalf("read: %v %v", got, err)
	}
	if d := f.described(t, c.ID); d.Rotation == nil || d.Rotation.Step != credgate.StepTest {
		t.Fatalf("described: %+v", d.Rotation)
	}
	_, _, custom := f.stored(t, c.ID)
	if b, _ := json.Marshal(custom); strings.Contains(string(b), pending) {
		t.Fatal("the pending values are in the credential's metadata")
	}
	tok, err := e.Store.TokenFor(f.reader, credgate.PrincipalFrom(f.reader))
	if err != nil {
		t.Fatal(err)
	}
	rc, _ := e.Root.Clone()
	rc.SetToken(tok)
	if _, err := rc.Logical().Read(f.path("data", policy.FolderRotations, "svc/"+c.ID)); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("a reader's token reads the rotation: %v", err)
	}
	// The holder gives its turn up; the other may take it.
	e.Store.ReleaseRotation(sys, f.tenant, c.ID, "one")
	if err := e.Store.HoldRotation(sys, f.tenant, c.ID, "two", time.Minute); err != nil {
		t.Fatal(err)
	}
	// Deleting the credential removes its rotation and its lease.
	if _, err := e.Store.DeleteCredential(f.admin, c.ID, 0); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{f.path("data", policy.FolderRotations, "svc/"+c.ID), f.path("data", policy.FolderCredLocks, c.ID+".rotation")} {
		if sec, err := e.Root.Logical().Read(p); err != nil || sec != nil {
			t.Fatalf("%s outlived its credential: %v %v", p, sec, err)
		}
	}
}

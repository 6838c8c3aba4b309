package vaultstore

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/policy"
)

// A service's inventory: the descriptions of its credentials (never
// values) as their metadata says them, in two records under
// tenants/<tenant>/inventory/<service>/, so that a page of the inventory
// reads two records for each service it covers instead of one metadata
// per credential (one, the delta, when the replica keeps the base the
// delta names: basecache.go). Whoever may read the service's
// credentials' metadata may read them, and no one else (policy: the
// inventory folder, by integration).
//
// The base holds every description; the delta what changed since it was
// last folded into the base, and overrides it. Every write of a credential
// (its values, its rotation status, its broken connection, a refresh's
// failures) first marks its delta entry pending, then writes, then notes
// what the metadata says in the delta: the marks and notes of a service's
// concurrent writers on a replica share one check-and-set write
// (markBook), and a note reads the metadata after it has read the delta,
// so the delta's versions follow the metadata in time and none can put
// back an older description. A reader describes a pending entry from the
// credential's own metadata, so a write cut anywhere is listed as it
// stands, as the walk of every credential lists it. A note clears the
// pending mark it follows, and anyone's once it is older than
// credgate.MarkGrace (the monitor looks at every written credential after
// that: its summary mark). lastAccessedAt is noted after it is written,
// without a mark (at most a minute behind, as it is kept anyway).
//
// A note that leaves more than foldAt settled entries in the delta folds
// them into the base (check-and-set) and takes them out of the delta
// where they are unchanged, so a write costs small records and the large
// one is written once every foldAt writes. A reader reads the delta
// first and the base second: an entry taken out of the delta is in every
// base it can read after. The monitor's daily rebuild reads every
// credential's own metadata (CredentialFilter.Walk) and writes the base
// anew when it differs: it read the base before the metadata, so a fold
// after that read fails its check-and-set and one before it is older
// than what the walk read.
//
// A base describes a service completely only when it is built for the
// service's incarnation: a service made before records existed has none
// (its first rebuild builds one), a new service's is built when it is
// made, and a DELETE removes it before anything else, so a built base
// says the service is live. A base that would pass inventoryRecordMax
// overflows: it keeps no entries and the service is walked, credential
// by credential, as before.

// inventoryRecordMax bounds a base's size: below Vault's 1 MiB Raft
// entry, with room for the KV envelope.
const inventoryRecordMax = 768 << 10

// foldAt is how many settled entries a delta keeps before a note folds
// them into the base.
const foldAt = 64

// inventoryBase is the descriptions of a service's credentials as last
// folded.
type inventoryBase struct {
	// Built says the base describes every credential of the service
	// incarnation Incarnation (with the delta).
	Built       bool   `json:"built,omitempty"`
	Incarnation string `json:"incarnation,omitempty"`
	// Life tells this base record from an earlier one at the same path:
	// random, set by the rebuild that writes a built base where there was
	// none (or none built), kept by every write after. A base removed
	// behind credgate's back and built again starts its versions at 1
	// again; its life tells its versions from the old ones.
	Life string `json:"l,omitempty"`
	// Overflow: the descriptions do not fit; the service is walked.
	Overflow bool                      `json:"overflow,omitempty"`
	Entries  map[string]inventoryEntry `json:"entries,omitempty"`
}

// built reports whether b describes every credential of its service's
// incarnation (with the delta); a service has a built base only while it
// is live.
func (b *inventoryBase) built() bool {
	return b != nil && b.Built && !b.Overflow
}

// inventoryDelta is what changed since the last fold.
type inventoryDelta struct {
	Entries map[string]inventoryEntry `json:"entries,omitempty"`
	// Base, Incarnation and Life name the base the delta complements:
	// every entry taken out of the delta is in that version of the base of
	// that incarnation and life and in every later one (0: none named; the
	// base is read). Each fold and each rebuild names the base it wrote,
	// and a DELETE names none before it removes the base: a replica serves
	// a base it keeps to a reader of a delta that names it (basecache.go).
	Base        int    `json:"b,omitempty"`
	Incarnation string `json:"n,omitempty"`
	Life        string `json:"l,omitempty"`
}

// names makes d name base b, written at version: a later version of the
// same incarnation and life, or any of another; none when b is not built.
// (Never an earlier one of the same: two writers' names arrive in any
// order.)
func (d *inventoryDelta) names(b *inventoryBase, version int) {
	switch {
	case !b.built():
		d.Base, d.Incarnation, d.Life = 0, "", ""
	case b.Incarnation != d.Incarnation || b.Life != d.Life || version > d.Base:
		d.Base, d.Incarnation, d.Life = version, b.Incarnation, b.Life
	}
}

// inventoryEntry is what a credential path's metadata says of it: the
// projected description (projection.go) as JSON in the form Vault answers
// it (so that an entry read back equals one made again), the hot keys,
// and the path's current version (a projection older than it is behind).
type inventoryEntry struct {
	Info    json.RawMessage `json:"i,omitempty"`
	Hot     hotKeys         `json:"h"`
	Current int             `json:"c,omitempty"`
	// Pending is the mark (credgate.NewMarkStamp) of a write that may
	// not be noted yet: the credential is described from its metadata.
	Pending string `json:"p,omitempty"`
	// Gone: the credential was removed (a delta's entry only).
	Gone bool `json:"g,omitempty"`
}

// settled is the pending mark an entry keeps when a note replaces old
// (written with the writer's own mark, "" for none) at now: another
// writer's younger than credgate.MarkGrace, which may still be writing.
func (old inventoryEntry) settled(mark string, now time.Time) string {
	if old.Pending == "" || old.Pending == mark || now.Sub(credgate.MarkTime(old.Pending)) >= credgate.MarkGrace {
		return ""
	}
	return old.Pending
}

// size is about what e takes in a record.
func (e inventoryEntry) size() int {
	h := e.Hot
	return len(e.Info) + len(h.LastAccessedAt) + len(h.Projected) + len(h.Watch) + len(h.Rotation) + len(h.Broken) + 160
}

// entryOf is the entry of a credential path's metadata (custom, at
// current version cur); ok is false when it has no projection (its
// creation did not finish).
func entryOf(custom map[string]any, cur int) (inventoryEntry, bool) {
	info, ok := projectedInfo(custom)
	if !ok {
		return inventoryEntry{}, false
	}
	return inventoryEntry{Info: info, Current: cur, Hot: hotKeys{
		LastAccessedAt: str(custom[metaLastAccess]), Projected: str(custom[metaProjected]),
		Watch: str(custom[metaWatch]), Rotation: str(custom[metaRotation]), Broken: str(custom[metaBroken]),
	}}, true
}

// kept is e as a record keeps it: its description in the form Vault
// answers it inside a record (keys sorted, Go's escaping), so that one
// read back equals one made again, without the credential's id (the
// entry's key); of the monitor's bookkeeping only the refresh state,
// which a description shows (the notices sent, which none shows, change
// with every notice and are not noted). Only what is stored pays for it:
// a description read and used at once is decoded as it came.
func (e inventoryEntry) kept() inventoryEntry {
	var m map[string]any
	if len(e.Info) > 0 && json.Unmarshal(e.Info, &m) == nil {
		delete(m, "id")
		if b, err := json.Marshal(m); err == nil {
			e.Info = b
		}
	}
	if e.Hot.Watch != "" {
		var c credgate.Credential
		c.ApplyWatch(e.Hot.Watch)
		e.Hot.Watch = ""
		if c.Refresh != nil {
			e.Hot.Watch = credgate.Watch{Refresh: c.Refresh}.Encode()
		}
	}
	return e
}

// describe decodes e as the description of credential id: what
// describeCred reads from its metadata.
func (e inventoryEntry) describe(id string) (*credInfo, bool) {
	info, ok := infoFrom(e.Info, e.Hot)
	if !ok {
		return nil, false
	}
	info.ID = id
	info.Behind = info.Version < e.Current
	return info, true
}

func (k *session) inventoryPath(service, name string) string {
	return k.path(policy.FolderInventory, service+"/"+name)
}

// inventoryRecordOf is a record of service's inventory: a missing one
// reads as the zero value.
func inventoryRecordOf[T any](k *session, service, name string, entries func(*T) *map[string]inventoryEntry) record[T] {
	r := jsonRecord[T](k, "inventory_"+name, k.inventoryPath(service, name))
	r.create = true
	r.clone = func(v T) T {
		e := entries(&v)
		*e = maps.Clone(*e) // entries are replaced, never changed
		return v
	}
	r.same = func(a, b T) bool { return reflect.DeepEqual(a, b) }
	return r
}

func (k *session) inventoryBase(service string) record[inventoryBase] {
	return inventoryRecordOf(k, service, "base", func(b *inventoryBase) *map[string]inventoryEntry { return &b.Entries })
}

func (k *session) inventoryDelta(service string) record[inventoryDelta] {
	return inventoryRecordOf(k, service, "delta", func(d *inventoryDelta) *map[string]inventoryEntry { return &d.Entries })
}

// readable answers a record's read as none when there is none or the
// caller may not read it (then the service is walked).
func readable[T any](v T, version int, err error) (*T, int, error) {
	switch {
	case errors.Is(err, errNotFound), credgate.ErrorCode(translate(err, credgate.ENotFound)) == credgate.EInsufficientPermissions:
		return nil, 0, nil
	case err != nil:
		return nil, 0, err
	}
	return &v, version, nil
}

// readInventory reads service's base and its version (nil: none).
func (k *session) readInventory(ctx context.Context, service string) (*inventoryBase, int, error) {
	return readable(k.inventoryBase(service).read(ctx))
}

// readInventoryList reads what a reader needs of service's inventory: the
// delta, then the base (see above why in that order), the base from what
// this replica keeps when the delta names it (basecache.go); base is nil
// when there is none. The base answered must not be changed.
func (k *session) readInventoryList(ctx context.Context, service string) (*inventoryBase, *inventoryDelta, error) {
	d, _, err := readable(k.inventoryDelta(service).read(ctx))
	if err != nil {
		return nil, nil, err
	}
	path := k.inventoryPath(service, "base")
	if d != nil {
		if b, ok := k.s.bases.get(path, d.Incarnation, d.Life, d.Base); ok {
			return b, d, nil
		}
	}
	b, version, err := k.readInventory(ctx, service)
	if b != nil {
		k.s.bases.put(path, version, b)
	}
	if err != nil || d == nil {
		return b, &inventoryDelta{}, err
	}
	return b, d, nil
}

// nameBase makes service's delta name its base b, written at version.
func (k *session) nameBase(ctx context.Context, service string, b *inventoryBase, version int) error {
	_, _, err := update(ctx, k.inventoryDelta(service), 0, func(d *inventoryDelta) error {
		d.names(b, version)
		return nil
	})
	return err
}

// removeBase removes service's base: first the delta's name of it, so
// that no replica serves the base it keeps (read or written), then the
// base.
func (k *session) removeBase(ctx context.Context, service string) error {
	if err := k.nameBase(ctx, service, nil, 0); err != nil {
		return err
	}
	return k.destroy(ctx, "inventory_delete", k.inventoryPath(service, "base"))
}

// removeInventory removes service's inventory records: the base, then the
// delta.
func (k *session) removeInventory(ctx context.Context, service string) error {
	if err := k.removeBase(ctx, service); err != nil {
		return err
	}
	return k.destroy(ctx, "inventory_delete", k.inventoryPath(service, "delta"))
}

// markInventory marks credential cred of service pending in its delta
// (mark: credgate.NewMarkStamp), before a write of it.
func (k *session) markInventory(ctx context.Context, service, cred, mark string) error {
	return k.changeDelta(ctx, service, map[string]string{"m|" + cred: mark})
}

// noteInventory brings the delta entries of the credentials of service to
// what their metadata says now (gone, when it is), after a write: notes
// maps each to the mark its writer made ("": none). A caller's writes
// note with the caller's session, credgate's bookkeeping with the
// tenant's system session (noteOwn).
func (k *session) noteInventory(ctx context.Context, service string, notes map[string]string) error {
	changes := make(map[string]string, len(notes))
	for cred, mark := range notes {
		changes["n|"+cred] = mark
	}
	return k.changeDelta(ctx, service, changes)
}

// changeDelta makes the marks ("m|<credential>") and notes
// ("n|<credential>") of changes in service's delta, in one check-and-set
// write with those of the service's other writers on this replica
// (markBook), so that they do not exhaust each other's retries. A delta
// left with more than foldAt settled entries is folded.
func (k *session) changeDelta(ctx context.Context, service string, changes map[string]string) error {
	return k.s.notes.markAll(ctx, k.tenant+"/"+service, changes, func(ctx context.Context, changes map[string]string) error {
		marks, notes := map[string]string{}, map[string]string{}
		for key, v := range changes {
			op, cred, _ := strings.Cut(key, "|")
			if op == "m" {
				marks[cred] = v
			} else {
				notes[cred] = v
			}
		}
		d, v, err := update(ctx, k.inventoryDelta(service), 0, func(d *inventoryDelta) error {
			if d.Entries == nil {
				d.Entries = map[string]inventoryEntry{}
			}
			if err := k.describeInto(ctx, service, d, notes); err != nil {
				return err
			}
			for id, m := range marks {
				e := d.Entries[id]
				e.Pending = m
				d.Entries[id] = e
			}
			return nil
		})
		if err == nil && d.settled() > foldAt {
			_ = k.foldInventory(ctx, service, d, v) // the next note tries again
		}
		return err
	})
}

// settled counts the entries of d no write is pending for.
func (d *inventoryDelta) settled() int {
	n := 0
	for _, e := range d.Entries {
		if e.Pending == "" {
			n++
		}
	}
	return n
}

// foldInventory folds the settled entries of d, service's delta read at
// version dv, into its base, and takes those still unchanged out of the
// delta.
func (k *session) foldInventory(ctx context.Context, service string, d inventoryDelta, dv int) error {
	folded := map[string]inventoryEntry{}
	for id, e := range d.Entries {
		if e.Pending == "" {
			folded[id] = e
		}
	}
	b, bv, err := update(ctx, k.inventoryBase(service), 0, func(b *inventoryBase) error {
		if b.Overflow {
			return errUnchanged // walked anyway; a rebuild that finds it fits builds it
		}
		if b.Entries == nil {
			b.Entries = map[string]inventoryEntry{}
		}
		for id, e := range folded {
			if e.Gone {
				delete(b.Entries, id)
			} else {
				b.Entries[id] = e
			}
		}
		b.fit()
		return nil
	})
	if err != nil {
		return err
	}
	k.s.bases.put(k.inventoryPath(service, "base"), bv, &b) // what version bv holds: kept, as if read
	_, _, err = update(ctx, from(k.inventoryDelta(service), d, dv), 0, func(cur *inventoryDelta) error {
		for id, e := range folded {
			if now, ok := cur.Entries[id]; ok && reflect.DeepEqual(now, e) {
				delete(cur.Entries, id)
			}
		}
		cur.names(&b, bv)
		return nil
	})
	return err
}

// note is noteInventory of one credential.
func (k *session) note(ctx context.Context, service, cred, mark string) error {
	return k.noteInventory(ctx, service, map[string]string{cred: mark})
}

// describeInto reads the metadata of the credentials of notes and puts
// what it says in d (notes: as noteInventory's).
func (k *session) describeInto(ctx context.Context, service string, d *inventoryDelta, notes map[string]string) error {
	if d.Entries == nil {
		d.Entries = map[string]inventoryEntry{}
	}
	ids := slices.Collect(maps.Keys(notes))
	read := make([]inventoryEntry, len(ids))
	found := make([]bool, len(ids))
	if err := eachAtOnce(len(ids), readsAtOnce, func(i int) (err error) {
		read[i], found[i], err = k.entryAt(ctx, service, ids[i])
		return err
	}); err != nil {
		return err
	}
	now := k.s.opts.Now()
	for i, id := range ids {
		e := read[i]
		if old, had := d.Entries[id]; had {
			e.Pending = old.settled(notes[id], now)
		}
		if found[i] {
			d.Entries[id] = e.kept()
		} else { // gone, or its creation not finished
			d.Entries[id] = inventoryEntry{Gone: true, Pending: e.Pending}
		}
	}
	return nil
}

// fit makes b overflow when its entries pass inventoryRecordMax.
func (r *inventoryBase) fit() {
	n := 0
	for _, e := range r.Entries {
		n += e.size()
	}
	if n > inventoryRecordMax {
		r.Overflow, r.Entries = true, nil
	}
}

// entryAt reads credential id's metadata as an entry; ok is false when
// the credential is gone or has no projection.
func (k *session) entryAt(ctx context.Context, service, id string) (inventoryEntry, bool, error) {
	meta, err := k.readMetadata(ctx, "credential_metadata_read", k.credPath(service, id))
	if errors.Is(err, errNotFound) {
		return inventoryEntry{}, false, nil
	}
	if err != nil {
		return inventoryEntry{}, false, err
	}
	e, ok := entryOf(meta.CustomMetadata, meta.CurrentVersion)
	return e, ok, nil
}

// settleInventory writes, as service's base, what a walk of its
// credentials read (entries), when the base read before the walk (cur,
// at version) says otherwise; a base changed since is left to its writer
// (the walk may be older than its change). It reports whether the base
// now says what the walk read (false: another writer was first).
func (k *session) settleInventory(ctx context.Context, rec *serviceRecord, cur *inventoryBase, version int, entries map[string]inventoryEntry) (bool, error) {
	next := inventoryBase{Built: true, Incarnation: rec.Incarnation, Entries: entries}
	if cur != nil && cur.Built {
		next.Life = cur.Life
	} else {
		next.Life = newIncarnation() // a new record, or one a fold made where the base was lost
	}
	if len(next.Entries) == 0 {
		next.Entries = nil // as a record without entries reads
	}
	next.fit()
	if cur != nil && reflect.DeepEqual(*cur, next) {
		return true, nil
	}
	data, err := encode(next)
	if err != nil {
		return false, err
	}
	written, err := k.write(ctx, "inventory_base_write", k.inventoryPath(rec.ID, "base"), data, version)
	if errors.Is(err, errConflict) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	k.s.bases.put(k.inventoryPath(rec.ID, "base"), written, &next)
	// Unnamed, the base written is only read when none kept is named.
	_ = k.nameBase(ctx, rec.ID, &next, written)
	return true, nil
}

// buildInventory makes service's record describe its credentials as they
// are (a new service: none), reading them after the record so that a note
// made meanwhile sends it round again.
func (k *session) buildInventory(ctx context.Context, rec *serviceRecord) error {
	for range maxCASRetries {
		cur, version, err := k.readInventory(ctx, rec.ID)
		if err != nil {
			return err
		}
		_, entries, err := k.walkCreds(ctx, rec.ID)
		if err != nil {
			return err
		}
		if done, err := k.settleInventory(ctx, rec, cur, version, entries); done || err != nil {
			return err
		}
	}
	return credgate.Errorf(credgate.EVersionConflict, "the service's credentials are being changed by other requests; retry")
}

// noteOwn notes credential cred of service in tenant after credgate's own
// bookkeeping changed its metadata, through the tenant's system session.
func (s *Store) noteOwn(ctx context.Context, tenant, service string, creds ...string) error {
	k, err := s.systemSession(ctx, tenant)
	if err != nil {
		return err
	}
	notes := make(map[string]string, len(creds))
	for _, c := range creds {
		notes[c] = ""
	}
	return k.noteInventory(ctx, service, notes)
}

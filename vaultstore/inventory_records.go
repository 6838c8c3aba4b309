package vaultstore

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"reflect"
	"sync"
	"time"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/policy"
)

// A service's inventory record: the descriptions of its credentials (never
// values) as their metadata says them, in one record at
// tenants/<tenant>/inventory/<service>, so that a page of the inventory
// reads one record for each service it covers instead of one metadata per
// credential. Whoever may read the service's credentials' metadata may read
// it, and no one else (policy: the inventory folder, by record).
//
// Every write of a credential (its values, its rotation status, its broken
// connection, a refresh's failures) first marks its entry pending, then
// writes, then notes what the metadata says: the marks and notes of a
// service's concurrent writers on a replica share one check-and-set write
// (markBook), and a note reads the metadata after it has read the record,
// so a record's versions follow the metadata in time and none can put back
// an older description. A reader describes a pending entry from the
// credential's own metadata, so a write cut anywhere is listed as it
// stands, as the walk of every credential lists it. A note clears the
// pending mark it follows, and anyone's once it is older than
// credgate.MarkGrace (the monitor looks at every written credential after
// that: its summary mark). lastAccessedAt is noted after it is written,
// without a mark (at most a minute behind, as it is kept anyway). The
// monitor's daily rebuild reads every credential's own metadata
// (CredentialFilter.Walk) and corrects any record that differs.
//
// A record describes a service completely only when it is built for the
// service's incarnation: a service made before records existed has none
// (its first rebuild builds one), and a note that finds no complete record
// bumps it instead, so that a build that read the credentials before the
// note's change fails its check-and-set and reads them again. A record
// that would pass inventoryRecordMax overflows: it keeps no entries and
// the service is walked, credential by credential, as before.

// inventoryRecordMax bounds a record's size: below Vault's 1 MiB Raft
// entry, with room for the KV envelope.
const inventoryRecordMax = 768 << 10

type inventoryRecord struct {
	// Built says the record describes every credential of the service
	// incarnation Incarnation.
	Built       bool   `json:"built,omitempty"`
	Incarnation string `json:"incarnation,omitempty"`
	// Overflow: the descriptions do not fit; the service is walked.
	Overflow bool `json:"overflow,omitempty"`
	// Bumps counts the notes that found the record incomplete.
	Bumps   int                       `json:"bumps,omitempty"`
	Entries map[string]inventoryEntry `json:"entries,omitempty"`
}

// built reports whether r describes every credential of its service's
// incarnation. A service has a built record only while it is live: its
// DELETE removes the record first, its creation builds it last.
func (r *inventoryRecord) built() bool {
	return r != nil && r.Built && !r.Overflow
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

// kept is e as a record keeps it: of the monitor's bookkeeping only the
// refresh state, which a description shows (the notices sent, which none
// shows, change with every notice and are not noted).
func (e inventoryEntry) kept() inventoryEntry {
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

func (k *session) inventoryPath(service string) string {
	return k.path(policy.FolderInventory, service)
}

// inventoryRecord is service's record; a missing one reads as the zero
// record (incomplete).
func (k *session) inventoryRecord(service string) record[inventoryRecord] {
	r := jsonRecord[inventoryRecord](k, "inventory", k.inventoryPath(service))
	r.create = true
	r.clone = func(v inventoryRecord) inventoryRecord {
		v.Entries = maps.Clone(v.Entries) // entries are replaced, never changed
		return v
	}
	r.same = func(a, b inventoryRecord) bool { return reflect.DeepEqual(a, b) }
	return r
}

// readInventory reads service's record and its version; nil when there is
// none or the caller may not read it (then the service is walked).
func (k *session) readInventory(ctx context.Context, service string) (*inventoryRecord, int, error) {
	r, v, err := k.inventoryRecord(service).read(ctx)
	switch {
	case errors.Is(err, errNotFound), credgate.ErrorCode(translate(err, credgate.ENotFound)) == credgate.EInsufficientPermissions:
		return nil, 0, nil
	case err != nil:
		return nil, 0, err
	}
	return &r, v, nil
}

// markInventory marks credential cred of service pending in its record
// (mark: credgate.NewMarkStamp), before a write of it.
func (k *session) markInventory(ctx context.Context, service, cred, mark string) error {
	return k.s.notes.markAll(ctx, "m/"+k.tenant+"/"+service, map[string]string{cred: mark}, func(ctx context.Context, marks map[string]string) error {
		_, _, err := update(ctx, k.inventoryRecord(service), 0, func(r *inventoryRecord) error {
			if !r.Built || r.Overflow {
				r.Bumps++ // a build that read before this write must read again
				return nil
			}
			if r.Entries == nil {
				r.Entries = map[string]inventoryEntry{}
			}
			for id, m := range marks {
				e := r.Entries[id]
				e.Pending = m
				r.Entries[id] = e
			}
			r.fit()
			return nil
		})
		return err
	})
}

// noteInventory brings the entries of the credentials of service in its
// record to what their metadata says now (removing those that are gone),
// after a write: notes maps each to the mark its writer made ("": none).
// A caller's writes note with the caller's session, credgate's
// bookkeeping with the tenant's system session (noteOwn).
func (k *session) noteInventory(ctx context.Context, service string, notes map[string]string) error {
	return k.s.notes.markAll(ctx, "n/"+k.tenant+"/"+service, notes, func(ctx context.Context, notes map[string]string) error {
		_, _, err := update(ctx, k.inventoryRecord(service), 0, func(r *inventoryRecord) error {
			if !r.Built || r.Overflow {
				r.Bumps++
				return nil
			}
			return k.describeInto(ctx, service, r, notes)
		})
		return err
	})
}

// note is noteInventory of one credential.
func (k *session) note(ctx context.Context, service, cred, mark string) error {
	return k.noteInventory(ctx, service, map[string]string{cred: mark})
}

// describeInto reads the metadata of the credentials of notes and puts
// what it says in r (notes: as noteInventory's).
func (k *session) describeInto(ctx context.Context, service string, r *inventoryRecord, notes map[string]string) error {
	if r.Entries == nil {
		r.Entries = map[string]inventoryEntry{}
	}
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	now := k.s.opts.Now()
	for id, mark := range notes {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			e, ok, err := k.entryAt(ctx, service, id)
			mu.Lock()
			defer mu.Unlock()
			if old, had := r.Entries[id]; had {
				e.Pending = old.settled(mark, now)
			}
			switch {
			case err != nil:
				errs = append(errs, err)
			case ok || e.Pending != "":
				r.Entries[id] = e.kept()
			default:
				delete(r.Entries, id)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	r.fit()
	return nil
}

// fit makes r overflow when its entries pass inventoryRecordMax.
func (r *inventoryRecord) fit() {
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

// settleInventory writes, as service's record, what a walk of its
// credentials read (entries), when the record read before the walk (cur,
// at version) says otherwise; a record changed since is left to its
// writer (the walk may be older than its change). It reports whether the
// record now says what the walk read (false: another writer was first).
func (k *session) settleInventory(ctx context.Context, rec *serviceRecord, cur *inventoryRecord, version int, entries map[string]inventoryEntry) (bool, error) {
	next := inventoryRecord{Built: true, Incarnation: rec.Incarnation, Entries: entries}
	if cur != nil {
		next.Bumps = cur.Bumps
		now := k.s.opts.Now()
		for id, old := range cur.Entries { // writes that may still be under way
			if p := old.settled("", now); p != "" {
				e := next.Entries[id]
				e.Pending = p
				next.Entries[id] = e
			}
		}
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
	_, err = k.write(ctx, "inventory_write", k.inventoryPath(rec.ID), data, version)
	if errors.Is(err, errConflict) {
		return false, nil
	}
	return err == nil, err
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

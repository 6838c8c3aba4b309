package vaultstore

import (
	"context"
	"errors"
	"time"
)

// A lease is a turn at some work that one holder at a time does, kept as a
// record with check-and-set: Holder has it until Until, and Cursor is
// where the work stands, so that the next holder resumes there. A holder
// that dies frees the lease when Until passes. The rotation lock of a
// credential (rotation.go) and the monitor's turn at scanning (system.go)
// are leases; both change through update.
type lease struct {
	Holder string    `json:"holder"`
	Until  time.Time `json:"until"`
	Cursor string    `json:"cursor,omitempty"`
}

// errHeld is the answer of a lease another holder has.
var errHeld = errors.New("the lease is another holder's")

// leaseRecord is the lease kept at path through kv; a lease never taken
// reads as free.
func leaseRecord(kv kvIO, op, path string) record[lease] {
	r := jsonRecord[lease](kv, op, path)
	r.create = true
	r.clone = func(l lease) lease { return l }
	return r
}

// takeLease takes, or keeps, the lease at path for holder until ttl after
// now(), and sets its cursor unless cursor is nil. It returns the lease as
// it stands and its version. Errors: errHeld while another holder has it;
// the store's.
func takeLease(ctx context.Context, r record[lease], holder string, now func() time.Time, ttl time.Duration, cursor *string) (lease, int, error) {
	return update(ctx, r, 0, func(l *lease) error {
		t := now()
		if l.Holder != holder && l.Holder != "" && t.Before(l.Until) {
			return errHeld
		}
		l.Holder, l.Until = holder, t.Add(ttl)
		if cursor != nil {
			l.Cursor = *cursor
		}
		return nil
	})
}

// releaseLease gives the lease up, keeping its cursor, if holder has it.
func releaseLease(ctx context.Context, r record[lease], holder string) error {
	_, _, err := update(ctx, r, 0, func(l *lease) error {
		if l.Holder != holder {
			return errUnchanged
		}
		*l = lease{Cursor: l.Cursor}
		return nil
	})
	return err
}

package vaultstore

import (
	"context"
	"errors"
	"math/rand/v2"
	"reflect"
	"time"

	gojson "github.com/goccy/go-json"

	"github.com/credgate/credgate"
)

// record is how one kind of record is kept at one place in Vault: how its
// current value is read and how a next value is written with
// check-and-set. Every record type (services, credentials, webhooks,
// delivery logs, events in the outbox, leases) changes through update, so
// no writer can lose another's update and every type follows one rule of
// conditional writes.
type record[T any] struct {
	// read returns the current value and its KV version; errNotFound when
	// there is none.
	read func(ctx context.Context) (T, int, error)
	// write writes next, made from cur (read at version cas), with
	// check-and-set cas (0: the record must not exist yet) and returns
	// the new version; errConflict when another writer was first. It may
	// stamp next (updatedAt): update answers next as write left it.
	write func(ctx context.Context, cur T, next *T, cas int) (int, error)
	// create makes a record that does not exist start from T's zero
	// value at version 0; otherwise a missing record is errNotFound.
	create bool
	// clone copies a value so that change works on a copy and the two can
	// be compared; default a JSON round trip.
	clone func(T) T
	// same reports whether next changes nothing that cur holds; default
	// reflect.DeepEqual.
	same func(cur, next T) bool
}

// errUnchanged, returned by a change, makes update write nothing and
// answer the current value.
var errUnchanged = errors.New("nothing to change")

// update is the storage layer's one read-modify-write, in the shape of
// Dex's updaters: it reads the record, lets change make the next value
// from a copy, applies the rule of conditional writes (credgate.CheckVersion
// with ifMatch; ifMatch 0 expects nothing), writes with check-and-set and,
// when another writer was first, backs off and starts again, at most
// maxCASRetries times.
//
// The repeated-change rule (RFC 9110 13.1.1): a change that is in the
// record already succeeds without a write and answers the record as it is,
// even with a stale ifMatch, so a client that repeats a write whose answer
// it lost is not told it conflicted; so does a change that changes nothing.
// A writer that names the version it expects and loses the race gets
// VERSION_CONFLICT at once: its condition no longer holds.
//
// Errors: change's; errNotFound (untranslated: the caller knows which
// record was missing); VERSION_CONFLICT; write's.
func update[T any](ctx context.Context, r record[T], ifMatch int, change func(*T) error) (T, int, error) {
	var zero T
	clone, same := r.clone, r.same
	if clone == nil {
		clone = jsonClone[T]
	}
	if same == nil {
		same = func(a, b T) bool { return reflect.DeepEqual(a, b) }
	}
	for attempt := range maxCASRetries {
		if err := casBackoff(ctx, attempt); err != nil {
			return zero, 0, err
		}
		cur, version, err := r.read(ctx)
		if errors.Is(err, errNotFound) && r.create {
			cur, version, err = zero, 0, nil
		}
		if err != nil {
			return zero, 0, err
		}
		next := clone(cur)
		switch err := change(&next); {
		case errors.Is(err, errUnchanged):
			return cur, version, nil
		case err != nil:
			return zero, 0, err
		}
		if same(cur, next) {
			return cur, version, nil // in the record already: nothing to write
		}
		if err := credgate.CheckVersion(version, ifMatch); err != nil {
			return zero, 0, err
		}
		written, err := r.write(ctx, cur, &next, version)
		if errors.Is(err, errConflict) {
			if ifMatch > 0 {
				return zero, 0, credgate.Errorf(credgate.EVersionConflict, "the record was changed by another request")
			}
			continue
		}
		if err != nil {
			return zero, 0, err
		}
		return next, written, nil
	}
	return zero, 0, credgate.Errorf(credgate.EVersionConflict, "the record is being changed by other requests; retry")
}

// jsonClone copies v through its JSON form: right for every record, which
// is kept as JSON anyway.
func jsonClone[T any](v T) T {
	var out T
	b, err := gojson.Marshal(v)
	if err == nil {
		_ = gojson.Unmarshal(b, &out)
	}
	return out
}

// jsonRecord is a record kept as the JSON of T in the KV data of path,
// read and written through kv; op names its Vault calls for the metrics.
func jsonRecord[T any](kv kvIO, op, path string) record[T] {
	return record[T]{
		read: func(ctx context.Context) (T, int, error) {
			var v T
			meta, err := kv.read(ctx, op+"_read", path, &v)
			if err != nil {
				return v, 0, err
			}
			return v, meta.Version, nil
		},
		write: func(ctx context.Context, _ T, next *T, cas int) (int, error) {
			return kv.write(ctx, op+"_write", path, next, cas)
		},
	}
}

// maxCASRetries bounds read-modify-write loops; past it the caller gets
// VERSION_CONFLICT rather than waiting forever on a hot record.
const maxCASRetries = 8

// casBackoff waits before a check-and-set retry: a growing, jittered pause,
// so that writers who lost a round do not all collide again.
func casBackoff(ctx context.Context, attempt int) error {
	if attempt == 0 {
		return nil
	}
	if !sleep(ctx, time.Duration(attempt*5+rand.IntN(10*attempt))*time.Millisecond) {
		return unavailable(ctx.Err())
	}
	return nil
}

// sleep waits d or until ctx ends, and reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

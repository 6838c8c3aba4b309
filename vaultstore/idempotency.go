package vaultstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/policy"
)

// An Idempotency-Key's answer is kept at
// tenants/<t>/idempotency/<day>/<hash>, written with the caller's token:
// <hash> is of the caller (issuer, subject) and the key, so keys are the
// caller's own; <day> is the UTC day the key was first used, so that the
// monitor removes a day's records at once when they are past keeping
// (SweepIdempotency). A key is looked for under today and yesterday: it is
// kept IdempotencyTTL, less than two days.

// IdempotencyTTL is how long a key's answer is kept.
const IdempotencyTTL = 24 * time.Hour

// idemRecord is one key's record: the request it was first used for, who
// runs it, and its answer once there is one.
type idemRecord struct {
	Fingerprint string    `json:"fingerprint"`
	State       string    `json:"state"` // running or done; "" is none (released)
	Holder      string    `json:"holder,omitempty"`
	Since       time.Time `json:"since"`
	Expires     time.Time `json:"expires"`
	Answer      []byte    `json:"answer,omitempty"`
}

// idemName is the record name of key for the caller in ctx.
func idemName(ctx context.Context, key string) string {
	p := credgate.PrincipalFrom(ctx)
	h := sha256.New()
	for _, part := range []string{p.Issuer, p.Subject, key} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

func idemDay(t time.Time) string { return t.UTC().Format("2006-01-02") }

func (k *session) idemPath(day, name string) string {
	return k.path(policy.FolderIdempotency, day+"/"+name)
}

// live reports whether r holds a key in use at now.
func (r *idemRecord) live(now time.Time) bool { return r.State != "" && now.Before(r.Expires) }

// ClaimIdempotency claims the caller's key for a request with fingerprint
// (a hash of what it asks), as holder: the answer kept for it when the
// key's request is done (to be replayed), nil when holder is to run it
// now (the key is new, or its last holder is older than stale). While
// another request runs the key it waits, as a rotation waits for its lock,
// until that request is done or ctx ends. Errors: IDEMPOTENCY_KEY_REUSED
// (the key was used for another request), IDEMPOTENCY_KEY_IN_USE (another
// request still ran it when ctx ended), the store's.
func (s *Store) ClaimIdempotency(ctx context.Context, key, fingerprint, holder string, stale time.Duration) ([]byte, error) {
	for {
		answer, err := s.claimIdempotency(ctx, key, fingerprint, holder, stale)
		if credgate.ErrorCode(err) != credgate.EIdempotencyKeyInUse || !sleep(ctx, time.Duration(50+rand.IntN(100))*time.Millisecond) {
			return answer, err
		}
	}
}

func (s *Store) claimIdempotency(ctx context.Context, key, fingerprint, holder string, stale time.Duration) ([]byte, error) {
	k, err := s.session(ctx)
	if err != nil {
		return nil, err
	}
	now := s.opts.Now()
	name := idemName(ctx, key)
	// A key first used yesterday is found there.
	var old idemRecord
	if _, err := k.read(ctx, "idempotency_read", k.idemPath(idemDay(now.Add(-IdempotencyTTL)), name), &old); err == nil && old.live(now) && idemDay(now.Add(-IdempotencyTTL)) != idemDay(now) {
		if old.Fingerprint != fingerprint {
			return nil, reusedKey()
		}
		if old.State == "done" {
			return old.Answer, nil
		}
		return nil, busyKey()
	} else if err != nil && !errors.Is(err, errNotFound) {
		return nil, translate(err, credgate.ENotFound)
	}
	var answer []byte
	r := jsonRecord[idemRecord](k, "idempotency", k.idemPath(idemDay(now), name))
	r.create = true
	_, _, err = update(ctx, r, 0, func(rec *idemRecord) error {
		if rec.live(now) {
			switch {
			case rec.Fingerprint != fingerprint:
				return reusedKey()
			case rec.State == "done":
				answer = rec.Answer
				return errUnchanged
			case rec.Holder != holder && now.Sub(rec.Since) < stale:
				return busyKey()
			}
		}
		*rec = idemRecord{Fingerprint: fingerprint, State: "running", Holder: holder, Since: now, Expires: now.Add(IdempotencyTTL)}
		return nil
	})
	if err != nil {
		return nil, translate(err, credgate.ENotFound)
	}
	return answer, nil
}

func reusedKey() error {
	return credgate.Errorf(credgate.EIdempotencyKeyReused, "this Idempotency-Key was used for another request; use a new key for a new request")
}

func busyKey() error {
	return credgate.Errorf(credgate.EIdempotencyKeyInUse, "a request with this Idempotency-Key is still running; retry")
}

// KeepIdempotency keeps answer for the caller's key claimed by holder
// (done: replayed to every later request with the key), or, with a nil
// answer, releases the key so that the next request with it runs again.
// Nothing is written when another holder has taken the key over since.
func (s *Store) KeepIdempotency(ctx context.Context, key, holder string, answer []byte) error {
	k, err := s.session(ctx)
	if err != nil {
		return err
	}
	now := s.opts.Now()
	name := idemName(ctx, key)
	for _, day := range []string{idemDay(now), idemDay(now.Add(-IdempotencyTTL))} {
		r := jsonRecord[idemRecord](k, "idempotency", k.idemPath(day, name))
		_, _, err := update(ctx, r, 0, func(rec *idemRecord) error {
			if rec.Holder != holder || rec.State != "running" {
				return errUnchanged
			}
			if answer == nil {
				*rec = idemRecord{Expires: rec.Expires}
				return nil
			}
			rec.State, rec.Answer = "done", answer
			return nil
		})
		if !errors.Is(err, errNotFound) {
			return translate(err, credgate.ENotFound)
		}
	}
	return nil
}

// SweepIdempotency removes tenant's kept answers of days past keeping (two
// days and older), and reports how many records it removed.
func (s *Store) SweepIdempotency(ctx context.Context, tenant string) (int, error) {
	k, err := s.systemSession(ctx, tenant)
	if err != nil {
		return 0, err
	}
	days, err := k.listFolders(ctx, "idempotency_days", k.folder(policy.FolderIdempotency))
	if err != nil {
		return 0, translate(err, credgate.ENotFound)
	}
	keep := map[string]bool{idemDay(s.opts.Now()): true, idemDay(s.opts.Now().Add(-IdempotencyTTL)): true}
	n := 0
	for _, day := range days {
		if keep[day] {
			continue
		}
		names, err := k.list(ctx, "idempotency_list", k.path(policy.FolderIdempotency, day+"/"))
		if err != nil {
			return n, translate(err, credgate.ENotFound)
		}
		for _, name := range names {
			if err := k.destroy(ctx, "idempotency_delete", k.idemPath(day, name)); err != nil {
				return n, translate(err, credgate.ENotFound)
			}
			n++
		}
	}
	return n, nil
}

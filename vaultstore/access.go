package vaultstore

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/credgate/credgate"
)

// accessInterval is the least time between two lastAccessedAt writes of
// one credential.
const accessInterval = time.Minute

type accessKey struct{ tenant, service, cred string }

// accessRecorder writes lastAccessedAt into credentials' metadata with
// credgate's own token, in the background: never as a new version, never on
// a request's critical path, at most once a minute per credential.
type accessRecorder struct {
	mu      sync.Mutex
	last    map[accessKey]time.Time // when each credential was last queued
	pending map[accessKey]time.Time
	wake    chan struct{}
	background
}

func newAccessRecorder() *accessRecorder {
	return &accessRecorder{
		last: map[accessKey]time.Time{}, pending: map[accessKey]time.Time{},
		wake: make(chan struct{}, 1), background: newBackground(),
	}
}

// RecordAccess notes that the caller in ctx read cred of service now.
func (s *Store) RecordAccess(ctx context.Context, service, cred string) {
	r := s.access
	key := accessKey{credgate.PrincipalFrom(ctx).Tenant, service, cred}
	now := s.opts.Now()
	r.mu.Lock()
	if r.closed || now.Sub(r.last[key]) < accessInterval {
		r.mu.Unlock()
		return
	}
	r.last[key] = now
	r.pending[key] = now
	if len(r.last) > s.opts.CacheSize { // forget the oldest throttle entries
		for k, t := range r.last {
			if now.Sub(t) >= accessInterval {
				delete(r.last, k)
			}
		}
	}
	r.start(s.writeAccesses)
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (s *Store) writeAccesses() {
	r := s.access
	defer close(r.done)
	for {
		stopping := false
		select {
		case <-r.wake:
		case <-r.stopped.Done():
			stopping = true
		}
		r.mu.Lock()
		batch := r.pending
		r.pending = map[accessKey]time.Time{}
		r.mu.Unlock()
		keys := slices.Collect(maps.Keys(batch))
		written := make([]bool, len(keys))
		_ = eachGently(len(keys), r.stopped.Done(), func(i int) error {
			k := keys[i]
			// A credential deleted meanwhile just fails.
			written[i] = s.patchOwn(context.Background(), "credential_touch", credPath(k.tenant, k.service, k.cred), map[string]any{metaLastAccess: batch[k].UTC().Format(time.RFC3339)}) == nil
			return nil
		})
		// lastAccessedAt is part of a description: one note a service.
		touched := map[[2]string][]string{} // by tenant and service
		for i, k := range keys {
			if written[i] {
				svc := [2]string{k.tenant, k.service}
				touched[svc] = append(touched[svc], k.cred)
			}
		}
		services := slices.Collect(maps.Keys(touched))
		_ = eachGently(len(services), r.stopped.Done(), func(i int) error {
			svc := services[i]
			return s.noteOwn(context.Background(), svc[0], svc[1], touched[svc]...)
		})
		if stopping {
			return
		}
	}
}

// Close writes the lastAccessedAt values and the ledgers' reads still
// pending, then stops the background writers; it gives up when ctx ends,
// and then says what it left unwritten.
func (s *Store) Close(ctx context.Context) error {
	defer s.vault.close()
	var errs []error
	if err := s.closeAccesses(ctx); err != nil {
		errs = append(errs, fmt.Errorf("lastAccessedAt values read before the stop were not all written: %w", err))
	}
	if err := s.closeLedgers(ctx); err != nil {
		errs = append(errs, fmt.Errorf("usage-ledger reads gathered before the stop were not all written (counts and broad-read checks lean low): %w", err))
	}
	return errors.Join(errs...)
}

func (s *Store) closeAccesses(ctx context.Context) error {
	return s.access.shutdown(ctx, &s.access.mu)
}

package vaultstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/policy"
)

// A credential's ledger (credgate.Ledger) is kept at
// tenants/<t>/ledgers/<service>/<credential>, readable by the roles with
// policy.UsageRead on the integration. Reads are gathered in memory per
// replica and merged into the ledgers through the one read-modify-write,
// as the tenant's system principal, once per LedgerInterval: never on a
// request's path, at most one write per credential and interval per
// replica. Batches a crash loses are lost (the counts lean low); a read is
// never counted for anyone but the principal its token proved.

// DefaultLedgerInterval is how often a replica writes the reads it
// gathered; DefaultPendingReads bounds what it gathers meanwhile
// ((reader, credential) pairs, about 0.5 KB each: past it, reads are not
// counted, but for the reserve of pendingShare).
const (
	DefaultLedgerInterval = time.Minute
	DefaultPendingReads   = 50_000
)

type ledgerKey struct{ tenant, service, cred string }

type readerKey struct{ issuer, subject string }

// reachKey is a principal of a tenant, for its reach (credgate.Reach).
type reachKey struct{ tenant, issuer, subject string }

// reachBatch is the integrations a principal read since the last write,
// each with its last read, and the principal as its last read named it.
// Most principals read one integration a minute: it is kept in fields, and
// a map is made for the others only (10,000 callers of one integration
// held 3.6 MB more as a map each).
type reachBatch struct {
	service   string
	at        time.Time
	more      map[string]time.Time // the integrations read but service
	who       credgate.EventReader
	requestID string
}

// add notes a read of service at at.
func (r *reachBatch) add(service string, at time.Time) {
	switch {
	case r.service == "" || r.service == service:
		r.service, r.at = service, at
	case r.more == nil:
		r.more = map[string]time.Time{service: at}
	default:
		r.more[service] = at
	}
}

// reads is each integration read with its last read.
func (r *reachBatch) reads() map[string]time.Time {
	m := make(map[string]time.Time, len(r.more)+1)
	maps.Copy(m, r.more)
	m[r.service] = r.at
	return m
}

type ledgerBook struct {
	// flushing is held by a flush from taking the pending reads until
	// they are merged, so that a flush returns only when every read
	// recorded before it is in Vault, even one a flush under way took.
	flushing sync.Mutex
	mu       sync.Mutex
	pending  map[ledgerKey]map[readerKey]*credgate.ReadBatch
	reach    map[reachKey]*reachBatch
	readers  int            // the pairs pending
	held     map[string]int // the pairs pending, by tenant
	lost     int64
	background
}

func newLedgerBook() *ledgerBook {
	return &ledgerBook{pending: map[ledgerKey]map[readerKey]*credgate.ReadBatch{}, reach: map[reachKey]*reachBatch{}, held: map[string]int{}, background: newBackground()}
}

// admits reports whether the book may gather one more (reader,
// credential) pair of tenant, bound being the replica's: below it, any
// tenant's; past it, only a tenant holding less than 1/pendingShare of
// it, until a quarter more is held in all. The pairs are gathered first
// come, so without that reserve one tenant reading widely within a minute
// would leave every other tenant's reads uncounted, and their new readers
// unreported, until the next flush.
func (b *ledgerBook) admits(tenant string, bound int) bool {
	if b.readers < bound {
		return true
	}
	return b.held[tenant] < max(1, bound/pendingShare) && b.readers < bound+bound/4
}

// pendingShare divides the bound of pending pairs into the share a tenant
// may still take from the reserve past it.
const pendingShare = 64

func (k *session) ledgerPath(service, cred string) string {
	return k.path(policy.FolderLedgers, service+"/"+cred)
}

// reachShards is how many records hold the principals' reach of a tenant
// (credgate.ReachShard): a flush writes at most this many a tenant, each
// once, however many principals read.
const reachShards = 64

// reachOf names a principal's reach: its key in its shard (a hash of
// issuer and subject, names that may hold any character) and its shard.
func reachOf(issuer, subject string) (key string, shard int) {
	sum := sha256.Sum256([]byte(issuer + "\x00" + subject))
	return hex.EncodeToString(sum[:16]), int(sum[0]) % reachShards
}

// reachPath is the record of a shard of a tenant's reach.
func (k *session) reachPath(shard int) string {
	return k.path(policy.FolderReach, fmt.Sprintf("shard-%02d", shard))
}

// RecordRead counts a read of version of credential cred of service by the
// caller in ctx, through grant ("" for a tenant-wide role), for the ledger.
func (s *Store) RecordRead(ctx context.Context, service, cred string, version int, grant string) {
	p := credgate.PrincipalFrom(ctx)
	if p == nil {
		return
	}
	b := s.ledgers
	key, rk := ledgerKey{p.Tenant, service, cred}, readerKey{p.Issuer, p.Subject}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	readers := b.pending[key]
	if readers == nil {
		readers = map[readerKey]*credgate.ReadBatch{}
		b.pending[key] = readers
	}
	batch := readers[rk]
	if batch == nil {
		if !b.admits(p.Tenant, s.opts.PendingReads) {
			b.lost++
			return
		}
		batch = &credgate.ReadBatch{Issuer: p.Issuer, Subject: p.Subject, Name: p.Name, Email: p.Email}
		readers[rk] = batch
		b.readers++
		b.held[p.Tenant]++
	}
	now := s.opts.Now()
	batch.Add(version, grant, now)
	batch.RequestID = credgate.RequestIDFrom(ctx)
	rk2 := reachKey{p.Tenant, p.Issuer, p.Subject}
	reach := b.reach[rk2]
	if reach == nil {
		reach = &reachBatch{}
		b.reach[rk2] = reach
	}
	reach.add(service, now)
	reach.who = credgate.EventReader{Subject: p.Subject, Name: p.Name, Email: p.Email, LastVersion: version, LastRead: now}
	reach.requestID = batch.RequestID
	b.start(s.writeLedgers)
}

// writeLedgers writes what was gathered every LedgerInterval, and once
// more when the store closes.
func (s *Store) writeLedgers() {
	b := s.ledgers
	defer close(b.done)
	t := time.NewTicker(s.opts.LedgerInterval)
	defer t.Stop()
	for {
		stopping := false
		select {
		case <-t.C:
		case <-b.stopped.Done():
			stopping = true
		}
		s.FlushLedgers()
		if stopping {
			return
		}
	}
}

// FlushLedgers writes the reads gathered so far now (tests, shutdown) and
// returns when they are in Vault. Flushes run one at a time, which also
// keeps them from contending for the same ledger records.
//
// A flush goes writesAtOnce records at a time, and writesAtStop once the
// replica stops or once it has run for half the ledger interval: it is
// then behind, the next interval's reads wait for it, and a flush that
// never catches up would gather them until the bound and lose the rest.
func (s *Store) FlushLedgers() {
	b := s.ledgers
	b.flushing.Lock()
	defer b.flushing.Unlock()
	b.mu.Lock()
	batch, reach := b.pending, b.reach
	b.pending, b.reach, b.readers, b.held = map[ledgerKey]map[readerKey]*credgate.ReadBatch{}, map[reachKey]*reachBatch{}, 0, map[string]int{}
	b.mu.Unlock()
	hurry, cancel := b.hurryAfter(s.opts.LedgerInterval / 2)
	defer cancel()
	s.mergeLedgers(batch, hurry)
	s.mergeReach(reach, hurry)
}

// reachShard names one of a tenant's reach records.
type reachShard struct {
	tenant string
	shard  int
}

// mergeReach merges what each principal read into its reach, one write of
// each shard touched, and reports the broad reads found.
func (s *Store) mergeReach(reach map[reachKey]*reachBatch, hurry <-chan struct{}) {
	shards := map[reachShard][]shardMember{}
	for key, r := range reach {
		id, n := reachOf(key.issuer, key.subject)
		sk := reachShard{key.tenant, n}
		shards[sk] = append(shards[sk], shardMember{id, key.issuer, r})
	}
	keys := slices.Collect(maps.Keys(shards))
	_ = eachGently(len(keys), hurry, func(i int) error {
		s.mergeReachShard(keys[i], shards[keys[i]])
		return nil
	})
}

// shardMember is a principal's reads for its shard: its key there, its
// issuer (for the alert) and what it read.
type shardMember struct {
	id, issuer string
	reads      *reachBatch
}

// mergeReachShard merges the reach of principals, all of shard key, into
// its record.
func (s *Store) mergeReachShard(key reachShard, principals []shardMember) {
	_ = mergeUsage(s, key.tenant, "reach", func(k *session) string { return k.reachPath(key.shard) },
		func(x *credgate.ReachShard, now time.Time, rules credgate.UsageRules) []credgate.UsageAlert {
			var found []credgate.UsageAlert
			for _, p := range principals {
				r := p.reads
				if n, broad := x.Merge(p.id, r.reads(), now, rules); broad {
					found = append(found, credgate.UsageAlert{Type: credgate.EventBroadRead, Tenant: key.tenant, Reader: r.who, Issuer: p.issuer, RequestID: r.requestID,
						Count: int64(n), Threshold: float64(rules.BroadIntegrations), Window: now.Truncate(rules.BroadWindow),
						Reason: fmt.Sprintf("%s read the values of %d integrations within %s (threshold %d)", r.who.Subject, n, rules.BroadWindow, rules.BroadIntegrations)})
				}
			}
			x.Forget(now, rules)
			return found
		})
}

// mergeUsage changes tenant's usage record at path (a ledger, a reach
// shard; made when missing) as the tenant's system principal, through the
// one read-modify-write, and reports the unusual use change found in the
// attempt that was written.
func mergeUsage[T any](s *Store, tenant, op string, path func(*session) string, change func(x *T, now time.Time, rules credgate.UsageRules) []credgate.UsageAlert) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*s.opts.Timeout)
	defer cancel()
	k, err := s.systemSession(ctx, tenant)
	if err != nil {
		return err
	}
	rec := jsonRecord[T](k, op, path(k))
	rec.create = true
	rules := s.opts.UsageRules(tenant)
	var found []credgate.UsageAlert
	if _, _, err := update(ctx, rec, 0, func(x *T) error {
		found = change(x, s.opts.Now(), rules) // of the attempt that is written
		return nil
	}); err != nil {
		return err
	}
	if s.opts.OnUsageAlert != nil {
		for _, a := range found {
			s.opts.OnUsageAlert(a)
		}
	}
	return nil
}

func (s *Store) mergeLedgers(batch map[ledgerKey]map[readerKey]*credgate.ReadBatch, hurry <-chan struct{}) {
	keys := slices.Collect(maps.Keys(batch))
	_ = eachGently(len(keys), hurry, func(i int) error {
		key := keys[i]
		readers := make([]credgate.ReadBatch, 0, len(batch[key]))
		for _, r := range batch[key] {
			readers = append(readers, *r)
		}
		if err := s.mergeLedger(key, readers); err != nil {
			s.ledgers.mu.Lock()
			for _, r := range readers {
				for _, h := range r.Hours {
					s.ledgers.lost += h.Reads
				}
			}
			s.ledgers.mu.Unlock()
		}
		return nil
	})
}

// mergeLedger merges readers into the ledger of key. A write whose answer
// was lost is not tried again: it may have been made, and counting twice
// is worse than counting low.
func (s *Store) mergeLedger(key ledgerKey, readers []credgate.ReadBatch) error {
	return mergeUsage(s, key.tenant, "ledger", func(k *session) string { return k.ledgerPath(key.service, key.cred) },
		func(l *credgate.Ledger, now time.Time, rules credgate.UsageRules) []credgate.UsageAlert {
			found := l.Unusual(readers, now, rules)
			l.Merge(readers, now)
			for i := range found {
				found[i].Tenant, found[i].Integration, found[i].Cred = key.tenant, key.service, key.cred
			}
			return found
		})
}

// LostReads counts the reads this replica could not count in a ledger
// (gathered past its bound, or their write failed).
func (s *Store) LostReads() int64 {
	s.ledgers.mu.Lock()
	defer s.ledgers.mu.Unlock()
	return s.ledgers.lost
}

// CredentialLedger returns the ledger of credential cred of service, as
// the caller in ctx may read it (policy.UsageRead on the integration):
// empty when nobody read it yet. Errors: INSUFFICIENT_PERMISSIONS,
// BACKEND_UNAVAILABLE.
func (s *Store) CredentialLedger(ctx context.Context, service, cred string) (*credgate.Ledger, error) {
	k, err := s.session(ctx)
	if err != nil {
		return nil, err
	}
	var l credgate.Ledger
	if _, err := k.read(ctx, "ledger_read", k.ledgerPath(service, cred), &l); err != nil && !errors.Is(err, errNotFound) {
		return nil, translate(err, credgate.ECredentialNotFound)
	}
	return &l, nil
}

// closeLedgers writes what is pending and stops the writer.
func (s *Store) closeLedgers(ctx context.Context) error {
	return s.ledgers.shutdown(ctx, &s.ledgers.mu)
}

// DescribeCredential describes credential cred of service without its
// values, from its projection (one metadata read), as the caller in ctx
// may read it. Errors: CREDENTIAL_NOT_FOUND, INSUFFICIENT_PERMISSIONS,
// BACKEND_UNAVAILABLE.
func (s *Store) DescribeCredential(ctx context.Context, service, cred string) (*credgate.Credential, error) {
	k, err := s.session(ctx)
	if err != nil {
		return nil, err
	}
	info, err := k.describeCred(ctx, service, cred)
	if err != nil {
		return nil, translate(err, credgate.ECredentialNotFound)
	}
	if info == nil || info.Deleted {
		return nil, credgate.Errorf(credgate.ECredentialNotFound, "No credential exists with ID: %s", cred)
	}
	c := info.Credential
	c.ReadAt = s.opts.Now()
	k.derive(&c)
	return &c, nil
}

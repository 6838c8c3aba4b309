package credgate

import (
	"crypto/rand"
	"encoding/hex"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The summary: what the monitor keeps of a tenant's credentials so that a
// pass costs what is due, not what exists. A tenant's summary is a head
// (SummaryHead: per shard, when it is next due and what it counts; the
// credentials written since the monitor last looked) and SummaryShards
// shards of Facts, a credential's monitoring facts, kept by the monitor.
// Writers only mark a credential changed in the head; the monitor reads the
// head each pass, and a shard only when it is due or holds a changed
// credential.

// SummaryShards is the most shards a tenant's summary has: a tenant at its
// default limit (10,000 credentials) has about 625 facts a shard (about
// 150 KB), far below the size of one Vault entry. A smaller tenant has
// fewer (ShardsFor), so that what is due in it is in fewer records.
const SummaryShards = 16

// ShardSize is the facts a shard is made for when a summary is rebuilt;
// past MaxShardSize the summary asks for a rebuild with more shards.
const (
	ShardSize    = 625
	MaxShardSize = 4 * ShardSize
)

// InlineFacts is the most credentials whose facts a head keeps itself
// (about 40 KB), with no shard: a small tenant's due work costs a read and
// a write of its head.
const InlineFacts = 250

// ShardsFor is the shards a summary of n credentials is built with.
func ShardsFor(n int) int {
	return max(1, min(SummaryShards, (n+ShardSize-1)/ShardSize))
}

// MaxSummaryDirty bounds the credentials a head remembers as changed; past
// it the head asks for a rebuild of the tenant's summary (a bulk import):
// the head stays small and the monitor reads every credential once.
const MaxSummaryDirty = 2000

// MarkGrace bounds how long after its mark the write a mark announces may
// still land (a store's calls time out far sooner): the monitor forgets no
// younger mark, so no write lands after the monitor last looked.
const MarkGrace = time.Minute

// NewMarkStamp returns a mark's stamp, made at now: unique, and telling
// when (MarkTime).
func NewMarkStamp(now time.Time) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return strconv.FormatInt(now.UnixNano(), 36) + "." + hex.EncodeToString(b[:])
}

// MarkTime is when the mark of stamp was made (zero: unknown, long ago).
func MarkTime(stamp string) time.Time {
	at, _, _ := strings.Cut(stamp, ".")
	n, err := strconv.ParseInt(at, 36, 64)
	if err != nil {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// SummaryKey names a credential in a summary.
func SummaryKey(service, cred string) string { return service + "/" + cred }

// SplitSummaryKey is SummaryKey's inverse.
func SplitSummaryKey(key string) (service, cred string) {
	service, cred, _ = strings.Cut(key, "/")
	return service, cred
}

// SummaryShardOf is the shard of the credential key names in a summary of
// n shards.
func SummaryShardOf(key string, n int) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return int(h.Sum32() % uint32(max(n, 1)))
}

// SummaryHead is a tenant's summary head.
type SummaryHead struct {
	// Dirty are the credentials written since the monitor last looked at
	// them, each with a stamp the writer chose: the monitor forgets a mark
	// only while it holds the stamp it saw before reading the credential.
	Dirty map[string]string `json:"dirty,omitempty"`
	// Rebuild asks for every credential to be read again (too many marks,
	// a service deleted); Rebuilds counts the asks.
	Rebuild  bool `json:"rebuild,omitempty"`
	Rebuilds int  `json:"rebuilds,omitempty"`
	// Schedule names what the facts were derived under (the tenant's
	// thresholds and rotation defaults): under another, a rebuild.
	Schedule string `json:"schedule,omitempty"`
	// BuiltAt is when the summary was last rebuilt from every credential;
	// N its number of shards then (0: none built).
	BuiltAt time.Time `json:"builtAt"`
	N       int       `json:"n,omitempty"`
	// GrantsDue is when the tenant's earliest grant expires (nil: no
	// grant expires), kept by the grants' writers and the monitor.
	// GrantMarks counts the grants' marks, so that the monitor sets
	// GrantsDue only from a grant table no grant was added to meanwhile.
	GrantsDue  *time.Time `json:"grantsDue,omitempty"`
	GrantMarks int        `json:"grantMarks,omitempty"`
	// Shards are the shards' states, by index.
	Shards map[string]ShardState `json:"shards,omitempty"`
	// Inline is the one shard of a summary built of at most InlineFacts
	// credentials, kept in the head when Inlined.
	Inline  SummaryShard `json:"inline,omitempty"`
	Inlined bool         `json:"inlined,omitempty"`
}

// ShardState is what the head keeps of a shard: when it is next due, the
// earliest automatic refresh in it, and its counts, true until Due.
type ShardState struct {
	Due     *time.Time      `json:"due,omitempty"`
	Refresh *time.Time      `json:"refresh,omitempty"`
	Size    int             `json:"size"`
	Counts  InventoryCounts `json:"counts"`
}

// Mark records that the credential key names was written (stamp: the
// writer's). Past MaxSummaryDirty it asks for a rebuild instead.
func (h *SummaryHead) Mark(key, stamp string) {
	if len(h.Dirty) >= MaxSummaryDirty {
		h.AskRebuild()
		return
	}
	if h.Dirty == nil {
		h.Dirty = map[string]string{}
	}
	h.Dirty[key] = stamp
}

// AskRebuild asks the monitor to read every credential again; the marks
// are dropped (a rebuild reads what they name).
func (h *SummaryHead) AskRebuild() {
	h.Dirty, h.Rebuild = nil, true
	h.Rebuilds++
}

// Built records a rebuild begun from a head asked for one rebuilds times
// that read the credentials of the marks seen, of n shards (inline: the
// one a small tenant's head keeps) in states: it forgets those marks, and
// stops asking unless someone asked again while it ran.
func (h *SummaryHead) Built(rebuilds int, seen map[string]string, at time.Time, n int, schedule string, inline SummaryShard, states []ShardState) {
	h.Forget(seen)
	if h.Rebuilds == rebuilds {
		h.Rebuild = false
	}
	h.BuiltAt, h.N, h.Schedule, h.Shards, h.Inline, h.Inlined = at, n, schedule, nil, inline, inline != nil
	for i, st := range states {
		h.SetShard(i, st)
	}
}

// ExpectGrant records that a grant expiring at at is being made.
func (h *SummaryHead) ExpectGrant(at time.Time) {
	h.GrantMarks++
	if h.GrantsDue == nil || at.Before(*h.GrantsDue) {
		h.GrantsDue = &at
	}
}

// GrantsDueAt reports whether a grant of the tenant may have expired at now.
func (h *SummaryHead) GrantsDueAt(now time.Time) bool {
	return h.GrantsDue != nil && !now.Before(*h.GrantsDue)
}

// Counts is the tenant's inventory counts: the sum of its shards'.
func (h *SummaryHead) Counts() (InventoryCounts, int) {
	c := NewInventoryCounts()
	n := 0
	for _, s := range h.Shards {
		c.Overdue = s.Counts.Overdue
		c.Add(s.Counts)
		n += s.Size
	}
	return c, n
}

// Forget drops the marks of seen (key: stamp) that were not renewed since.
func (h *SummaryHead) Forget(seen map[string]string) {
	for k, stamp := range seen {
		if h.Dirty[k] == stamp {
			delete(h.Dirty, k)
		}
	}
}

// Shard returns shard i's state.
func (h *SummaryHead) Shard(i int) (ShardState, bool) {
	s, ok := h.Shards[strconv.Itoa(i)]
	return s, ok
}

// SetShard records shard i's state.
func (h *SummaryHead) SetShard(i int, s ShardState) {
	if h.Shards == nil {
		h.Shards = map[string]ShardState{}
	}
	h.Shards[strconv.Itoa(i)] = s
}

// DueShards are the shards due at now (automatic refreshes looked at
// lookahead ahead) and those holding a marked credential.
func (h *SummaryHead) DueShards(now time.Time, lookahead time.Duration) []int {
	var out []int
	for i := range h.N {
		s, ok := h.Shard(i)
		if ok && (s.Due != nil && !now.Before(*s.Due) || s.Refresh != nil && !now.Add(lookahead).Before(*s.Refresh)) {
			out = append(out, i)
		}
	}
	for k := range h.Dirty {
		out = append(out, SummaryShardOf(k, h.N))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// SummaryShard is one shard: credentials' facts by SummaryKey.
type SummaryShard map[string]Facts

// StateAt is the shard's state at now under s.
func (sh SummaryShard) StateAt(now time.Time, s Schedule) ShardState {
	st := ShardState{Size: len(sh), Counts: NewInventoryCounts()}
	st.Counts.Overdue = s.Overdue
	for key, f := range sh {
		_, id := SplitSummaryKey(key)
		c := f.Credential(id)
		st.Counts.Count(c, now)
		if at, ok := c.NextEvent(now, s); ok && (st.Due == nil || at.Before(*st.Due)) {
			st.Due = &at
		}
		if at, ok := c.RefreshAt(); ok && (st.Refresh == nil || at.Before(*st.Refresh)) {
			st.Refresh = &at
		}
	}
	return st
}

// Schedule is a tenant's monitoring configuration: its expiry thresholds
// (days; nil: DefaultExpiryThresholds) and how long after its due date a
// rotation is overdue (0: DefaultRotationOverdue).
type Schedule struct {
	Thresholds []int
	Overdue    time.Duration
}

func (s Schedule) thresholds() []int {
	if s.Thresholds == nil {
		return DefaultExpiryThresholds
	}
	return s.Thresholds
}

func (s Schedule) overdue() time.Duration {
	if s.Overdue <= 0 {
		return DefaultRotationOverdue
	}
	return s.Overdue
}

// MonitorWork reports whether the monitor has anything to do for c at now
// besides an automatic refresh (RefreshAt, looked at ahead): a revocation,
// the end of a previous version, a migration to watch, a rotation to start
// or drive, an expiry or rotation notice. It is the union of the
// conditions the monitor's examine acts on, so a credential for which it
// is false needs no look.
func (c *Credential) MonitorWork(now time.Time, s Schedule) bool {
	if c.RevocationDue(now) || c.PreviousEnded(now) || c.MigrationWatched(now) {
		return true
	}
	if c.RotationNoticeDue(now, s.overdue()) != "" || c.Rotation.Active() || c.RotationStartDue(now) {
		return true
	}
	days, expired := c.NoticeDue(now, s.thresholds())
	return days != 0 || expired
}

// NextEvent is the earliest instant, now or later, from which the monitor
// may have work for c (MonitorWork) or c counts differently
// (InventoryCounts): now when it has work now, else the nearest of the
// instants its rules turn at. ok is false when no such instant comes. An
// automatic refresh is RefreshAt's.
func (c *Credential) NextEvent(now time.Time, s Schedule) (at time.Time, ok bool) {
	if c.MonitorWork(now, s) {
		return now, true
	}
	day := 24 * time.Hour
	var turns []time.Time
	add := func(t *time.Time, offsets ...time.Duration) {
		if t == nil {
			return
		}
		for _, d := range offsets {
			turns = append(turns, t.Add(d))
		}
	}
	ahead := []time.Duration{0, -day, -7 * day, -30 * day} // the expiry buckets
	for _, d := range s.thresholds() {
		ahead = append(ahead, -time.Duration(d)*day)
	}
	add(c.ExpiresAt, ahead...)
	add(c.RevokeAt, 0)
	add(c.PreviousRevokeAt, 0, -StalledNoticeLead)
	add(c.RotationDueAt, 0, s.overdue(), -7*day, -30*day)
	if r := c.Rotation; r != nil && r.State == RotationFailed {
		add(&r.UpdatedAt, RestartAfterFailure)
	}
	for _, t := range turns {
		if t.After(now) && (!ok || t.Before(at)) {
			at, ok = t, true
		}
	}
	return at, ok
}

// Facts are a credential's monitoring facts: the fields its monitoring
// rules and its counts read, without its descriptive fields (a summary
// entry, kept small with short names).
type Facts struct {
	Service            string          `json:"s"`
	Version            int             `json:"v"`
	Status             string          `json:"t"`
	AuthType           string          `json:"a,omitempty"`
	ExpiresAt          *time.Time      `json:"x,omitempty"`
	CreatedAt          time.Time       `json:"c"`
	LastRotatedAt      *time.Time      `json:"lr,omitempty"`
	AutoRefresh        bool            `json:"ar,omitempty"`
	RefreshLeadTime    string          `json:"rl,omitempty"`
	Refresh            *RefreshState   `json:"rf,omitempty"`
	RevokeAt           *time.Time      `json:"r,omitempty"`
	PreviousVersion    int             `json:"pv,omitempty"`
	PreviousRevokeAt   *time.Time      `json:"pr,omitempty"`
	RevokeWhenMigrated bool            `json:"rm,omitempty"`
	RotationPolicy     *RotationPolicy `json:"rp,omitempty"`
	Rotator            string          `json:"ro,omitempty"`
	RotationDueAt      *time.Time      `json:"rd,omitempty"`
	Rotation           *RotationStatus `json:"rs,omitempty"`
	Notices            ExpiryNotices   `json:"n"`
	PreviousRevoked    int             `json:"pd,omitempty"`
	StalledNotice      int             `json:"sn,omitempty"`
	RotationSent       RotationNotices `json:"rn"`
	Connection         *Connection     `json:"cn,omitempty"`
}

// FactsOf returns c's monitoring facts.
func FactsOf(c *Credential) Facts {
	return Facts{
		Service: c.IntegrationID, Version: c.Version, Status: c.Status, AuthType: c.AuthType,
		ExpiresAt: c.ExpiresAt, CreatedAt: c.CreatedAt, LastRotatedAt: c.LastRotatedAt,
		AutoRefresh: c.AutoRefresh, RefreshLeadTime: c.RefreshLeadTime, Refresh: c.Refresh,
		RevokeAt: c.RevokeAt, PreviousVersion: c.PreviousVersion, PreviousRevokeAt: c.PreviousRevokeAt,
		RevokeWhenMigrated: c.RevokeWhenMigrated, RotationPolicy: c.RotationPolicy, Rotator: c.Rotator,
		RotationDueAt: c.RotationDueAt, Rotation: c.Rotation, Notices: c.Notices,
		PreviousRevoked: c.PreviousRevoked, StalledNotice: c.StalledNotice, RotationSent: c.RotationSent,
		Connection: c.Connection,
	}
}

// Credential returns the credential id the facts describe, with no
// descriptive field: enough for the monitoring rules and the counts.
func (f Facts) Credential(id string) *Credential {
	return &Credential{
		ID: id, IntegrationID: f.Service, Version: f.Version, Status: f.Status, AuthType: f.AuthType,
		ExpiresAt: f.ExpiresAt, CreatedAt: f.CreatedAt, LastRotatedAt: f.LastRotatedAt,
		AutoRefresh: f.AutoRefresh, RefreshLeadTime: f.RefreshLeadTime, Refresh: f.Refresh,
		RevokeAt: f.RevokeAt, PreviousVersion: f.PreviousVersion, PreviousRevokeAt: f.PreviousRevokeAt,
		RevokeWhenMigrated: f.RevokeWhenMigrated, RotationPolicy: f.RotationPolicy, Rotator: f.Rotator,
		RotationDueAt: f.RotationDueAt, Rotation: f.Rotation, Notices: f.Notices,
		PreviousRevoked: f.PreviousRevoked, StalledNotice: f.StalledNotice, RotationSent: f.RotationSent,
		Connection: f.Connection,
	}
}

package credgate

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"time"
)

// Unusual use of credentials (seed 003: "alerts for unusual API key
// activity"): found when a replica merges its reads into the ledgers, and
// each an event through the tenant's webhooks.
const (
	// EventNewReader: a principal read a credential for the first time,
	// after the credential's learning period.
	EventNewReader = "credential.new_reader"
	// EventReadSpike: a principal's reads in an hour far above its own
	// hourly average over the day before.
	EventReadSpike = "credential.read_spike"
	// EventBroadRead: one principal read the values of many integrations
	// of the tenant within minutes (the shape of an exfiltration).
	EventBroadRead = "tenant.broad_read"
	// EventRevokedRead: a principal asked for the values of a revoked
	// credential, or of a migration's revoked previous version.
	EventRevokedRead = "credential.revoked_read"
)

// UsageRules are a tenant's thresholds of unusual use.
type UsageRules struct {
	// LearningPeriod: a new reader is unusual only once the credential's
	// first recorded read is at least this old.
	LearningPeriod time.Duration `yaml:"learning_period"`
	// SpikeFactor and SpikeMin: an hour's reads by one principal are a
	// spike when at least SpikeMin and at least SpikeFactor times its
	// hourly average over the day before (a principal first seen less
	// than a day ago has no average yet).
	SpikeFactor float64 `yaml:"spike_factor"`
	SpikeMin    int64   `yaml:"spike_min"`
	// BroadIntegrations and BroadWindow: reading the values of more than
	// BroadIntegrations integrations within BroadWindow.
	BroadIntegrations int           `yaml:"broad_integrations"`
	BroadWindow       time.Duration `yaml:"broad_window"`
}

// Or returns r with each threshold left out (zero) taken from d.
func (r UsageRules) Or(d UsageRules) UsageRules {
	return UsageRules{LearningPeriod: cmp.Or(r.LearningPeriod, d.LearningPeriod), SpikeFactor: cmp.Or(r.SpikeFactor, d.SpikeFactor), SpikeMin: cmp.Or(r.SpikeMin, d.SpikeMin),
		BroadIntegrations: cmp.Or(r.BroadIntegrations, d.BroadIntegrations), BroadWindow: cmp.Or(r.BroadWindow, d.BroadWindow)}
}

// Check names what is wrong with r (all set).
func (r UsageRules) Check() string {
	if r.LearningPeriod < time.Hour || r.SpikeFactor < 1 || r.SpikeMin < 1 || r.BroadIntegrations < 1 || r.BroadWindow < time.Minute {
		return "learning_period at least 1h, spike_factor at least 1, spike_min and broad_integrations at least 1, broad_window at least 1m"
	}
	return ""
}

// DefaultUsageRules are the thresholds of a tenant configured with none.
var DefaultUsageRules = UsageRules{LearningPeriod: 7 * 24 * time.Hour, SpikeFactor: 10, SpikeMin: 20, BroadIntegrations: 20, BroadWindow: 10 * time.Minute}

// UsageAlert is one finding of unusual use, for an event.
type UsageAlert struct {
	Type                      string
	Tenant, Integration, Cred string // Integration and Cred empty for tenant.broad_read
	Reader                    EventReader
	Issuer                    string
	RequestID                 string
	// Count is what tripped it (reads in the hour, integrations in the
	// window) and Threshold what it crossed; Reason says both in words.
	Count     int64
	Threshold float64
	Reason    string
	// Window is the hour or window the finding is of: the same finding in
	// it is one event.
	Window time.Time
}

// Event returns a's event, caused by credgate, with an id that makes the
// same finding one event.
func (a UsageAlert) Event() Event {
	e := Event{Type: a.Type, Timestamp: time.Now().UTC().Truncate(time.Millisecond)}
	e.Data = EventData{Tenant: a.Tenant, IntegrationID: a.Integration, CredentialID: a.Cred, Actor: EventActor{Subject: SystemSubject},
		RequestID: a.RequestID, Reason: a.Reason, Readers: []EventReader{a.Reader}, Count: a.Count, Threshold: a.Threshold}
	e.OnceID(a.Type, a.Cred, a.Issuer, a.Reader.Subject, a.Window.UTC().Format(time.RFC3339))
	return e
}

// Unusual returns what in batches, about to be merged into l at now, is
// unusual by rules: readers new to a credential past its learning period,
// and hourly spikes (each once per reader and hour: the ledger remembers
// the hour it reported, SpikeHour). Call it before Merge, on the ledger as
// read; it marks the spikes it reports on l's readers.
func (l *Ledger) Unusual(batches []ReadBatch, now time.Time, rules UsageRules) []UsageAlert {
	var out []UsageAlert
	learned := len(l.Readers) > 0 && now.Sub(l.since()) >= rules.LearningPeriod
	hour := now.UTC().Truncate(time.Hour)
	for _, b := range batches {
		who := EventReader{Subject: b.Subject, Name: b.Name, Email: b.Email, LastVersion: b.LastVersion, LastRead: b.Last}
		r := l.ReaderOf(b.Issuer, b.Subject)
		if r == nil {
			if learned {
				out = append(out, UsageAlert{Type: EventNewReader, Reader: who, Issuer: b.Issuer, RequestID: b.RequestID,
					Reason: fmt.Sprintf("first read by %s; the credential has been read since %s", b.Subject, l.since().Format(time.RFC3339))})
			}
			continue
		}
		if (r.SpikeHour != nil && r.SpikeHour.Equal(hour)) || now.Sub(r.FirstRead) < 24*time.Hour {
			continue
		}
		var count, before int64
		for _, h := range b.Hours {
			if h.Hour.Equal(hour) {
				count += h.Reads
			}
		}
		for _, h := range r.Hours {
			switch {
			case h.Hour.Equal(hour):
				count += h.Reads
			case h.Hour.Before(hour) && !h.Hour.Before(hour.Add(-24*time.Hour)):
				before += h.Reads
			}
		}
		average := float64(before) / 24
		if threshold := max(rules.SpikeFactor*average, float64(rules.SpikeMin)); float64(count) >= threshold {
			r.SpikeHour = &hour
			out = append(out, UsageAlert{Type: EventReadSpike, Reader: who, Issuer: b.Issuer, RequestID: b.RequestID, Count: count, Threshold: threshold, Window: hour,
				Reason: fmt.Sprintf("%d reads in the hour from %s by %s; %.1f an hour on average over the day before (threshold %.0f)", count, hour.Format(time.RFC3339), b.Subject, average, threshold)})
		}
	}
	return out
}

// since is when l's earliest recorded read was.
func (l *Ledger) since() time.Time {
	var t time.Time
	for _, r := range l.Readers {
		if t.IsZero() || r.FirstRead.Before(t) {
			t = r.FirstRead
		}
	}
	return t
}

// Reach is which integrations' values one principal of a tenant read
// within the broad-read window, gathered from every replica.
type Reach struct {
	// Integrations holds the last read of each integration in the window.
	Integrations map[string]time.Time `json:"integrations"`
	// AlertedAt is when tenant.broad_read was last reported for it.
	AlertedAt *time.Time `json:"alertedAt,omitempty"`
}

// Merge adds reads (the last read of each integration) at now, forgets
// what is older than the window, and reports how many integrations the
// window holds and whether that is a broad read not reported within the
// window already (then it is marked reported).
func (r *Reach) Merge(reads map[string]time.Time, now time.Time, rules UsageRules) (int, bool) {
	if r.Integrations == nil {
		r.Integrations = map[string]time.Time{}
	}
	for id, at := range reads {
		if at.After(r.Integrations[id]) {
			r.Integrations[id] = at.UTC()
		}
	}
	r.forget(now, rules)
	n := len(r.Integrations)
	if n <= rules.BroadIntegrations || (r.AlertedAt != nil && now.Sub(*r.AlertedAt) < rules.BroadWindow) {
		return n, false
	}
	at := now.UTC()
	r.AlertedAt = &at
	return n, true
}

// ReachShard is the reach of the principals of a tenant whose keys fall in
// one shard, in one record: a replica's minute of reads by 10,000
// principals is then one write of each of a few dozen records instead of
// one for each principal. It holds only principals with reads in the
// window, at most MaxReachPrincipals (the least recent go first).
type ReachShard struct {
	// Principals is each principal's reach by its key (a hash of issuer
	// and subject, which the store chooses).
	Principals map[string]*Reach `json:"principals"`
}

// MaxReachPrincipals bounds a shard: about 110 bytes each, so a shard
// stays under half a megabyte (Vault's Raft entries are at most 1 MiB).
const MaxReachPrincipals = 4096

// Merge merges reads by the principal key at now as Reach.Merge does.
func (s *ReachShard) Merge(key string, reads map[string]time.Time, now time.Time, rules UsageRules) (int, bool) {
	if s.Principals == nil {
		s.Principals = map[string]*Reach{}
	}
	r := s.Principals[key]
	if r == nil {
		r = &Reach{}
		s.Principals[key] = r
	}
	return r.Merge(reads, now, rules)
}

// Forget drops what is older than the window: each principal's reads, and
// the principals with none left whose broad read, if any, was reported
// before the window; then the least recent principals past
// MaxReachPrincipals.
func (s *ReachShard) Forget(now time.Time, rules UsageRules) {
	for key, r := range s.Principals {
		r.forget(now, rules)
		if len(r.Integrations) == 0 && (r.AlertedAt == nil || now.Sub(*r.AlertedAt) >= rules.BroadWindow) {
			delete(s.Principals, key)
		}
	}
	if len(s.Principals) <= MaxReachPrincipals {
		return
	}
	keys := slices.SortedFunc(maps.Keys(s.Principals), func(a, b string) int {
		return s.Principals[b].last().Compare(s.Principals[a].last())
	})
	for _, key := range keys[MaxReachPrincipals:] {
		delete(s.Principals, key)
	}
}

// forget drops r's reads older than the window.
func (r *Reach) forget(now time.Time, rules UsageRules) {
	for id, at := range r.Integrations {
		if now.Sub(at) > rules.BroadWindow {
			delete(r.Integrations, id)
		}
	}
}

// last is r's most recent read.
func (r *Reach) last() time.Time {
	var t time.Time
	for _, at := range r.Integrations {
		if at.After(t) {
			t = at
		}
	}
	return t
}

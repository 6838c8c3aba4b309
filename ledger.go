package credgate

import (
	"cmp"
	"slices"
	"time"
)

// Ledger is who read a credential's values, and which version, as credgate
// served them: kept beside the credential (readable by integration_admin),
// written off the request path in batches (Read, Merge). It never holds a
// value.
type Ledger struct {
	// Readers are the principals that read the values, the most recent
	// reader first, at most MaxLedgerReaders.
	Readers []LedgerReader `json:"readers"`
	// Hours counts the reads of all readers per hour, the last
	// LedgerHours hours, oldest first.
	Hours []HourReads `json:"hours,omitempty"`
	// Dropped counts the readers left out to stay within
	// MaxLedgerReaders (the least recent go first).
	Dropped int `json:"dropped,omitempty"`
}

// LedgerReader is one principal's reads of a credential. A principal is
// its issuer and subject: the same subject of two issuers is two readers.
type LedgerReader struct {
	Issuer  string `json:"issuer"`
	Subject string `json:"subject"`
	Name    string `json:"name,omitempty"`
	Email   string `json:"email,omitempty"`
	// Grant is the grant its latest read came through; empty when a
	// tenant-wide role allowed it.
	Grant       string    `json:"grant,omitempty"`
	FirstRead   time.Time `json:"firstRead"`
	LastRead    time.Time `json:"lastRead"`
	LastVersion int       `json:"lastVersion"`
	Reads       int64     `json:"reads"`
	// Hours counts its reads per hour, the last ReaderHours hours.
	Hours []HourReads `json:"hours,omitempty"`
	// SpikeHour is the hour of its last credential.read_spike (reported
	// once per hour).
	SpikeHour *time.Time `json:"spikeHour,omitempty"`
}

// HourReads counts the reads of the hour that begins at Hour.
type HourReads struct {
	Hour  time.Time `json:"hour"`
	Reads int64     `json:"reads"`
}

// Bounds of a ledger: about 0.5 KB a reader at most, 250 KB in all.
const (
	MaxLedgerReaders = 500
	LedgerHours      = 7 * 24 // a rolling week of a credential's hourly reads
	ReaderHours      = 24     // a rolling day of each reader's
)

// ReadBatch is one principal's reads of a credential that a replica
// gathered since it last wrote the ledger (Add), to be merged (Merge).
type ReadBatch struct {
	Issuer, Subject, Name, Email string
	// Grant, LastVersion and RequestID are those of the last read.
	Grant       string
	LastVersion int
	RequestID   string
	First, Last time.Time
	Hours       []HourReads
}

// Add counts a read of version at at, through grant ("" for a tenant-wide
// role).
func (b *ReadBatch) Add(version int, grant string, at time.Time) {
	at = at.UTC()
	if b.First.IsZero() || at.Before(b.First) {
		b.First = at
	}
	if !at.Before(b.Last) {
		b.Last, b.LastVersion, b.Grant = at, version, grant
	}
	b.Hours = addHours(b.Hours, HourReads{Hour: at.Truncate(time.Hour), Reads: 1})
}

// ReaderOf returns the ledger's reader of p (nil when p never read it).
func (l *Ledger) ReaderOf(issuer, subject string) *LedgerReader {
	for i := range l.Readers {
		if r := &l.Readers[i]; r.Issuer == issuer && r.Subject == subject {
			return r
		}
	}
	return nil
}

// Merge adds batches (of one replica or several, in any order) to l, and
// forgets hours older than the rolling windows at now. Merging is adding:
// batches merged in either order give the same ledger.
func (l *Ledger) Merge(batches []ReadBatch, now time.Time) {
	for _, b := range batches {
		r := l.ReaderOf(b.Issuer, b.Subject)
		if r == nil {
			l.Readers = append(l.Readers, LedgerReader{Issuer: b.Issuer, Subject: b.Subject, FirstRead: b.First})
			r = &l.Readers[len(l.Readers)-1]
		}
		for _, h := range b.Hours {
			r.Reads += h.Reads
			r.Hours = addHours(r.Hours, h)
			l.Hours = addHours(l.Hours, h)
		}
		if b.First.Before(r.FirstRead) {
			r.FirstRead = b.First
		}
		if !b.Last.Before(r.LastRead) {
			r.LastRead, r.LastVersion, r.Grant = b.Last, b.LastVersion, b.Grant
			r.Name, r.Email = cmp.Or(b.Name, r.Name), cmp.Or(b.Email, r.Email)
		}
	}
	l.Hours = keepHours(l.Hours, now, LedgerHours)
	for i := range l.Readers {
		l.Readers[i].Hours = keepHours(l.Readers[i].Hours, now, ReaderHours)
	}
	slices.SortStableFunc(l.Readers, func(a, b LedgerReader) int { return b.LastRead.Compare(a.LastRead) })
	if n := len(l.Readers) - MaxLedgerReaders; n > 0 {
		l.Readers = l.Readers[:MaxLedgerReaders]
		l.Dropped += n
	}
}

// addHours adds h's reads to its hour in hours (sorted by hour).
func addHours(hours []HourReads, h HourReads) []HourReads {
	i, found := slices.BinarySearchFunc(hours, h.Hour, func(x HourReads, t time.Time) int { return x.Hour.Compare(t) })
	if !found {
		hours = slices.Insert(hours, i, HourReads{Hour: h.Hour})
	}
	hours[i].Reads += h.Reads
	return hours
}

// keepHours drops the hours that began n hours or more before now's.
func keepHours(hours []HourReads, now time.Time, n int) []HourReads {
	from := now.UTC().Truncate(time.Hour).Add(-time.Duration(n-1) * time.Hour)
	i, _ := slices.BinarySearchFunc(hours, from, func(h HourReads, t time.Time) int { return h.Hour.Compare(t) })
	return slices.Delete(hours, 0, i)
}

// Since returns the ledger as it concerns reads at or after since: the
// readers that read since then and the hours from its hour. (A reader's
// counts are its whole history's.)
func (l Ledger) Since(since time.Time) Ledger {
	out := Ledger{Dropped: l.Dropped}
	for _, r := range l.Readers {
		if !r.LastRead.Before(since) {
			out.Readers = append(out.Readers, r)
		}
	}
	from := since.UTC().Truncate(time.Hour)
	for _, h := range l.Hours {
		if !h.Hour.Before(from) {
			out.Hours = append(out.Hours, h)
		}
	}
	return out
}

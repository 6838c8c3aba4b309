package credgate

import "time"

// A migration is the time after a rotation during which the previous
// version stays servable (PreviousRevokeAt): the applications that read
// it move to the new one. The ledger says who has moved.

// MigrationLookback is how recent a read of the previous version must be
// for its reader to count in a migration: a reader silent for longer is
// taken to be gone.
const MigrationLookback = 30 * 24 * time.Hour

// StalledNoticeLead is how long before PreviousRevokeAt a migration still
// waiting for readers is announced (credential.migration_stalled).
const StalledNoticeLead = 24 * time.Hour

// Migration is where the readers of a credential stand: Moved read a
// version newer than the previous one last; Pending still read the
// previous one (or older) within MigrationLookback.
type Migration struct {
	PreviousVersion    int            `json:"previousVersion"`
	Deadline           time.Time      `json:"previousRevokeAt"`
	RevokeWhenMigrated bool           `json:"revokeWhenMigrated"`
	Moved              []LedgerReader `json:"moved"`
	Pending            []LedgerReader `json:"pending"`
}

// Migrating reports whether c keeps a previous version servable at now.
func (c *Credential) Migrating(now time.Time) bool {
	return c.PreviousVersion > 0 && c.PreviousRevokeAt != nil && now.Before(*c.PreviousRevokeAt)
}

// MigrationOf says who of l's readers has moved off c's previous version
// at now. (Reads are in the ledger a minute or so after they happen.)
func (c *Credential) MigrationOf(l *Ledger, now time.Time) Migration {
	m := Migration{PreviousVersion: c.PreviousVersion, RevokeWhenMigrated: c.RevokeWhenMigrated, Moved: []LedgerReader{}, Pending: []LedgerReader{}}
	if c.PreviousRevokeAt != nil {
		m.Deadline = *c.PreviousRevokeAt
	}
	for _, r := range l.Readers {
		switch {
		case r.LastVersion > c.PreviousVersion:
			m.Moved = append(m.Moved, r)
		case !r.LastRead.Before(now.Add(-MigrationLookback)):
			m.Pending = append(m.Pending, r)
		}
	}
	return m
}

// MigrationDue says what a migrating c is due at now, given its migration:
// the previous version ends now (every recent reader moved, and c asked
// for that), or its stall is to be announced (a day before the deadline,
// once per previous version).
func (c *Credential) MigrationDue(m Migration, now time.Time) (end, stalled bool) {
	if !c.Migrating(now) {
		return false, false
	}
	if c.RevokeWhenMigrated && len(m.Pending) == 0 {
		return true, false
	}
	return false, len(m.Pending) > 0 && !now.Before(c.PreviousRevokeAt.Add(-StalledNoticeLead)) && c.StalledNotice != c.PreviousVersion
}

// MigrationWatched reports whether the monitor needs c's ledger at now: it
// migrates and may end early, or may be due its stalled notice.
func (c *Credential) MigrationWatched(now time.Time) bool {
	return c.Migrating(now) && (c.RevokeWhenMigrated || (!now.Before(c.PreviousRevokeAt.Add(-StalledNoticeLead)) && c.StalledNotice != c.PreviousVersion))
}

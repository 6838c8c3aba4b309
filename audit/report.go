package audit

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"
)

// Table writes operations as an aligned table, a block of rows at a time
// (so a long scan shows its first rows at once and holds few).
type Table struct {
	tw   *tabwriter.Writer
	rows int
}

// tableBlock is how many rows are aligned together.
const tableBlock = 500

// NewTable returns a Table writing to w.
func NewTable(w io.Writer) *Table {
	return &Table{tw: tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)}
}

func (t *Table) header() {
	fmt.Fprintln(t.tw, "TIME\tTENANT\tSUBJECT\tEMAIL\tOPERATION\tINTEGRATION\tCREDENTIAL\tVERSION\tOUTCOME\tREQUEST ID\tCLIENT\tGRANT")
}

// Write adds o.
func (t *Table) Write(o Op) error {
	if t.rows%tableBlock == 0 {
		if t.rows > 0 {
			if err := t.tw.Flush(); err != nil {
				return err
			}
		}
		t.header()
	}
	t.rows++
	version := ""
	if o.Version > 0 {
		version = strconv.Itoa(o.Version)
	}
	what := o.Operation
	if o.Path != "" {
		what += " " + o.Path
	}
	_, err := fmt.Fprintf(t.tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", o.Time.UTC().Format(time.RFC3339),
		dash(o.Tenant), dash(o.Subject), dash(o.Email), Printable(what), dash(o.Integration), dash(o.Credential), dash(version), o.Outcome, dash(o.RequestID), dash(o.Client), dash(o.Grant))
	return err
}

// Printable is s as a terminal may show it: unchanged when every rune is
// printable (Go's strconv.IsPrint: no control character, no escape, no
// invisible format character), else quoted with Go's %q rules, so that
// \x1b, \t, \n, \u202e and the like show as what they are. Every value
// a table shows passes through it: claims, paths and ids come from
// whoever wrote to Vault.
func Printable(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return !strconv.IsPrint(r) || r == '\\' || r == '"' }) && utf8.ValidString(s) {
		return s
	}
	return strconv.Quote(s)
}

// Flush writes what is buffered.
func (t *Table) Flush() error { return t.tw.Flush() }

// dash is a table cell: Printable, and "-" for nothing.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return Printable(s)
}

// JSONLines writes one JSON object per operation, for a SIEM.
func JSONLines(w io.Writer) func(Op) error {
	enc := json.NewEncoder(w)
	return func(o Op) error { return enc.Encode(o) }
}

// Summary counts, per credential, the reads of its values, who read them,
// the last read and the refusals: seed 003's "unusual activity" view, over
// the authoritative log. It holds a row per credential, not per entry.
type Summary struct {
	rows map[summaryKey]*SummaryRow
}

type summaryKey struct{ tenant, integration, credential string }

// SummaryRow is one credential's activity.
type SummaryRow struct {
	Tenant      string    `json:"tenant"`
	Integration string    `json:"integrationId"`
	Credential  string    `json:"credentialId"`
	Reads       int       `json:"reads"`
	Actors      int       `json:"distinctActors"`
	LastRead    time.Time `json:"lastRead,omitempty"`
	LastActor   string    `json:"lastActor,omitempty"`
	Denials     int       `json:"denials"`
	Changes     int       `json:"changes"` // create, update, rotate, delete
	actors      map[string]bool
}

// NewSummary returns an empty summary.
func NewSummary() *Summary { return &Summary{rows: map[summaryKey]*SummaryRow{}} }

// Add counts o (operations that name no credential are left out).
func (s *Summary) Add(o Op) error {
	if o.Integration == "" || (o.Credential == "" && o.Operation != OpReadValues) || o.Operation == OpOther || o.Operation == OpBookkeeping {
		return nil
	}
	k := summaryKey{o.Tenant, o.Integration, o.Credential}
	r := s.rows[k]
	if r == nil {
		r = &SummaryRow{Tenant: o.Tenant, Integration: o.Integration, Credential: o.Credential, actors: map[string]bool{}}
		s.rows[k] = r
	}
	actor := o.Email
	if actor == "" {
		actor = o.Subject
	}
	switch {
	case o.Outcome == OutcomeDenied:
		r.Denials++
	case o.Operation == OpReadValues && o.Outcome == OutcomeOK:
		r.Reads++
		if !r.actors[actor] {
			r.actors[actor] = true
			r.Actors++
		}
		if !o.Time.Before(r.LastRead) {
			r.LastRead, r.LastActor = o.Time, actor
		}
	case slices.Contains([]string{OpCreate, OpUpdate, OpRotate, OpDelete}, o.Operation):
		r.Changes++
	}
	return nil
}

// Rows returns the rows, most read first.
func (s *Summary) Rows() []SummaryRow {
	out := make([]SummaryRow, 0, len(s.rows))
	for _, r := range s.rows {
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b SummaryRow) int {
		if a.Reads != b.Reads {
			return b.Reads - a.Reads
		}
		return strings.Compare(a.Tenant+"/"+a.Integration+"/"+a.Credential, b.Tenant+"/"+b.Integration+"/"+b.Credential)
	})
	return out
}

// Write prints the summary as a table, or as JSON lines.
func (s *Summary) Write(w io.Writer, jsonLines bool) error {
	rows := s.Rows()
	if jsonLines {
		enc := json.NewEncoder(w)
		for _, r := range rows {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TENANT\tINTEGRATION\tCREDENTIAL\tREADS\tACTORS\tLAST READ\tLAST READER\tDENIALS\tCHANGES")
	for _, r := range rows {
		last := "-"
		if !r.LastRead.IsZero() {
			last = r.LastRead.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\t%d\t%d\n", dash(r.Tenant), dash(r.Integration), dash(r.Credential), r.Reads, r.Actors, last, dash(r.LastActor), r.Denials, r.Changes)
	}
	return tw.Flush()
}

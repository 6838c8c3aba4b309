package audit

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"strings"
	"time"

	gojson "github.com/goccy/go-json"
)

// Filter selects operations; zero fields select everything.
type Filter struct {
	Tenant, Actor, Integration, Credential, RequestID string
	Since, Until                                      time.Time
	Denied                                            bool // only refused operations
	// All keeps operations credgate did not make (other Vault clients)
	// and credgate's bookkeeping (events, webhooks, the monitor's lease).
	All bool
}

// Match reports whether f selects o.
func (f Filter) Match(o *Op) bool {
	switch {
	case !f.All && (o.Operation == OpOther || o.Operation == OpBookkeeping):
	case f.Tenant != "" && o.Tenant != f.Tenant:
	case f.Actor != "" && o.Subject != f.Actor && !strings.EqualFold(o.Email, f.Actor):
	case f.Integration != "" && o.Integration != f.Integration:
	case f.Credential != "" && o.Credential != f.Credential:
	case f.RequestID != "" && o.RequestID != f.RequestID:
	case !f.Since.IsZero() && o.Time.Before(f.Since):
	case !f.Until.IsZero() && !o.Time.Before(f.Until):
	case f.Denied && o.Outcome != OutcomeDenied:
	default:
		return true
	}
	return false
}

// Options configures a Scanner.
type Options struct {
	// Mount is credgate's KV v2 mount (default credgate).
	Mount  string
	Filter Filter
	// Hash, when set, keeps only the operations one of whose Vault calls
	// carried it: the audit device's HMAC of a value (sys/audit-hash).
	Hash string
	// Emit is given each selected operation, in the order of their
	// first Vault call (within the grouping window).
	Emit func(Op) error
	// Malformed is told of each line that is not an audit entry.
	Malformed func(source string, line int, err error)
}

// window is how long after its last call a group may still get one: a
// credgate request is bounded far below it. Groups older than the newest
// entry by more are closed.
const window = 2 * time.Minute

// maxOpen bounds the groups held open; past it the oldest is closed.
const maxOpen = 100000

// Scanner turns audit log lines into operations. Feed it the files of a log
// in order, then Close.
type Scanner struct {
	o     Options
	open  map[string]*group
	order []string // keys by first call
	head  int      // order[:head] are closed
	hash  []byte
	err   error // the first error of Emit: it ends the scan
	// Entries and Bad count the entries read and the malformed lines.
	Entries, Bad int
}

// NewScanner returns a Scanner.
func NewScanner(o Options) *Scanner {
	if o.Mount == "" {
		o.Mount = "credgate"
	}
	o.Mount = strings.Trim(o.Mount, "/")
	s := &Scanner{o: o, open: map[string]*group{}}
	if o.Hash != "" {
		s.hash = []byte(o.Hash)
	}
	return s
}

// maxLine bounds one audit entry (Vault logs whole requests and answers).
const maxLine = 64 << 20

// Read scans one file or stream of the log; a gzip stream (a rotated
// file) is read through gzip. source names it in reports of malformed
// lines.
func (s *Scanner) Read(source string, r io.Reader) error {
	br := bufio.NewReaderSize(r, 1<<20)
	if magic, err := br.Peek(2); err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("%s: %w", source, err)
		}
		defer zr.Close()
		br = bufio.NewReaderSize(zr, 1<<20)
	}
	sc := bufio.NewScanner(br)
	sc.Buffer(make([]byte, 0, 1<<20), maxLine)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if err := s.line(line); err != nil {
			s.Bad++
			if s.o.Malformed != nil {
				s.o.Malformed(source, n, err)
			}
		}
		if s.err != nil {
			return s.err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: after line %d: %w", source, n, err)
	}
	return nil
}

func (s *Scanner) line(b []byte) error {
	var e entry
	if err := gojson.Unmarshal(b, &e); err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	if e.Type != "request" && e.Type != "response" || e.Time.IsZero() {
		return fmt.Errorf("not an audit entry (no type and time)")
	}
	s.Entries++
	// A response entry says everything of its call; a request entry only
	// matters when the call failed before it got one.
	if e.Type == "response" || e.Error != "" {
		s.add(&e, s.hash != nil && bytes.Contains(b, s.hash))
	}
	if err := s.closeBefore(e.Time); err != nil && s.err == nil {
		s.err = err
	}
	return nil
}

// add files the call of e into its group: the request's id and the
// caller's token identify it.
func (s *Scanner) add(e *entry, hit bool) {
	rid := e.requestID()
	md := e.Auth.Metadata
	key := rid + "\x00" + md["sub"] + "\x00" + md["tenant"]
	if rid == "" {
		key = "vault:" + e.Request.ID
	}
	mint := strings.HasPrefix(e.Request.Path, "auth/token/create/") && len(e.Response.Auth.Metadata) > 0
	if mint {
		key += "\x00mint"
		md = e.Response.Auth.Metadata
	}
	g := s.open[key]
	if g == nil {
		g = &group{first: e.Time, requestID: rid, client: e.Request.RemoteAddress}
		s.open[key] = g
		s.order = append(s.order, key)
	}
	g.last = e.Time
	g.hit = g.hit || hit
	if md["tenant"] != "" && g.tenant == "" {
		g.tenant, g.sub, g.email = md["tenant"], md["sub"], md["email"]
	}
	if mint {
		g.mint = true
		g.add(call{failed: e.Error != ""})
		return
	}
	t, ok := parsePath(s.o.Mount, e.Request.Path)
	if !ok {
		if g.otherPath == "" {
			g.otherPath = e.Request.Path
		}
		if denial(e.Error) {
			g.seenDenied = true
		}
		return
	}
	failed := e.Error != "" && !denial(e.Error) && !strings.Contains(e.Error, "check-and-set")
	g.add(call{op: e.Request.Operation, t: t, version: e.version(), denied: denial(e.Error), failed: failed})
}

// closeBefore closes the groups whose last call is older than now by
// more than the window, and the oldest ones past maxOpen.
func (s *Scanner) closeBefore(now time.Time) error {
	for s.head < len(s.order) {
		key := s.order[s.head]
		g := s.open[key]
		if now.Sub(g.last) < window && len(s.open) <= maxOpen {
			break
		}
		if err := s.close(key, g); err != nil {
			return err
		}
	}
	if s.head > 4096 && s.head*2 > len(s.order) { // drop the closed keys
		s.order = append(s.order[:0], s.order[s.head:]...)
		s.head = 0
	}
	return nil
}

func (s *Scanner) close(key string, g *group) error {
	delete(s.open, key)
	s.head++
	if s.hash != nil && !g.hit {
		return nil
	}
	o := g.op()
	if !s.o.Filter.Match(&o) || s.o.Emit == nil {
		return nil
	}
	return s.o.Emit(o)
}

// Close closes every group still open.
func (s *Scanner) Close() error {
	for s.head < len(s.order) {
		key := s.order[s.head]
		if err := s.close(key, s.open[key]); err != nil {
			return err
		}
	}
	s.order, s.head = nil, 0
	return nil
}

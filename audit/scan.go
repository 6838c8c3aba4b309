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

// window is how long after its first call a group may still get one: a
// credgate request is bounded far below it (its Vault calls time out in
// seconds). Groups whose first call is older than the newest entry by more
// are closed.
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
//
// The decoder's strings share the line's memory; what a group keeps is
// cloned, so an open group holds its few strings, not its lines.
func (s *Scanner) add(e *entry, hit bool) {
	rid := strings.Clone(e.requestID())
	md := e.Auth.Metadata
	key := rid + "\x00" + md["sub"] + "\x00" + md["tenant"]
	if rid == "" {
		key = "vault:" + e.Request.ID
	}
	mint := strings.HasPrefix(e.Request.Path, "auth/token/create/") && len(e.Response.Auth.Metadata) > 0
	if mint {
		// A request can mint two tokens (its caller's, and credgate's own
		// system principal's to read the tenant's grants): one group each.
		md = e.Response.Auth.Metadata
		key += "\x00mint\x00" + md["sub"]
	}
	g := s.open[key]
	if g == nil {
		g = &group{first: e.Time, requestID: rid, client: strings.Clone(e.Request.RemoteAddress)}
		s.open[key] = g
		s.order = append(s.order, key)
	}
	g.last = e.Time
	g.hit = g.hit || hit
	if md["tenant"] != "" && g.tenant == "" {
		g.tenant, g.sub, g.email = strings.Clone(md["tenant"]), strings.Clone(md["sub"]), strings.Clone(md["email"])
		g.roles, g.grants = strings.Clone(md["roles"]), strings.Clone(md["grants"])
	}
	if mint {
		g.mint = true
		g.add(call{failed: e.Error != ""})
		return
	}
	path := strings.Clone(e.Request.Path)
	t, ok := parsePath(s.o.Mount, path)
	if !ok && s.own(path) {
		g.add(call{op: operation(e.Request.Operation), t: target{folder: "system"}, denied: denial(e.Error)})
		return
	}
	if !ok {
		if g.otherPath == "" {
			g.otherPath = path
		}
		if denial(e.Error) {
			g.seenDenied = true
		}
		return
	}
	failed := e.Error != "" && !denial(e.Error) && !strings.Contains(e.Error, "check-and-set")
	g.add(call{op: operation(e.Request.Operation), t: t, version: e.version(), denied: denial(e.Error), failed: failed})
}

// closeBefore closes the groups whose last call is older than now by
// more than the window, and the oldest ones past maxOpen.
func (s *Scanner) closeBefore(now time.Time) error {
	for s.head < len(s.order) {
		key := s.order[s.head]
		g := s.open[key]
		// A group closes when the log has moved a window past its first
		// call: no credgate request lasts that long, and a key that keeps
		// coming (a client reusing a request id) cannot hold the rest.
		if now.Sub(g.first) < window && len(s.open) <= maxOpen {
			break
		}
		if err := s.close(key, g); err != nil {
			return err
		}
	}
	if s.head > 4096 && s.head*2 > len(s.order) { // drop the closed keys
		n := copy(s.order, s.order[s.head:])
		clear(s.order[n:])
		s.order, s.head = s.order[:n], 0
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

// operation returns Vault's operation name as a constant, not a string
// sharing the line's memory.
func operation(op string) string {
	for _, known := range []string{"read", "list", "create", "update", "patch", "delete"} {
		if op == known {
			return known
		}
	}
	return "other"
}

// own reports whether path is one of credgate's own Vault calls beside the
// tenants' records: its monitor's lease, the tenant list, the policies it
// writes, random values, its token's lookup and renewal.
func (s *Scanner) own(path string) bool {
	for _, p := range []string{s.o.Mount + "/data/system/", s.o.Mount + "/metadata/tenants/", "sys/policies/acl/credgate-", "sys/tools/random", "auth/token/lookup-self", "auth/token/renew-self"} {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return path == s.o.Mount+"/metadata/tenants"
}

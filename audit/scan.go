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
	// Malformed is told of each line that is not an audit entry, or is
	// longer than MaxLine, and of a file that ends broken (a truncated or
	// corrupt gzip member: line is the last one read). The scan reads on.
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
	buf   []byte // a line longer than the reader's buffer
	err   error  // the first error of Emit: it ends the scan
	// Entries and Bad count the entries read and the lines skipped (not
	// an audit entry, or longer than MaxLine); Broken counts the files
	// that ended broken; Uncorrelated the calls of caller tokens without
	// credgate's correlation id (each is named alone: a Vault not set up
	// by credgate bootstrap, or a token used outside credgate).
	Entries, Bad, Broken, Uncorrelated int
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

// MaxLine bounds one audit entry the scan reads (Vault logs whole
// requests and answers; credgate's are far below it): a longer line is
// skipped and counted, in bounded memory, however long it is.
const MaxLine = 4 << 20

// errLong is a line past MaxLine.
var errLong = fmt.Errorf("longer than %d MiB: skipped", MaxLine>>20)

// Read scans one file or stream of the log; a gzip stream (a rotated
// file) is read through gzip. source names it in reports. What is wrong in
// the input (lines that are no audit entry or too long, a gzip member that
// is cut short or corrupt) is reported to Options.Malformed and counted,
// and the scan goes on; Read fails only when Emit does.
func (s *Scanner) Read(source string, r io.Reader) error {
	br := bufio.NewReaderSize(r, 1<<20)
	if magic, err := br.Peek(2); err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			s.broken(source, 0, err)
			return nil
		}
		defer zr.Close()
		br = bufio.NewReaderSize(zr, 1<<20)
	}
	for n := 1; ; n++ {
		line, long, err := s.readLine(br)
		switch {
		case long:
			s.skipped(source, n, errLong)
		case len(bytes.TrimSpace(line)) > 0:
			if lerr := s.line(line); lerr != nil {
				s.skipped(source, n, lerr)
			}
		}
		if s.err != nil {
			return s.err
		}
		switch {
		case err == io.EOF:
			return nil
		case err != nil:
			s.broken(source, n, err)
			return nil
		}
	}
}

// readLine returns the next line of br, without its end; long when it is
// past MaxLine (then the line is read past, not kept). err is io.EOF after
// the last line, or what broke the input.
func (s *Scanner) readLine(br *bufio.Reader) (line []byte, long bool, err error) {
	s.buf = s.buf[:0]
	for {
		chunk, err := br.ReadSlice('\n')
		if !long {
			if len(s.buf)+len(chunk) > MaxLine {
				long, s.buf = true, nil // let a huge buffer go
			} else if err == nil && len(s.buf) == 0 {
				return chunk, false, nil // the common case: no copy
			} else {
				s.buf = append(s.buf, chunk...)
			}
		}
		if err != bufio.ErrBufferFull {
			return s.buf, long, err
		}
	}
}

func (s *Scanner) skipped(source string, line int, err error) {
	s.Bad++
	if s.o.Malformed != nil {
		s.o.Malformed(source, line, err)
	}
}

func (s *Scanner) broken(source string, line int, err error) {
	s.Broken++
	if s.o.Malformed != nil {
		s.o.Malformed(source, line, fmt.Errorf("the file ends broken after this line (%v); the next file is read", err))
	}
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

// add files the call of e into its group. A caller token's calls are
// grouped by credgate's correlation id of the request (never by the
// X-Request-Id its caller chose) with the token's subject and tenant; a
// call without one is its own group. A minted token is a group of its
// own; credgate's own calls are bookkeeping; any other call, with no token
// or a token credgate did not mint, is not credgate's and never a user's.
//
// The decoder's strings share the line's memory; what a group keeps is
// cloned, so an open group holds its few strings, not its lines.
func (s *Scanner) add(e *entry, hit bool) {
	path := e.Request.Path
	md := e.Auth.Metadata
	var key string
	var kind int
	const (
		byCaller = iota
		minting
		own
		foreign
	)
	switch {
	case e.mints():
		// A request can mint two tokens (its caller's, and credgate's own
		// system principal's to read the tenant's grants): one group each.
		kind, md = minting, e.Response.Auth.Metadata
		key = "mint\x00" + e.correlation() + "\x00" + md["sub"] + "\x00" + md["tenant"]
		if e.correlation() == "" {
			key = "vault:" + e.Request.ID
		}
	case e.callerToken():
		cid := e.correlation()
		key = cid + "\x00" + md["sub"] + "\x00" + md["tenant"]
		if cid == "" {
			s.Uncorrelated++
			key = "vault:" + e.Request.ID
		}
	case e.authenticated() && s.own(path):
		kind, md = own, nil
		key = "own:" + e.Request.ID
	default:
		kind, md = foreign, nil
		key = "other:" + e.Request.ID
	}
	g := s.open[key]
	if g == nil {
		g = &group{first: e.Time, requestID: strings.Clone(e.requestID()), client: strings.Clone(e.Request.RemoteAddress)}
		s.open[key] = g
		s.order = append(s.order, key)
	}
	g.last = e.Time
	g.hit = g.hit || hit
	if md["tenant"] != "" && g.tenant == "" {
		g.tenant, g.sub, g.email = strings.Clone(md["tenant"]), strings.Clone(md["sub"]), strings.Clone(md["email"])
		g.roles, g.grants = strings.Clone(md["roles"]), strings.Clone(md["grants"])
	}
	switch kind {
	case minting:
		g.mint = true
		g.add(call{failed: e.Error != ""})
		return
	case own:
		g.own = true
		g.add(call{op: operation(e.Request.Operation), t: target{folder: "system"}, denied: denial(e.Error)})
		return
	case foreign:
		g.foreign = true
		if g.otherPath == "" {
			g.otherPath = strings.Clone(path)
		}
		if t, ok := parsePath(s.o.Mount, path); ok && g.tenant == "" {
			g.tenant = strings.Clone(t.tenant) // where it went, not whose it was
		}
		if denial(e.Error) {
			g.seenDenied = true
		} else if e.Error != "" {
			g.seenError = true
		}
		return
	}
	t, ok := parsePath(s.o.Mount, strings.Clone(path))
	if !ok {
		// A caller token outside the tenants' records (its own lookup):
		// nothing of a credential.
		g.add(call{op: operation(e.Request.Operation), t: target{folder: "other"}, denied: denial(e.Error)})
		return
	}
	failed := e.Error != "" && !denial(e.Error) && !strings.Contains(e.Error, "check-and-set") && !e.lostRace()
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
	if s.o.Emit == nil {
		return nil
	}
	for _, o := range g.ops() {
		if !s.o.Filter.Match(&o) {
			continue
		}
		if err := s.o.Emit(o); err != nil {
			return err
		}
	}
	return nil
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
// writes, random values, its token's lookup and renewal, the caller tokens
// it mints (a mint that failed).
func (s *Scanner) own(path string) bool {
	for _, p := range []string{s.o.Mount + "/data/system/", s.o.Mount + "/metadata/tenants/", "sys/policies/acl/credgate-", "sys/tools/random", "auth/token/lookup-self", "auth/token/renew-self", "auth/token/create/"} {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return path == s.o.Mount+"/metadata/tenants"
}

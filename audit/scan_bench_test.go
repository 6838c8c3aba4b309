package audit_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/credgate/credgate/audit"
)

var (
	timeField = regexp.MustCompile(`"time":"[^"]*"`)
	ridField  = regexp.MustCompile(`"x-request-id":\["`)
	cidField  = regexp.MustCompile(`"x-credgate-request":\["`)
	idField   = regexp.MustCompile(`"id":"([0-9a-f]{8})-`)
)

// generate writes about size bytes of audit log: the lines of a real
// Vault's log (testdata, written while credgate served a short story)
// again and again, each copy with its own request ids and a later time,
// and hostile lines among them as anyone who reaches Vault can make them:
// in each copy an unauthenticated forged write and a line that is no JSON,
// every 64 copies a 256 KB entry, and in the middle one line of 72 MB.
func generate(tb testing.TB, path string, size int64) {
	sample, err := os.ReadFile("testdata/vault-audit.sample.log")
	if err != nil {
		tb.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSpace(sample), []byte("\n"))
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var written int64
	huge := size / 2 // where the 72 MB line goes
	for copy := 0; written < size; copy++ {
		prefix := []byte(`"x-request-id":["` + strconv.Itoa(copy) + "-")
		cid := []byte(`"x-credgate-request":["` + strconv.Itoa(copy) + "-")
		for i, l := range lines {
			ts := base.Add(time.Duration(copy)*3*time.Second + time.Duration(i)*time.Millisecond).Format(time.RFC3339Nano)
			l = timeField.ReplaceAllLiteral(l, []byte(`"time":"`+ts+`"`))
			l = ridField.ReplaceAllLiteral(l, prefix)
			l = cidField.ReplaceAllLiteral(l, cid)
			l = idField.ReplaceAll(l, []byte(fmt.Sprintf(`"id":"%08x-`, copy))) // Vault's request ids
			n, _ := w.Write(l)
			_ = w.WriteByte('\n')
			written += int64(n + 1)
			if i == len(lines)/2 {
				n, _ := fmt.Fprintf(w, `{"auth":{"policy_results":{"allowed":false}},"error":"permission denied","request":{"headers":{"x-request-id":["%d-r-bob-read-1"]},"id":"forged-%d","operation":"update","path":"credgate/data/tenants/acme/credentials/stripe/cred-x","remote_address":"203.0.113.9"},"time":"%s","type":"response"}`+"\n"+"\x1b]0;not json\a\n", copy, copy, ts)
				written += int64(n)
				if copy%64 == 0 {
					n, _ := fmt.Fprintf(w, `{"type":"request","time":"%s","request":{"data":{"%s":1}}}`+"\n", ts, bytes.Repeat([]byte("<"), 256<<10))
					written += int64(n)
				}
				if huge > 0 && written >= huge && size >= 256<<20 {
					huge = 0
					n, _ := fmt.Fprintf(w, `{"type":"request","time":"%s","request":{"data":{"%s":1}}}`+"\n", ts, bytes.Repeat([]byte("<"), 72<<20))
					written += int64(n)
				}
			}
		}
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	f.Close()
}

// BenchmarkScan reads a generated audit log of CREDGATE_AUDIT_MB megabytes
// (default 64; the note quotes 1024) the way credgate audit -json does, and
// reports entries and megabytes a second and the peak resident memory
// of the process (the generator's included: time credgate audit for the
// scan's alone).
func BenchmarkScan(b *testing.B) {
	mb := int64(64)
	if n, err := strconv.ParseInt(os.Getenv("CREDGATE_AUDIT_MB"), 10, 64); err == nil && n > 0 {
		mb = n
	}
	// CREDGATE_AUDIT_FILE keeps the generated log there, to time
	// credgate audit itself on it (/usr/bin/time -v).
	path := os.Getenv("CREDGATE_AUDIT_FILE")
	if path == "" {
		path = filepath.Join(b.TempDir(), "vault-audit.log")
	}
	generate(b, path, mb<<20)
	st, _ := os.Stat(path)
	runtime.GC()
	b.ResetTimer()
	var entries, ops, skipped int
	var took time.Duration
	for range b.N {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		n := 0
		sc := audit.NewScanner(audit.Options{Emit: func(audit.Op) error { n++; return nil }})
		if err := sc.Read(path, f); err != nil {
			b.Fatal(err)
		}
		if err := sc.Close(); err != nil {
			b.Fatal(err)
		}
		took += time.Since(start)
		f.Close()
		entries, ops, skipped = sc.Entries, n, sc.Bad
	}
	b.StopTimer()
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	sec := took.Seconds() / float64(b.N)
	b.ReportMetric(float64(entries)/sec, "entries/s")
	b.ReportMetric(float64(st.Size())/(1<<20)/sec, "MB/s")
	b.ReportMetric(float64(ru.Maxrss)/1024, "peak-RSS-MB")
	b.ReportMetric(float64(ops), "ops")
	b.ReportMetric(float64(skipped), "skipped-lines")
}

package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/audit"
	"github.com/credgate/credgate/bootstrap"
	"github.com/credgate/credgate/policy"
)

const auditUsage = `usage: credgate audit [flags] [FILE ...]

Reads Vault's file audit log (FILEs in order, rotated .gz files too; none or
"-": standard input) and prints one line per credgate operation: time,
tenant, actor, operation, integration, credential, version, outcome,
request id and client address.

flags:`

// auditCmd is credgate audit. stdin is the log when no file is named, or
// the value -value looks for.
func auditCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, auditUsage); fs.PrintDefaults() }
	var f audit.Filter
	fs.StringVar(&f.Tenant, "tenant", "", "only this tenant")
	fs.StringVar(&f.Actor, "actor", "", "only this actor: a subject or an e-mail address")
	fs.StringVar(&f.Integration, "integration", "", "only this integration (service) id")
	fs.StringVar(&f.Credential, "credential", "", "only this credential id (cred-<uuid>)")
	fs.StringVar(&f.RequestID, "request-id", "", "only this request (X-Request-Id)")
	fs.BoolVar(&f.Denied, "denied", false, "only operations Vault refused")
	fs.BoolVar(&f.All, "all", false, "also Vault calls credgate did not make, and credgate's bookkeeping (events, webhooks, the monitor)")
	since := fs.String("since", "", "from this time: RFC 3339, or a time back from now (30m, 24h, 7d)")
	until := fs.String("until", "", "before this time: RFC 3339, or a time back from now")
	jsonOut := fs.Bool("json", false, "JSON lines instead of a table (for a SIEM)")
	summary := fs.Bool("summary", false, "per credential: reads, distinct actors, last read, denials, changes")
	value := fs.Bool("value", false, "read a value from standard input and show only the requests that carried it (asks Vault for its HMAC: VAULT_ADDR, VAULT_TOKEN)")
	device := fs.String("device", bootstrap.AuditDevicePath, "the audit device that wrote the log (for -value)")
	mount := fs.String("mount", policy.DefaultMount, "credgate's KV v2 mount")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var err error
	now := time.Now()
	if f.Since, err = auditTime(*since, now); err != nil {
		return fmt.Errorf("-since: %w", err)
	}
	if f.Until, err = auditTime(*until, now); err != nil {
		return fmt.Errorf("-until: %w", err)
	}
	files := fs.Args()
	opts := audit.Options{Mount: *mount, Filter: f, Malformed: func(source string, line int, err error) {
		fmt.Fprintf(stderr, "credgate audit: %s:%d: skipped: %s\n", audit.Printable(source), line, audit.Printable(err.Error()))
	}}
	if *value {
		if len(files) == 0 || (len(files) == 1 && files[0] == "-") {
			return errors.New("-value reads the value from standard input; name the log files")
		}
		if opts.Hash, err = auditHash(ctx, stdin, *device); err != nil {
			return err
		}
	}
	out := bufio.NewWriterSize(stdout, 64<<10)
	defer out.Flush()
	var table *audit.Table
	var sum *audit.Summary
	switch {
	case *summary:
		sum = audit.NewSummary()
		opts.Emit = sum.Add
	case *jsonOut:
		opts.Emit = audit.JSONLines(out)
	default:
		table = audit.NewTable(out)
		opts.Emit = table.Write
	}
	sc := audit.NewScanner(opts)
	if len(files) == 0 {
		files = []string{"-"}
	}
	unread := 0 // files that could not be opened
	for _, name := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := readAuditFile(sc, name, stdin); err != nil {
			if errors.Is(err, errEmit) {
				return err
			}
			unread++
			fmt.Fprintf(stderr, "credgate audit: %s: skipped: %s\n", audit.Printable(name), audit.Printable(err.Error()))
		}
	}
	if err := sc.Close(); err != nil {
		return err
	}
	switch {
	case sum != nil:
		err = sum.Write(out, *jsonOut)
	case table != nil:
		err = table.Flush()
	}
	if sc.Bad > 0 || sc.Broken > 0 || unread > 0 {
		fmt.Fprintf(stderr, "credgate audit: read %d entries; skipped %d lines (not audit entries, or longer than %d MiB), %d files ending broken, %d files not opened\n",
			sc.Entries, sc.Bad, audit.MaxLine>>20, sc.Broken, unread)
	}
	if sc.Uncorrelated > 0 {
		fmt.Fprintf(stderr, "credgate audit: %d calls of caller tokens carried no %s (a Vault whose audited headers credgate bootstrap did not set, or a token used outside credgate): each is shown alone\n",
			sc.Uncorrelated, credgate.CorrelationHeader)
	}
	if err == nil && sc.Entries == 0 && (sc.Bad > 0 || sc.Broken > 0 || unread > 0) {
		return errors.New("nothing could be read")
	}
	return err
}

// errEmit marks a failure to write the report: it ends the scan.
var errEmit = errors.New("writing the report")

// readAuditFile scans one file ("-": stdin) with sc. Errors: the file
// could not be opened, or errEmit wrapping a failure to write the report.
func readAuditFile(sc *audit.Scanner, name string, stdin io.Reader) error {
	var r io.Reader = stdin
	if name != "-" {
		fh, err := os.Open(name)
		if err != nil {
			return err
		}
		defer fh.Close()
		r = fh
	} else {
		name = "stdin"
	}
	if err := sc.Read(name, r); err != nil {
		return fmt.Errorf("%w: %w", errEmit, err)
	}
	return nil
}

// auditTime reads an RFC 3339 time or a time back from now ("" is none).
func auditTime(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := credgate.ParseWithin(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor %v", s, err)
	}
	return now.Add(-d), nil
}

// auditHash reads a value from stdin (never a flag: it would sit in the
// shell's history and the process list) and asks Vault for its HMAC under
// the audit device, as the log carries it.
func auditHash(ctx context.Context, stdin io.Reader, device string) (string, error) {
	b, err := io.ReadAll(io.LimitReader(stdin, 1<<20))
	if err != nil {
		return "", err
	}
	v := strings.TrimRight(string(b), "\r\n")
	if v == "" {
		return "", errors.New("-value: no value on standard input")
	}
	c, err := api.NewClient(api.DefaultConfig()) // VAULT_ADDR, VAULT_TOKEN, VAULT_CACERT, ...
	if err != nil {
		return "", err
	}
	h, err := c.Sys().AuditHashWithContext(ctx, device, v)
	if err != nil {
		return "", fmt.Errorf("asking Vault for the value's HMAC under audit device %q: %w", device, err)
	}
	return h, nil
}

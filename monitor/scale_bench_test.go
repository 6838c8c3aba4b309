package monitor_test

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/credgate/credgate"
	"github.com/credgate/credgate/monitor"
	"github.com/credgate/credgate/vaultstore"
)

// BenchmarkScale is make bench-scale: for each size in CREDGATE_SCALE
// (credentials, comma-separated; default 10000) it seeds that many
// credentials over size/100 tenants (at least 10) of ten services each
// into a fresh real Vault through the store, 1 % of them expiring dueAfter
// after 30 days and the rest later, then measures the monitor's first
// pass (before that 1 % is due its 30-day notice, on the monitor's clock)
// and a steady pass 35 minutes later, in which it is (Vault calls, wall
// time, credgate CPU); then it seeds one
// more tenant of up to 10,000 credentials, all expiring within 30 days,
// and walks its inventory in pages of 500 with expiringWithin=30d (Vault
// calls a page, and the most a page made per service it listed) on the
// replica that wrote it, then twice on another: cold, then with the bases
// it kept; last,
// the process's RSS. It prints one table.
func BenchmarkScale(b *testing.B) {
	sizes := []int{10000}
	if s := os.Getenv("CREDGATE_SCALE"); s != "" {
		sizes = sizes[:0]
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 100 {
				b.Fatalf("CREDGATE_SCALE: %q is not a size of at least 100", f)
			}
			sizes = append(sizes, n)
		}
	}
	var rows []scaleRow
	for range b.N {
		rows = rows[:0]
		for _, n := range sizes {
			rows = append(rows, measureScale(b, n, max(n/100, 10)))
		}
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "credentials\ttenants\tseed\tpass-1 calls\tpass-1 wall\tsteady calls\tcalls/credential\tsteady wall\tsteady CPU\tinventory tenant\tpages\tcalls/page (most/service): writer\tother replica, first\tother replica, again\tRSS MB\t")
	for _, r := range rows {
		fmt.Fprintf(w, "%d\t%d\t%s\t%d\t%s\t%d\t%.3f\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%d\t\n", r.n, r.tenants, r.seed.Round(time.Second),
			r.firstCalls, r.firstWall.Round(time.Millisecond), r.steadyCalls, float64(r.steadyCalls)/float64(r.n),
			r.steadyWall.Round(time.Millisecond), r.steadyCPU.Round(time.Millisecond), r.bigTenant, r.pages, r.writer, r.cold, r.warm, r.rssMB)
	}
	_ = w.Flush()
}

type scaleRow struct {
	n, tenants              int
	seed                    time.Duration
	firstCalls, steadyCalls int64
	firstWall, steadyWall   time.Duration
	steadyCPU               time.Duration
	bigTenant, pages        int
	writer, cold, warm      walkCost // the inventory walks
	rssMB                   int
}

// walkCost is what an inventory walk cost: Vault calls a page, and the
// most a page made per service it listed.
type walkCost struct{ perPage, perService float64 }

func (c walkCost) String() string { return fmt.Sprintf("%.1f (%.1f)", c.perPage, c.perService) }

func measureScale(b *testing.B, total, tenants int) scaleRow {
	ctx := context.Background()
	store, calls, replica := benchStore(b, 30*time.Second)
	row := scaleRow{n: total, tenants: tenants}
	start := time.Now()
	seed(b, store, scaleTenant, tenants, total, dueOne)
	row.seed = time.Since(start)

	var last monitor.Pass
	var ahead atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }
	mon := benchMonitor(b, store, func(p monitor.Pass) { last = p }, clock)
	pass := func() (int64, time.Duration, time.Duration) {
		c0, t0, u0 := calls.Load(), time.Now(), cpuTime()
		mon.Step(ctx)
		return calls.Load() - c0, time.Since(t0), cpuTime() - u0
	}
	// The monitor's clock is set from the start of the seeding, which
	// takes from minutes to most of an hour (100,000 on a slow day): the 1 %
	// crosses its 30-day threshold dueAfter after it. The first pass half an
	// hour before that, and at least a minute after the seeding (the marks
	// of the writes are old enough to be forgotten once looked at); the
	// steady pass five minutes after it: within the hour, as before, so that
	// no hourly work falls between them.
	ahead.Store(int64(max(credgate.MarkGrace, time.Until(start.Add(dueAfter-30*time.Minute)))))
	row.firstCalls, row.firstWall, _ = pass()
	if due := expiring(last); due != 0 {
		b.Fatalf("the first pass counts %d credentials expiring within 30 days, want none", due)
	}
	ahead.Store(int64(time.Until(start.Add(dueAfter + 5*time.Minute))))
	if f := os.Getenv("CREDGATE_SCALE_CPUPROFILE"); f != "" {
		out, err := os.Create(f)
		if err != nil {
			b.Fatal(err)
		}
		_ = pprof.StartCPUProfile(out)
		defer out.Close()
	}
	row.steadyCalls, row.steadyWall, row.steadyCPU = pass()
	pprof.StopCPUProfile()
	if last.Credentials != total {
		b.Fatalf("a pass saw %d credentials, want %d", last.Credentials, total)
	}
	if due := expiring(last); due != total/100 {
		b.Fatalf("the steady pass counts %d credentials expiring within 30 days, want %d", due, total/100)
	}

	// The inventory walk: a tenant of its own, of up to 10,000 credentials
	// (ten services) all expiring within 30 days, listed with
	// expiringWithin=30d in pages of 500.
	big := min(total, 10000)
	seed(b, store, func(int) string { return "scale-big" }, 1, big, func(i int) time.Duration { return time.Duration(1+i%29) * 24 * time.Hour })
	row.bigTenant = big
	sys := credgate.WithPrincipal(ctx, credgate.SystemPrincipal("scale-big"))
	walk := func(store *vaultstore.Store) (pages int, cost walkCost) {
		c0 := calls.Load()
		f := credgate.CredentialFilter{Limit: 500, ExpiresBefore: time.Now().Add(30 * 24 * time.Hour)}
		listed := 0
		for {
			p0 := calls.Load()
			page, err := store.ListCredentials(sys, f)
			if err != nil {
				b.Fatal(err)
			}
			pages++
			listed += len(page.Credentials)
			services := map[string]bool{}
			for _, c := range page.Credentials {
				services[c.IntegrationID] = true
			}
			cost.perService = max(cost.perService, float64(calls.Load()-p0)/float64(max(len(services), 1)))
			if page.Next == nil {
				break
			}
			f.After = page.Next
		}
		if listed != big {
			b.Fatalf("the inventory walk listed %d credentials, want %d", listed, big)
		}
		cost.perPage = float64(calls.Load()-c0) / float64(pages)
		return pages, cost
	}
	// The replica that seeded the tenant keeps the bases it folded; another
	// replica reads every service's base on its first walk and, nothing
	// having changed, keeps them for the second.
	row.pages, row.writer = walk(store)
	other := replica()
	_, row.cold = walk(other)
	_, row.warm = walk(other)
	row.rssMB = rssMB()
	return row
}

func scaleTenant(t int) string { return fmt.Sprintf("scale-%04d", t) }

// dueAfter is longer than any seeding: the first pass, right after it,
// finds nothing due.
const dueAfter = 3 * time.Hour

// dueOne expires one credential in a hundred dueAfter after 30 days (due
// its 30-day notice dueAfter after the seeding started), the rest from 31
// to 90 days ahead.
func dueOne(i int) time.Duration {
	day := 24 * time.Hour
	if i%100 == 0 {
		return 30*day + dueAfter
	}
	return time.Duration(31+i%60) * day
}

// expiring is how many credentials a pass counted expiring within 30 days.
func expiring(p monitor.Pass) int {
	n := 0
	for _, c := range p.Inventory {
		n += c.Expiry["lt_30d"]
	}
	return n
}

// rssMB is this process's resident set, in MB.
func rssMB() int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			if f := strings.Fields(rest); len(f) > 0 { // "123456 kB"
				kb, _ := strconv.Atoi(f[0])
				return kb / 1024
			}
		}
	}
	return 0
}

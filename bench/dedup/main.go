// Command dedup measures the on-disk de-duplication index
// (internal/stream/dedup) the way ingest uses it: N events in groups of
// -batch, each group looked up (Check) and then recorded (Add) at
// increasing stream positions, inside one -window. Every -every events it
// samples the process's resident memory (/proc/self/status: VmRSS, its
// anonymous and file-backed parts), the Go heap, the index's disk usage and
// the CPU time used, and prints a row; at the end it times Check of present
// and of absent keys and writes the table to -out (Markdown).
//
//	go run ./bench/dedup -n 50000000
//
// bench/dedup.sh builds and runs it; see bench/README.md ("De-duplication
// index benchmark").
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/capstan-gw/capstan/internal/stream/dedup"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "dedup bench:", err)
		os.Exit(1)
	}
}

type config struct {
	n, batch, every int
	window          time.Duration
	memory          int64
	dir, out, label string
	keep            bool
	probes          int
	heapProfile     string
}

func run(args []string, stdout io.Writer) error {
	var c config
	fs := flag.NewFlagSet("dedup", flag.ContinueOnError)
	fs.IntVar(&c.n, "n", 50_000_000, "events to insert")
	fs.IntVar(&c.batch, "batch", 100, "events per group (one Check and one Add each)")
	fs.IntVar(&c.every, "every", 1_000_000, "sample every this many events")
	fs.DurationVar(&c.window, "window", 24*time.Hour, "de-duplication window (entry TTL)")
	fs.Int64Var(&c.memory, "memory", 0, "index memory budget in bytes (0: the default, 256 MB)")
	fs.StringVar(&c.dir, "dir", "", "index directory (default: a new temp dir, removed at the end)")
	fs.StringVar(&c.out, "out", "", "Markdown report path (default: none)")
	fs.StringVar(&c.label, "label", "", "what the report calls this run (e.g. git describe)")
	fs.BoolVar(&c.keep, "keep", false, "keep the temp index directory")
	fs.IntVar(&c.probes, "probes", 200_000, "keys looked up in the final Check timings (present and absent each)")
	fs.StringVar(&c.heapProfile, "heapprofile", "", "write a heap profile (pprof) here after the load")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.n <= 0 || c.batch <= 0 || c.batch > 1<<16 || c.every <= 0 {
		return fmt.Errorf("-n, -batch (1..65536) and -every must be positive")
	}
	if c.dir == "" {
		d, err := os.MkdirTemp("", "capstan-dedup-bench-")
		if err != nil {
			return err
		}
		c.dir = d
		if !c.keep {
			defer os.RemoveAll(d)
		}
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	x, err := dedup.Open(dedup.Options{Dir: c.dir, Window: c.window, MemoryBytes: c.memory, Logger: log})
	if err != nil {
		return err
	}
	defer x.Close()

	secret := []byte("capstan dedup bench secret, 32B")
	var rep report
	rep.config = c
	rep.start = time.Now()
	header := "| events (M) | VmRSS MB | RssAnon MB | RssFile MB | of which dirty MB | Go heap MB | disk MB | disk B/event | events/s (interval) | CPU-µs/event (interval) | hash µs/event | Check µs/event | Add µs/event |"
	fmt.Fprintln(stdout, header)
	fmt.Fprintln(stdout, "|---|---|---|---|---|---|---|---|---|---|---|---|---|")

	keys := make([]dedup.Key, c.batch)
	pos := make([]uint64, c.batch)
	id := make([]byte, 0, 32)
	var tHash, tCheck, tAdd time.Duration // over the current interval
	last := sample{at: time.Now(), cpu: cpuTime()}
	seq := uint64(0)
	for done := 0; done < c.n; {
		seq++
		g := min(c.batch, c.n-done)
		t0 := time.Now()
		for i := range g {
			id = strconv.AppendInt(id[:0], int64(done+i), 10)
			keys[i] = dedup.HashKey(secret, "bench", string(id))
			pos[i] = seq<<16 | uint64(i)
		}
		t1 := time.Now()
		got, err := x.Check(keys[:g])
		if err != nil {
			return err
		}
		for i, p := range got {
			if p != 0 {
				return fmt.Errorf("event %d: new key found at %#x", done+i, p)
			}
		}
		t2 := time.Now()
		if err := x.Add(keys[:g], pos[:g], seq); err != nil {
			return err
		}
		t3 := time.Now()
		tHash += t1.Sub(t0)
		tCheck += t2.Sub(t1)
		tAdd += t3.Sub(t2)
		prev := done
		done += g
		if done/c.every != prev/c.every || done == c.n {
			s, err := take(x, c.dir)
			if err != nil {
				return err
			}
			s.events = done
			row := s.row(last, tHash, tCheck, tAdd)
			fmt.Fprintln(stdout, row)
			rep.rows = append(rep.rows, row)
			rep.last = s
			last = s
			tHash, tCheck, tAdd = 0, 0, 0
		}
	}
	rep.end = time.Now()
	if c.heapProfile != "" {
		f, err := os.Create(c.heapProfile)
		if err != nil {
			return err
		}
		if err := pprof.WriteHeapProfile(f); err != nil {
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}

	// Check timings after the load: present keys (a random sample of the
	// inserted ones) and absent ones, in groups of -batch.
	rng := rand.New(rand.NewPCG(1, 2))
	rep.presentUS, rep.presentCPU, err = probe(x, c, func(i int) string {
		return strconv.Itoa(rng.IntN(c.n))
	}, true)
	if err != nil {
		return err
	}
	rep.absentUS, rep.absentCPU, err = probe(x, c, func(i int) string {
		return "absent-" + strconv.Itoa(i)
	}, false)
	if err != nil {
		return err
	}
	st := x.Stats()
	rep.stats = st
	fmt.Fprintf(stdout, "\nCheck after the load, groups of %d: present %.2f µs/key (CPU %.2f), absent %.2f µs/key (CPU %.2f)\n",
		c.batch, rep.presentUS, rep.presentCPU, rep.absentUS, rep.absentCPU)
	fmt.Fprintf(stdout, "index: %d table entries, %.0f MB of tables, %.0f MB on disk, covered %d\n",
		st.Keys, mb(st.TableBytes), mb(st.DiskBytes), st.Covered)
	if c.out != "" {
		if err := os.WriteFile(c.out, []byte(rep.markdown(header)), 0o644); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "wrote", c.out)
	}
	return nil
}

// probe looks up c.probes keys named by name in groups of c.batch and
// returns the wall and CPU µs per key; present says whether they must be
// found.
func probe(x *dedup.Index, c config, name func(int) string, present bool) (wallUS, cpuUS float64, err error) {
	secret := []byte("capstan dedup bench secret, 32B")
	keys := make([]dedup.Key, 0, c.batch)
	var wall time.Duration
	cpu0 := cpuTime()
	for i := 0; i < c.probes; {
		keys = keys[:0]
		for ; len(keys) < c.batch && i < c.probes; i++ {
			keys = append(keys, dedup.HashKey(secret, "bench", name(i)))
		}
		t0 := time.Now()
		got, err := x.Check(keys)
		wall += time.Since(t0)
		if err != nil {
			return 0, 0, err
		}
		for _, p := range got {
			if (p != 0) != present {
				return 0, 0, fmt.Errorf("probe: present=%v but position %#x", present, p)
			}
		}
	}
	cpu := cpuTime() - cpu0
	n := float64(c.probes)
	return float64(wall.Microseconds()) / n, float64(cpu.Microseconds()) / n, nil
}

type sample struct {
	at              time.Time
	events          int
	cpu             time.Duration
	rss, anon, file int64
	heap            uint64
	disk, hwmRSS    int64
	fileDirty       int64 // of file, pages written and not yet on disk
}

func take(x *dedup.Index, dir string) (sample, error) {
	s := sample{at: time.Now(), cpu: cpuTime()}
	var err error
	s.rss, s.anon, s.file, s.hwmRSS, err = procStatus()
	if err != nil {
		return s, err
	}
	s.fileDirty, err = fileDirty()
	if err != nil {
		return s, err
	}
	m := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(m)
	s.heap = m[0].Value.Uint64()
	s.disk, err = du(dir)
	return s, err
}

func (s sample) row(last sample, hash, check, add time.Duration) string {
	n := float64(s.events - last.events)
	perEv := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 / n }
	return fmt.Sprintf("| %.1f | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.1f | %.0f | %.2f | %.2f | %.2f | %.2f |",
		float64(s.events)/1e6, mb(s.rss), mb(s.anon), mb(s.file), mb(s.fileDirty), mb(int64(s.heap)), mb(s.disk),
		float64(s.disk)/float64(s.events), n/s.at.Sub(last.at).Seconds(), perEv(s.cpu-last.cpu),
		perEv(hash), perEv(check), perEv(add))
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

// cpuTime is the process's user plus system CPU time (every thread,
// the store's compactions included).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procStatus reads VmRSS, RssAnon, RssFile and VmHWM (bytes).
func procStatus() (rss, anon, file, hwm int64, err error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, 0, 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var dst *int64
		switch k {
		case "VmRSS":
			dst = &rss
		case "RssAnon":
			dst = &anon
		case "RssFile":
			dst = &file
		case "VmHWM":
			dst = &hwm
		default:
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, 0, 0, 0, fmt.Errorf("/proc/self/status %s: %w", k, err)
		}
		*dst = kb << 10
	}
	return rss, anon, file, hwm, sc.Err()
}

// fileDirty is the dirty part of the process's file-backed resident pages
// (/proc/self/smaps_rollup: dirty pages less the anonymous ones, which are
// all dirty): what the kernel must write back before it can reclaim them.
// The rest of RssFile is clean, reclaimable at no more cost than reading
// it again.
func fileDirty() (int64, error) {
	f, err := os.Open("/proc/self/smaps_rollup")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var dirty, anon int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var dst *int64
		switch k {
		case "Private_Dirty", "Shared_Dirty":
			dst = &dirty
		case "Anonymous":
			dst = &anon
		default:
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/self/smaps_rollup %s: %w", k, err)
		}
		*dst += kb << 10
	}
	return max(0, dirty-anon), sc.Err()
}

// du is the disk space (allocated blocks) of the files under dir.
func du(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil // a table compacted away meanwhile
			}
			return err
		}
		info, err := d.Info()
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok && info.Mode().IsRegular() {
			n += st.Blocks * 512
		}
		return nil
	})
	return n, err
}

type report struct {
	config
	start, end            time.Time
	rows                  []string
	last                  sample
	presentUS, presentCPU float64
	absentUS, absentCPU   float64
	stats                 dedup.Stats
}

func (r report) markdown(header string) string {
	var b strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "# De-duplication index: %d events, %s window (%s)\n\n", r.n, r.window, r.start.UTC().Format("2006-01-02"))
	fmt.Fprintf(&b, "`go run ./bench/dedup -n %d -batch %d -window %s` (bench/dedup.sh)", r.n, r.batch, r.window)
	if r.label != "" {
		fmt.Fprintf(&b, ", build %s", r.label)
	}
	fmt.Fprintf(&b, ". Machine: %s, %d CPUs, %s/%s, %s; started %s, took %s.\n\n",
		host, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(),
		r.start.UTC().Format(time.RFC3339), r.end.Sub(r.start).Round(time.Second))
	b.WriteString("Each group of events is hashed (HashKey), looked up (Check: all absent) and recorded (Add, Covered = the group's sequence). ")
	b.WriteString("Per-event figures per interval: CPU is the whole process's user+system time (the store's flushes and compactions included); ")
	b.WriteString("hash/Check/Add are wall time inside those calls. RssFile is the part of files mapped into the process (a store that maps its tables shows them here): page cache, reclaimable by the kernel once clean (\"of which dirty\": written, not yet on disk; /proc/self/smaps_rollup); RssAnon is the process's own memory.\n\n")
	b.WriteString(header + "\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, row := range r.rows {
		b.WriteString(row + "\n")
	}
	fmt.Fprintf(&b, "\nPeak VmRSS (VmHWM): %.0f MB. Total CPU %.1f s for %d events: %.2f CPU-µs/event.\n",
		mb(r.last.hwmRSS), r.last.cpu.Seconds(), r.n, float64(r.last.cpu.Microseconds())/float64(r.n))
	fmt.Fprintf(&b, "\nCheck after the load, %d keys in groups of %d: present %.2f µs/key (CPU %.2f), absent %.2f µs/key (CPU %.2f).\n",
		r.probes, r.batch, r.presentUS, r.presentCPU, r.absentUS, r.absentCPU)
	fmt.Fprintf(&b, "\nIndex at the end: %d table entries, %.0f MB of tables, %.0f MB on disk (%.1f B/event).\n",
		r.stats.Keys, mb(r.stats.TableBytes), mb(r.stats.DiskBytes), float64(r.stats.DiskBytes)/float64(r.n))
	return b.String()
}

// Command fsyncfloor measures the disk's own floor under capstan's
// single-event latency (issue 22): it appends records of a segment's size to
// a file and makes each durable with fsync (as JetStream's file store does
// with sync: always), open loop at a fixed rate, with nothing else of
// capstan involved.
//
// It reports two distributions:
//
//   - sync: the duration of each fsync (or fdatasync) system call alone;
//   - request: from each record's due time to the end of the fsync that made
//     it durable, with one writer that appends every record already due and
//     then syncs them all (a group commit with one sync at a time and
//     nothing else): a record arriving during a sync waits for that sync and
//     then for its own.
//
// And a bound that holds for any commit policy: the share of the time that
// lies more than 5 ms before the end of a sync. A request arriving then is
// over 5 ms whatever the policy; above 1%, p99 under 5 ms is out of reach
// on this disk while it is in this state.
//
// Each sync's time is split, from the thread's /proc schedstat read around
// it, into "runq" (waiting for a CPU: the machine's contention, not the
// disk's) and "disk" (neither running nor waiting for a CPU: the device and
// the file system's journal), and the whole disk's write and flush counts
// and mean times over the run are printed (/sys/dev/block/*/stat, every
// process's I/O).
//
// With -mode it writes the records in one of four ways, to tell the disk's
// own flush from the file system's journal commit that an append needs:
//
//   - append: to the end of a file that grows (what JetStream's block files
//     do; the default);
//   - keepsize: to the end of a file whose blocks were allocated beforehand
//     (fallocate with FALLOC_FL_KEEP_SIZE): the size still grows;
//   - prealloc: inside a file allocated beforehand at its full size
//     (fallocate): the size stays, unwritten extents become written;
//   - overwrite: over a file written and fsynced beforehand: neither the size
//     nor the extents change, only the data (and, for fsync, the mtime).
//
// With -costs the syncs alternate between fsync and fdatasync, sync by sync
// (so that both meet the same disk and the same machine), and it prints for
// each kind what one sync costs: its duration, its thread's CPU time (the
// system call's kernel work), the time waiting for a CPU, the time blocked,
// and how often the thread was switched back in (a wake-up for each I/O the
// sync waited for, plus the machine's preemptions); and the device's writes
// per sync. Find which I/Os they are with perf (bench/README.md). Its
// request distribution mixes both kinds.
//
// Usage:
//
//	go run ./bench/fsyncfloor -dir /path/on/the/data/disk -rate 2000 -duration 20s -size 1080 [-mode append] [-fdatasync | -costs]
//
// With -out it appends one JSON line, in the fields of loadgen's results
// (p50_ms ... max_ms, mean_ms, of the request distribution; sync_* of the
// sync calls), so that bench/latency.sh reports the disk's floor beside
// capstan and the null server.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// fallocKeepSize is Linux's FALLOC_FL_KEEP_SIZE: allocate without growing
// the file.
const fallocKeepSize = 0x01

func main() {
	dir := flag.String("dir", os.TempDir(), "directory on the disk to measure (capstan's data_dir)")
	rate := flag.Int("rate", 2000, "records per second")
	dur := flag.Duration("duration", 20*time.Second, "measured duration")
	size := flag.Int("size", 1080, "bytes per record (a single-event segment of bench/loadgen's track body, JetStream's record header included, took 1,080 B in EVENTS' blocks)")
	data := flag.Bool("fdatasync", false, "fdatasync instead of fsync")
	out := flag.String("out", "", "append the JSON result line to this file")
	target := flag.String("target", "disk", "target name of the JSON result line")
	mode := flag.String("mode", "append", "how records are written: append, keepsize, prealloc or overwrite (see the package comment)")
	costs := flag.Bool("costs", false, "alternate fsync and fdatasync and print what one sync of each costs (see the package comment)")
	flag.Parse()
	if *costs && (*data || *out != "") {
		log.Fatal("-costs alternates both kinds: not with -fdatasync or -out")
	}
	if *rate <= 0 || *size <= 0 || *dur <= 0 {
		log.Fatal("rate, size and duration must be positive")
	}
	switch *mode {
	case "append", "keepsize", "prealloc", "overwrite":
	default:
		log.Fatalf("-mode %q: want append, keepsize, prealloc or overwrite", *mode)
	}

	f, err := os.CreateTemp(*dir, "fsyncfloor-*.blk")
	if err != nil {
		log.Fatal(err)
	}
	name := f.Name()
	defer os.Remove(name)
	defer f.Close()

	fdatasync := func() error { return syscall.Fdatasync(int(f.Fd())) }
	sync := f.Sync
	if *data {
		sync = fdatasync
	}
	var perKind [2]kindCosts // with -costs: fsync, fdatasync
	rec := make([]byte, *size)
	for i := range rec {
		rec[i] = byte('a' + i%26)
	}

	n := int(dur.Seconds() * float64(*rate))
	interval := time.Second / time.Duration(*rate)
	if err := prepare(f, *mode, int64(n)*int64(*size), rec); err != nil {
		log.Fatal(err)
	}
	var off int64 // where the next record goes

	// Per sync, the thread's time waiting for a CPU (schedstat), so that
	// the disk's part of a slow sync shows apart from the machine's CPU
	// contention; and the whole disk's counters over the run.
	runtime.LockOSThread()
	schedFile, _ := os.Open("/proc/thread-self/schedstat")
	var runqs, blocked []time.Duration
	dev0 := readDev(*dir)
	syncs := make([]time.Duration, 0, n)
	reqs := make([]time.Duration, 0, n)
	groups := 0
	start := time.Now().Add(50 * time.Millisecond)
	next := 0 // the first record not yet written
	for next < n {
		due := start.Add(time.Duration(next) * interval)
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		// Append every record due by now, then one sync for them all.
		first := next
		now := time.Now()
		for next < n && !start.Add(time.Duration(next)*interval).After(now) {
			if _, err := f.WriteAt(rec, off); err != nil {
				log.Fatal(err)
			}
			off += int64(len(rec))
			next++
		}
		kind := 0
		if *costs {
			kind = groups % 2
			sync = [2]func() error{f.Sync, fdatasync}[kind]
		}
		d0 := readDev(*dir)
		s0 := readSched(schedFile)
		t0 := time.Now()
		if err := sync(); err != nil {
			log.Fatal(err)
		}
		end := time.Now()
		s1 := readSched(schedFile)
		if *costs {
			perKind[kind].add(end.Sub(t0), s0, s1, readDev(*dir).sub(d0))
		}
		syncs = append(syncs, end.Sub(t0))
		if s0.ok && s1.ok {
			// The sync's wall time is on the CPU, waiting for one, or
			// blocked: the rest is the disk (and the file system's
			// journal thread).
			runq := s1.wait - s0.wait
			runqs = append(runqs, runq)
			blocked = append(blocked, max(0, end.Sub(t0)-runq-(s1.cpu-s0.cpu)))
		}
		groups++
		for i := first; i < next; i++ {
			reqs = append(reqs, end.Sub(start.Add(time.Duration(i)*interval)))
		}
	}
	kind := "fsync"
	if *data {
		kind = "fdatasync"
	}
	if *costs {
		kind = "fsync and fdatasync alternating"
	}
	fmt.Printf("dir %s, %d records of %d B at %d/s, %s, mode %s, %d syncs (%.2f records each)\n",
		filepath.Dir(name), n, *size, *rate, kind, *mode, groups, float64(n)/float64(groups))
	// A record that arrives during a sync waits for it to end, whatever the
	// policy; one that arrives more than 5 ms before its end is over 5 ms.
	// At a steady rate, the share of the time that is such (each sync's
	// duration beyond 5 ms) is a lower bound of the share of records over
	// 5 ms: above 1%, no policy has p99 under 5 ms on this disk.
	var slow, all time.Duration
	for _, d := range syncs {
		all += d
		slow += max(0, d-5*time.Millisecond)
	}
	slowPct := 100 * slow.Seconds() / dur.Seconds()
	fmt.Printf("time in syncs %.1f%% of %s; more than 5 ms before a sync's end %.2f%% (a lower bound of records over 5 ms)\n", 100*all.Seconds()/dur.Seconds(), *dur, slowPct)
	ss := report("sync", syncs)
	var rq, bl stats
	if len(runqs) > 0 {
		rq = report("  runq", runqs)
		bl = report("  disk", blocked)
	}
	dev := readDev(*dir).sub(dev0)
	if dev.ok {
		fmt.Printf("device (every process): %d writes, mean %.3f ms; %d flushes, mean %.3f ms\n",
			dev.writes, dev.meanWrite(), dev.flushes, dev.meanFlush())
	}
	rs := report("request", reqs)
	if *costs {
		perKind[0].report("fsync")
		perKind[1].report("fdatasync")
	}
	if *out == "" {
		return
	}
	la, _ := os.ReadFile("/proc/loadavg")
	line, err := json.Marshal(map[string]any{
		"target": *target, "scenario": fmt.Sprintf("%d B records at %d/s, %s, %s", *size, *rate, kind, *mode), "mode": *mode, "sync_kind": kind,
		"requests_per_s": *rate, "errors": 0, "send_lag_p99_ms": 0, "server_cpu_us_per_event": -1, "loadgen_cpu_cores": 0,
		"p50_ms": rs.p50, "p95_ms": rs.p95, "p99_ms": rs.p99, "p999_ms": rs.p999, "max_ms": rs.max, "mean_ms": rs.mean,
		"runq_p50_ms": rq.p50, "runq_p99_ms": rq.p99, "runq_p999_ms": rq.p999, "blocked_p50_ms": bl.p50, "blocked_p99_ms": bl.p99, "blocked_p999_ms": bl.p999,
		"dev_writes": dev.writes, "dev_write_mean_ms": dev.meanWrite(), "dev_flushes": dev.flushes, "dev_flush_mean_ms": dev.meanFlush(),
		"sync_p50_ms": ss.p50, "sync_p99_ms": ss.p99, "sync_p999_ms": ss.p999, "sync_max_ms": ss.max, "syncs": groups, "over_5ms_bound_pct": slowPct,
		"loadavg_start": strings.TrimSpace(string(la)),
	})
	if err != nil {
		log.Fatal(err)
	}
	o, err := os.OpenFile(*out, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		log.Fatal(err)
	}
	defer o.Close()
	if _, err := o.Write(append(line, '\n')); err != nil {
		log.Fatal(err)
	}
}

// prepare readies f, empty, for total bytes of records written in mode:
// allocated (keepsize, prealloc) or written and fsynced (overwrite).
func prepare(f *os.File, mode string, total int64, rec []byte) error {
	switch mode {
	case "keepsize":
		return fallocate(f, fallocKeepSize, total)
	case "prealloc":
		return fallocate(f, 0, total)
	case "overwrite":
		for off := int64(0); off < total; off += int64(len(rec)) {
			if _, err := f.WriteAt(rec, off); err != nil {
				return fmt.Errorf("prepare %s: %w", f.Name(), err)
			}
		}
		if err := f.Sync(); err != nil {
			return fmt.Errorf("prepare %s: %w", f.Name(), err)
		}
	}
	return nil
}

func fallocate(f *os.File, flags uint32, total int64) error {
	if err := syscall.Fallocate(int(f.Fd()), flags, 0, total); err != nil {
		return fmt.Errorf("fallocate %s: %w", f.Name(), err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("prepare %s: %w", f.Name(), err)
	}
	return nil
}

// sched is a thread's /proc schedstat: time on a CPU and waiting for one,
// and how many times it was switched in.
type sched struct {
	cpu, wait time.Duration
	switches  int64
	ok        bool
}

func readSched(f *os.File) sched {
	if f == nil {
		return sched{}
	}
	var buf [128]byte
	n, err := f.ReadAt(buf[:], 0)
	if n == 0 || err != nil && !errors.Is(err, io.EOF) {
		return sched{}
	}
	var cpu, wait, switches int64
	if _, err := fmt.Sscan(string(buf[:n]), &cpu, &wait, &switches); err != nil {
		return sched{}
	}
	return sched{cpu: time.Duration(cpu), wait: time.Duration(wait), switches: switches, ok: true}
}

// kindCosts are the costs of the syncs of one kind (-costs).
type kindCosts struct {
	durs, cpus, runqs, blocked []time.Duration
	switches                   int64
	dev                        devStat // summed over this kind's syncs
}

func (k *kindCosts) add(d time.Duration, s0, s1 sched, dev devStat) {
	k.durs = append(k.durs, d)
	if s0.ok && s1.ok {
		cpu, runq := s1.cpu-s0.cpu, s1.wait-s0.wait
		k.cpus = append(k.cpus, cpu)
		k.runqs = append(k.runqs, runq)
		k.blocked = append(k.blocked, max(0, d-runq-cpu))
		k.switches += s1.switches - s0.switches
	}
	if dev.ok {
		k.dev.writes += dev.writes
		k.dev.writeMs += dev.writeMs
		k.dev.flushes += dev.flushes
		k.dev.flushMs += dev.flushMs
	}
}

func (k *kindCosts) report(what string) {
	n := len(k.durs)
	if n == 0 {
		return
	}
	mean := func(d []time.Duration) float64 {
		var sum time.Duration
		for _, x := range d {
			sum += x
		}
		return float64(sum.Microseconds()) / 1000 / float64(max(1, len(d)))
	}
	fmt.Printf("%s: %d syncs; mean per sync: %.3f ms, CPU %.3f ms, waiting for a CPU %.3f ms, blocked %.3f ms, switched in %.2f times; device (every process) %.2f writes per sync\n",
		what, n, mean(k.durs), mean(k.cpus), mean(k.runqs), mean(k.blocked), float64(k.switches)/float64(n), float64(k.dev.writes)/float64(n))
	report("  "+what, k.durs)
	report("  cpu", k.cpus)
	report("  runq", k.runqs)
	report("  disk", k.blocked)
}

// devStat is the block device's counters (Documentation/block/stat.rst):
// writes completed and their milliseconds, flushes and theirs.
type devStat struct {
	writes, writeMs, flushes, flushMs uint64
	ok                                bool
}

func (d devStat) sub(o devStat) devStat {
	if !d.ok || !o.ok {
		return devStat{}
	}
	return devStat{d.writes - o.writes, d.writeMs - o.writeMs, d.flushes - o.flushes, d.flushMs - o.flushMs, true}
}

func (d devStat) meanWrite() float64 { return ratio(d.writeMs, d.writes) }
func (d devStat) meanFlush() float64 { return ratio(d.flushMs, d.flushes) }

func ratio(a, b uint64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// readDev reads the counters of the whole disk that holds dir.
func readDev(dir string) devStat {
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		return devStat{}
	}
	dev := uint64(st.Dev) // Linux's encoding (glibc's gnu_dev_major and gnu_dev_minor)
	maj := (dev>>8)&0xfff | (dev>>32)&^uint64(0xfff)
	minor := dev&0xff | (dev>>12)&^uint64(0xff)
	b, err := os.ReadFile(fmt.Sprintf("/sys/dev/block/%d:%d/stat", maj, minor))
	if err != nil {
		return devStat{}
	}
	f := strings.Fields(string(b))
	if len(f) < 17 {
		return devStat{}
	}
	n := func(i int) uint64 { v, _ := strconv.ParseUint(f[i], 10, 64); return v }
	return devStat{writes: n(4), writeMs: n(7), flushes: n(14), flushMs: n(15), ok: true}
}

// stats are percentiles and the mean of a distribution, in ms.
type stats struct{ p50, p95, p99, p999, max, mean float64 }

func report(what string, d []time.Duration) stats {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	q := func(p float64) float64 {
		i := int(p * float64(len(d)))
		if i >= len(d) {
			i = len(d) - 1
		}
		return float64(d[i].Microseconds()) / 1000
	}
	over := 0
	var sum time.Duration
	for _, x := range d {
		sum += x
		if x > 5*time.Millisecond {
			over++
		}
	}
	fmt.Printf("%-8s n=%d p50 %.2f ms  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f  over 5 ms %.3f%%\n",
		what, len(d), q(0.5), q(0.9), q(0.99), q(0.999), q(1), 100*float64(over)/float64(len(d)))
	return stats{p50: q(0.5), p95: q(0.95), p99: q(0.99), p999: q(0.999), max: q(1), mean: float64(sum.Microseconds()) / 1000 / float64(len(d))}
}

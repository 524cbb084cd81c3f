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
// Usage:
//
//	go run ./bench/fsyncfloor -dir /path/on/the/data/disk -rate 2000 -duration 20s -size 1080
//
// With -out it appends one JSON line, in the fields of loadgen's results
// (p50_ms ... max_ms, mean_ms, of the request distribution; sync_* of the
// sync calls), so that bench/latency.sh reports the disk's floor beside
// capstan and the null server.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

func main() {
	dir := flag.String("dir", os.TempDir(), "directory on the disk to measure (capstan's data_dir)")
	rate := flag.Int("rate", 2000, "records per second")
	dur := flag.Duration("duration", 20*time.Second, "measured duration")
	size := flag.Int("size", 1080, "bytes per record (a single-event segment of bench/loadgen's track body, JetStream's record header included, took 1,080 B in EVENTS' blocks)")
	data := flag.Bool("fdatasync", false, "fdatasync instead of fsync")
	out := flag.String("out", "", "append the JSON result line to this file")
	target := flag.String("target", "disk", "target name of the JSON result line")
	flag.Parse()
	if *rate <= 0 || *size <= 0 || *dur <= 0 {
		log.Fatal("rate, size and duration must be positive")
	}

	f, err := os.CreateTemp(*dir, "fsyncfloor-*.blk")
	if err != nil {
		log.Fatal(err)
	}
	name := f.Name()
	defer os.Remove(name)
	defer f.Close()

	sync := f.Sync
	if *data {
		sync = func() error { return syscall.Fdatasync(int(f.Fd())) }
	}
	rec := make([]byte, *size)
	for i := range rec {
		rec[i] = byte('a' + i%26)
	}

	n := int(dur.Seconds() * float64(*rate))
	interval := time.Second / time.Duration(*rate)
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
			if _, err := f.Write(rec); err != nil {
				log.Fatal(err)
			}
			next++
		}
		t0 := time.Now()
		if err := sync(); err != nil {
			log.Fatal(err)
		}
		end := time.Now()
		syncs = append(syncs, end.Sub(t0))
		groups++
		for i := first; i < next; i++ {
			reqs = append(reqs, end.Sub(start.Add(time.Duration(i)*interval)))
		}
	}
	kind := "fsync"
	if *data {
		kind = "fdatasync"
	}
	fmt.Printf("dir %s, %d records of %d B at %d/s, %s, %d syncs (%.2f records each)\n",
		filepath.Dir(name), n, *size, *rate, kind, groups, float64(n)/float64(groups))
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
	rs := report("request", reqs)
	if *out == "" {
		return
	}
	la, _ := os.ReadFile("/proc/loadavg")
	line, err := json.Marshal(map[string]any{
		"target": *target, "scenario": fmt.Sprintf("%d B records at %d/s, %s", *size, *rate, kind),
		"requests_per_s": *rate, "errors": 0, "send_lag_p99_ms": 0, "server_cpu_us_per_event": -1, "loadgen_cpu_cores": 0,
		"p50_ms": rs.p50, "p95_ms": rs.p95, "p99_ms": rs.p99, "p999_ms": rs.p999, "max_ms": rs.max, "mean_ms": rs.mean,
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

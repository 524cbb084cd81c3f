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
//     then syncs them all (an ideal group commit with one sync at a time).
//     This is the best any commit policy can give on this disk at this rate:
//     a record arriving during a sync waits for that sync and then for its own.
//
// Usage:
//
//	go run ./bench/fsyncfloor -dir /path/on/the/data/disk -rate 2000 -duration 20s -size 600
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"time"
)

func main() {
	dir := flag.String("dir", os.TempDir(), "directory on the disk to measure (capstan's data_dir)")
	rate := flag.Int("rate", 2000, "records per second")
	dur := flag.Duration("duration", 20*time.Second, "measured duration")
	size := flag.Int("size", 600, "bytes per record (a single-event segment with its JetStream header is 500-800)")
	data := flag.Bool("fdatasync", false, "fdatasync instead of fsync")
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
	report("sync", syncs)
	report("request", reqs)
}

func report(what string, d []time.Duration) {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	q := func(p float64) float64 {
		i := int(p * float64(len(d)))
		if i >= len(d) {
			i = len(d) - 1
		}
		return float64(d[i].Microseconds()) / 1000
	}
	over := 0
	for _, x := range d {
		if x > 5*time.Millisecond {
			over++
		}
	}
	fmt.Printf("%-8s n=%d p50 %.2f ms  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f  over 5 ms %.3f%%\n",
		what, len(d), q(0.5), q(0.9), q(0.99), q(0.999), q(1), 100*float64(over)/float64(len(d)))
}

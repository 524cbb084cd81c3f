//go:build unix

// Command warmmem touches memory the machine may never have used, then
// frees it, so that a benchmark run after it does not pay for that first
// touch.
//
// On a fresh virtual machine whose memory the host hands out lazily (a
// Firecracker VM with a balloon, here), the first write to a guest page the
// VM has never used costs ~11 µs (2.6-2.9 CPU-ns per byte), counted as
// system time of whichever thread touches it first; once used, a page costs
// 0.3 ns/byte. A benchmark in such a VM's first hour pays it for every page
// its page cache and heap grow into: capstan's batch ingest measured 0.5 of
// its 4.1 CPU-µs per event in JetStream's and pebble's writes alone
// (bench/results/kwrite-2026-12-07-s19.md). warmmem allocates -mb MiB in
// chunks, writes a byte to every page, and reports each chunk's cost, so
// the output also says whether the machine was cold; memory freed by a
// process stays warm for the next one.
//
// Usage:
//
//	go run ./bench/warmmem -mb 16384
//
// Leave room for the rest of the machine: -mb defaults to 3/4 of
// MemAvailable.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const chunk = 256 << 20

func main() {
	mb := flag.Int("mb", 0, "MiB to touch (0: 3/4 of MemAvailable)")
	flag.Parse()
	if *mb <= 0 {
		avail, err := memAvailable()
		if err != nil {
			log.Fatalf("warmmem: %v (give -mb)", err)
		}
		*mb = int(avail * 3 / 4 >> 20)
	}
	var chunks [][]byte
	defer func() {
		for _, c := range chunks {
			_ = syscall.Munmap(c)
		}
	}()
	page := os.Getpagesize()
	var cold, total time.Duration
	for left := int64(*mb) << 20; left > 0; left -= chunk {
		n := int(min(left, chunk))
		// mmap, not make: the memory goes back to the kernel at exit
		// without waiting for Go's scavenger, and is not cleared twice.
		c, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
		if err != nil {
			log.Fatalf("warmmem: map %d MiB after %d: %v", n>>20, len(chunks)*chunk>>20, err)
		}
		chunks = append(chunks, c)
		start := cpuTime()
		for i := 0; i < n; i += page {
			c[i] = 1
		}
		d := cpuTime() - start
		total += d
		if perByte := float64(d) / float64(n); perByte > 1.5 {
			cold += d
		}
	}
	fmt.Printf("warmmem: touched %d MiB in %.1f CPU-s (%.2f ns/byte); %.1f CPU-s of it in chunks over 1.5 ns/byte (memory the machine had not used)\n",
		*mb, total.Seconds(), float64(total)/float64(int64(*mb)<<20), cold.Seconds())
}

// cpuTime is the process's CPU time, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		log.Fatalf("warmmem: getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// memAvailable reads MemAvailable from /proc/meminfo, in bytes.
func memAvailable() (int64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "MemAvailable:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("MemAvailable: %w", err)
			}
			return kb << 10, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no MemAvailable in /proc/meminfo")
}

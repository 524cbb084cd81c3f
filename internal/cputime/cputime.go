//go:build linux

// Package cputime reads what the benchmarks report per event or per key:
// the CPU time of this process and of the calling thread, and the calling
// thread's reads. It measures a benchmark's whole cost, compactions and
// other background threads included (Process), or one thread's alone
// (Thread, ThreadIO, on a goroutine locked to its thread). Only tests
// import it.
package cputime

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"syscall"
	"time"
)

// rusageThread is Linux's RUSAGE_THREAD, which package syscall does not
// name.
const rusageThread = 1

// Process returns the user and system CPU time this process used so far,
// all its threads; 0 if it cannot be read.
func Process() time.Duration { return rusage(syscall.RUSAGE_SELF) }

// Thread returns the user and system CPU time the calling thread used so
// far; 0 if it cannot be read. Call it from a goroutine locked to its
// thread (runtime.LockOSThread).
func Thread() time.Duration { return rusage(rusageThread) }

func rusage(who int) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ThreadIO returns the calling thread's bytes read so far: rchar (from the
// page cache or the disk) and read_bytes (from the disk), from
// /proc/thread-self/io; -1 for a figure it cannot read.
func ThreadIO() (rchar, readBytes int64) {
	rchar, readBytes = -1, -1
	b, err := os.ReadFile("/proc/thread-self/io")
	if err != nil {
		return rchar, readBytes
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, v, _ := bytes.Cut(sc.Bytes(), []byte(": "))
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			continue
		}
		switch string(name) {
		case "rchar":
			rchar = n
		case "read_bytes":
			readBytes = n
		}
	}
	return rchar, readBytes
}

//go:build linux

package cputime

import (
	"os"
	"runtime"
	"testing"
)

// TestReadings: the process's and the thread's CPU time grow with work
// done on the thread, and reading a file counts in the thread's rchar.
func TestReadings(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p0, t0 := Process(), Thread()
	r0, _ := ThreadIO()
	if p0 <= 0 || t0 <= 0 || r0 < 0 {
		t.Fatalf("Process %v, Thread %v, rchar %d: want known figures", p0, t0, r0)
	}
	for x := 0; Thread()-t0 < 2e6; x++ { // 2 ms of this thread's CPU
		_ = x * x
	}
	if _, err := os.ReadFile("/proc/self/maps"); err != nil {
		t.Fatal(err)
	}
	r1, _ := ThreadIO()
	if p1, t1 := Process(), Thread(); p1 <= p0 || t1 <= t0 || t1-t0 > p1-p0+1e6 {
		t.Errorf("after 2 ms on this thread: Process %v -> %v, Thread %v -> %v", p0, p1, t0, t1)
	}
	if r1 <= r0 {
		t.Errorf("rchar %d -> %d after reading a file", r0, r1)
	}
}

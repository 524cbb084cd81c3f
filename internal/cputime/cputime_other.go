//go:build !linux

// Package cputime reads what the benchmarks report per event or per key:
// the CPU time of this process and of the calling thread, and the calling
// thread's reads. Only Linux has them; elsewhere every figure is unknown.
// Only tests import it.
package cputime

import "time"

// Process returns 0: unknown on this system.
func Process() time.Duration { return 0 }

// Thread returns 0: unknown on this system.
func Thread() time.Duration { return 0 }

// ThreadIO returns -1, -1: unknown on this system.
func ThreadIO() (rchar, readBytes int64) { return -1, -1 }

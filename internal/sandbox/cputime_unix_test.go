//go:build unix

package sandbox

import "syscall"

// processCPU returns the user and system CPU time of the process so far, in
// ns, and whether it is known.
func processCPU() (float64, bool) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0, false
	}
	return float64(ru.Utime.Nano() + ru.Stime.Nano()), true
}

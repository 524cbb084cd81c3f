//go:build !unix

package sandbox

// processCPU reports that the process CPU time is unknown here.
func processCPU() (float64, bool) { return 0, false }

package main

import (
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/nats-io/nats-server/v2/server/sysmem"
)

// gcPercent is the GC target capstan runs with unless GOGC is set: the heap
// may grow to five times what is live before a collection. Memory is cheap
// next to CPU on a gateway (measured: GC was about a quarter of ingest CPU at
// Go's default of 100).
const gcPercent = 400

// memLimitShare is the part of the memory available to the process that
// the Go runtime's soft limit is set to when GOMEMLIMIT is not set.
const memLimitShare = 0.75

// tuneGC sets the garbage collector for a long-running gateway, leaving
// alone what the operator set with GOGC or GOMEMLIMIT:
//
//   - GOGC 400 (gcPercent) trades memory for CPU;
//   - a soft memory limit of 3/4 of the memory this process may use (its
//     cgroup's limit in a container, else the machine's RAM) takes that
//     trade back as the heap nears it: the runtime then collects as often as
//     needed to stay under the limit instead of letting a large live heap
//     (JetStream holds the de-duplication window's ids in memory) grow five
//     times over and be killed for it. Go's default is no limit.
//
// The cgroup read is /sys/fs/cgroup's own: the container's under cgroup v2
// with a private cgroup namespace (Docker's and Kubernetes' default).
func tuneGC(log *slog.Logger) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	avail := availableMemory("/sys/fs/cgroup", sysmem.Memory())
	if avail <= 0 {
		return
	}
	limit := int64(float64(avail) * memLimitShare)
	debug.SetMemoryLimit(limit)
	log.Debug("Go soft memory limit set", "bytes", limit, "of", avail)
}

// availableMemory returns the memory this process may use, in bytes: the
// limit of its cgroup (v2 memory.max or v1 memory.limit_in_bytes under
// cgroupRoot) when there is one below the machine's, else total (the
// machine's RAM; 0 when unknown).
func availableMemory(cgroupRoot string, total int64) int64 {
	for _, f := range []string{cgroupRoot + "/memory.max", cgroupRoot + "/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		// "max" (v2) and v1's page-rounded MaxInt64 mean no limit.
		if err != nil || n <= 0 || n >= math.MaxInt64/2 || total > 0 && n > total {
			break
		}
		return n
	}
	return total
}

package main

import (
	"bufio"
	"bytes"
	"log/slog"
	"math"
	"os"
	"path"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/nats-io/nats-server/v2/server/sysmem"

	"github.com/capstan-gw/capstan/internal/config"
	"github.com/capstan-gw/capstan/internal/delivery"
	"github.com/capstan-gw/capstan/internal/identity"
)

// gcPercent is the GC target capstan runs with unless GOGC is set: the heap
// may grow to five times what is live before a collection. Memory is cheap
// next to CPU on a gateway (measured: GC was about a quarter of ingest CPU at
// Go's default of 100).
const gcPercent = 400

// memLimitShare is the part of the memory left to the Go heap (what the
// process may use less the local stores' own memory) that the Go runtime's
// soft limit is set to when GOMEMLIMIT is not set. The rest covers what the
// runtime does not count: the binary, fragmentation, cgo allocations other
// than the stores' caches.
const memLimitShare = 0.75

// minMemLimit is the lowest soft limit tuneGC sets, however little memory
// the stores leave: under it the collector would run all the time.
const minMemLimit = 64 << 20

// tuneGC sets the garbage collector for a long-running gateway, leaving
// alone what the operator set with GOGC or GOMEMLIMIT:
//
//   - GOGC 400 (gcPercent) trades memory for CPU;
//   - a soft memory limit takes that trade back as the heap nears it: the
//     runtime then collects as often as needed to stay under the limit
//     instead of letting the heap grow five times over what is live and be
//     killed for it. Go's default is no limit. The limit is 3/4 of the
//     memory this process may use (its cgroup's limit in a container, else
//     the machine's RAM) less what cfg's local pebble stores may take
//     outside the Go heap (offHeap): with cgo their caches and memtables
//     are allocated with C's malloc, which the soft limit neither sees nor
//     bounds. In a 1 GiB container with the default stores (304 MiB) that
//     is 540 MiB with cgo, 768 MiB without (the release binaries and the
//     container image, where pebble's memory is in the Go heap).
func tuneGC(cfg *config.Config, log *slog.Logger) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	avail := availableMemory("/sys/fs/cgroup", "/proc/self/cgroup", sysmem.Memory())
	if avail <= 0 {
		return
	}
	stores := offHeap(cfg, storesOffHeap)
	limit := memLimit(avail, stores)
	if limit == minMemLimit {
		log.Warn("the local stores' memory leaves little to the Go heap; lower engine.dedup.memory_bytes or allow capstan more memory",
			"available_bytes", avail, "stores_bytes", stores, "go_limit_bytes", limit)
	}
	debug.SetMemoryLimit(limit)
	log.Debug("Go soft memory limit set", "bytes", limit, "of", avail, "stores", stores)
}

// memLimit is the Go soft memory limit for a process that may use avail
// bytes, of which the local stores take stores outside the Go heap.
func memLimit(avail, stores int64) int64 {
	return max(int64(float64(avail-stores)*memLimitShare), minMemLimit)
}

// offHeap returns the memory cfg's local stores take outside the Go heap:
// storeMemory when pebble allocates with C's malloc (cgo), else none.
func offHeap(cfg *config.Config, cgo bool) int64 {
	if !cgo {
		return 0
	}
	return storeMemory(cfg)
}

// storeMemory returns the memory cfg's local pebble stores may take outside
// the Go heap: the de-duplication index's engine.dedup.memory_bytes, the
// local identity store's identity.memory_bytes and the local eventId
// guard's engine.guard_memory_bytes (zero: their defaults). It counts each
// store's whole budget, a little more than their C allocations (their
// filters are in the Go heap and grow with their keys up to their share of
// the budget).
func storeMemory(cfg *config.Config) int64 {
	n := cfg.Engine.Dedup.MemoryBytes
	if cfg.IdentityLocal() {
		if m := cfg.Identity.MemoryBytes; m > 0 {
			n += m
		} else {
			n += identity.DefaultLocalMemory
		}
	}
	if cfg.GuardLocal() && len(cfg.Destinations) > 0 {
		if m := cfg.Engine.GuardMemoryBytes; m > 0 {
			n += m
		} else {
			n += delivery.DefaultGuardMemory
		}
	}
	return n
}

// availableMemory returns the memory this process may use, in bytes: the
// lowest memory limit of its cgroup and the cgroup's ancestors (v2
// memory.max, v1 memory.limit_in_bytes; cgroupFile, /proc/self/cgroup,
// names the process's cgroup under cgroupRoot) when one is below the
// machine's RAM, else total (0 when unknown).
//
// Under a private cgroup namespace (Docker's and Kubernetes' default with
// cgroup v2) the process's cgroup is cgroupRoot itself; without one (cgroup
// v1 hosts, or a process placed in a cgroup by hand) it is a directory
// below it, and its parents' limits apply too.
func availableMemory(cgroupRoot, cgroupFile string, total int64) int64 {
	avail := total
	for _, dir := range cgroupDirs(cgroupRoot, cgroupFile) {
		if n, ok := readLimit(dir); ok && (avail <= 0 || n < avail) {
			avail = n
		}
	}
	return avail
}

// cgroupDirs lists the directories whose memory limit bounds this process:
// its cgroup's, for cgroup v2 and the v1 memory controller, and each one's
// ancestors up to cgroupRoot; cgroupRoot's own files always.
func cgroupDirs(cgroupRoot, cgroupFile string) []string {
	dirs := []string{cgroupRoot, cgroupRoot + "/memory"}
	b, err := os.ReadFile(cgroupFile)
	if err != nil {
		return dirs
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		// hierarchy-ID:controller-list:cgroup-path
		id, rest, _ := strings.Cut(sc.Text(), ":")
		controllers, p, ok := strings.Cut(rest, ":")
		var base string
		switch {
		case !ok || !strings.HasPrefix(p, "/"):
			continue
		case id == "0" && controllers == "":
			base = cgroupRoot
		case isMemoryController(controllers):
			base = cgroupRoot + "/memory"
		default:
			continue
		}
		for p = path.Clean(p); p != "/"; p = path.Dir(p) {
			dirs = append(dirs, base+p)
		}
	}
	return dirs
}

func isMemoryController(list string) bool {
	for c := range strings.SplitSeq(list, ",") {
		if c == "memory" {
			return true
		}
	}
	return false
}

// readLimit reads the memory limit in dir: v2's memory.max or v1's
// memory.limit_in_bytes. "max" (v2) and v1's page-rounded MaxInt64 mean no
// limit (ok false).
func readLimit(dir string) (int64, bool) {
	for _, f := range []string{dir + "/memory.max", dir + "/memory.limit_in_bytes"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil || n <= 0 || n >= math.MaxInt64/2 {
			return 0, false
		}
		return n, true
	}
	return 0, false
}

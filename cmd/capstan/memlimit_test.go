package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/capstan-gw/capstan/internal/config"
	"github.com/capstan-gw/capstan/internal/delivery"
	"github.com/capstan-gw/capstan/internal/identity"
)

func TestAvailableMemory(t *testing.T) {
	const gib = int64(1) << 30
	for _, tc := range []struct {
		name  string
		files map[string]string // under the cgroup root
		total int64
		want  int64
	}{
		{"no cgroup files: the machine's RAM", nil, 8 * gib, 8 * gib},
		{"cgroup v2 limit", map[string]string{"memory.max": "2147483648\n"}, 8 * gib, 2 * gib},
		{"cgroup v2 without a limit", map[string]string{"memory.max": "max\n"}, 8 * gib, 8 * gib},
		{"cgroup v1 limit", map[string]string{"memory/memory.limit_in_bytes": "1073741824\n"}, 8 * gib, gib},
		{"cgroup v1 without a limit", map[string]string{"memory/memory.limit_in_bytes": "9223372036854771712\n"}, 8 * gib, 8 * gib},
		{"a limit above the machine's RAM", map[string]string{"memory.max": "17179869184"}, 8 * gib, 8 * gib},
		{"garbage", map[string]string{"memory.max": "lots"}, 8 * gib, 8 * gib},
		{"nothing known", nil, 0, 0},
		{"a limit when the RAM is unknown", map[string]string{"memory.max": "1073741824"}, 0, gib},
		{"cgroup v1, the process in a cgroup below the root",
			map[string]string{"self": "4:memory:/jobs/capstan\n1:cpu:/\n", "memory/jobs/capstan/memory.limit_in_bytes": "1073741824\n"}, 8 * gib, gib},
		{"cgroup v1, a parent's limit lower than the process's cgroup's",
			map[string]string{"self": "9:cpuacct,memory:/jobs/capstan\n", "memory/jobs/memory.limit_in_bytes": "536870912",
				"memory/jobs/capstan/memory.limit_in_bytes": "9223372036854771712"}, 8 * gib, gib / 2},
		{"cgroup v2, the process in a cgroup below the root",
			map[string]string{"self": "0::/system.slice/capstan.service\n", "system.slice/capstan.service/memory.max": "2147483648\n",
				"system.slice/memory.max": "max\n"}, 8 * gib, 2 * gib},
		{"cgroup v2 namespace: the root is the process's cgroup",
			map[string]string{"self": "0::/\n", "memory.max": "1073741824\n"}, 8 * gib, gib},
		{"a cgroup path that does not exist under the root", map[string]string{"self": "0::/elsewhere\n"}, 8 * gib, 8 * gib},
		{"another controller's cgroup is not a memory limit",
			map[string]string{"self": "3:cpu:/jobs\n", "memory/jobs/memory.limit_in_bytes": "1073741824"}, 8 * gib, 8 * gib},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for name, data := range tc.files {
				p := filepath.Join(root, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if got := availableMemory(root, filepath.Join(root, "self"), tc.total); got != tc.want {
				t.Errorf("availableMemory = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestMemLimit(t *testing.T) {
	const mib = int64(1) << 20
	for _, tc := range []struct {
		avail, stores, want int64
	}{
		{1024 * mib, 304 * mib, 540 * mib}, // a 1 GiB container, default stores
		{1024 * mib, 0, 768 * mib},
		{24 * 1024 * mib, 304 * mib, 18204 * mib},
		{256 * mib, 304 * mib, minMemLimit}, // the stores alone exceed the memory
	} {
		if got := memLimit(tc.avail, tc.stores); got != tc.want {
			t.Errorf("memLimit(%d MiB, %d MiB) = %.1f MiB, want %d MiB", tc.avail/mib, tc.stores/mib, float64(got)/float64(mib), tc.want/mib)
		}
	}
}

func TestStoreMemory(t *testing.T) {
	const mib = int64(1) << 20
	if config.DefaultGuardMemory != delivery.DefaultGuardMemory || config.DefaultIdentityMemory != identity.DefaultLocalMemory {
		t.Errorf("config's defaults (guard %d, identity %d) differ from the stores' (%d, %d)",
			config.DefaultGuardMemory, config.DefaultIdentityMemory, delivery.DefaultGuardMemory, identity.DefaultLocalMemory)
	}
	cfg := &config.Config{}
	cfg.Engine.Dedup.MemoryBytes = config.DefaultDedupMemory
	if got, want := storeMemory(cfg), int64(config.DefaultDedupMemory+identity.DefaultLocalMemory); got != want {
		t.Errorf("embedded engine, no destination: %d MiB, want %d MiB", got/mib, want/mib)
	}
	cfg.Destinations = make([]config.Destination, 1)
	if got, want := storeMemory(cfg), int64(304*mib); got != want {
		t.Errorf("embedded engine, a destination: %d MiB, want %d MiB (dedup, identity, guard)", got/mib, want/mib)
	}
	cfg.Identity.MemoryBytes = 128 * mib
	if got, want := storeMemory(cfg), int64(400*mib); got != want {
		t.Errorf("identity.memory_bytes 128 MiB: %d MiB, want %d MiB", got/mib, want/mib)
	}
	cfg.Engine.GuardMemoryBytes = 64 * mib
	if got, want := storeMemory(cfg), int64(448*mib); got != want {
		t.Errorf("engine.guard_memory_bytes 64 MiB: %d MiB, want %d MiB", got/mib, want/mib)
	}
	cfg.Engine.NatsURL = "nats://127.0.0.1:4222"
	if got, want := storeMemory(cfg), int64(config.DefaultDedupMemory); got != want {
		t.Errorf("external engine: %d MiB, want %d MiB (identity and guard in JetStream)", got/mib, want/mib)
	}
}

// TestOffHeap checks that the stores' memory is left out of the Go soft
// limit only where pebble allocates it outside the Go heap (cgo): without
// cgo it is Go memory, already under the limit, and subtracting it again
// gave a 1 GiB container's heap 540 MiB instead of 768.
func TestOffHeap(t *testing.T) {
	const mib = int64(1) << 20
	cfg := &config.Config{}
	cfg.Engine.Dedup.MemoryBytes = config.DefaultDedupMemory
	cfg.Destinations = make([]config.Destination, 1)
	if got := offHeap(cfg, true); got != storeMemory(cfg) {
		t.Errorf("with cgo: %d MiB off the heap, want the stores' %d MiB", got/mib, storeMemory(cfg)/mib)
	}
	if got := offHeap(cfg, false); got != 0 {
		t.Errorf("without cgo: %d MiB off the heap, want none", got/mib)
	}
	if got, want := memLimit(1<<30, offHeap(cfg, false)), int64(768*mib); got != want {
		t.Errorf("1 GiB without cgo: limit %d MiB, want %d MiB", got/mib, want/mib)
	}
}

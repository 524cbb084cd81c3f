package localdb

import (
	"encoding/binary"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/internal/cputime"
	"github.com/cockroachdb/pebble/v2"
)

// BenchmarkChurn measures a store whose keys expire, as the identity
// store's and the guard's do: in each of CAPSTAN_CHURN_ROUNDS rounds
// (default 16) it creates CAPSTAN_CHURN_KEYS new keys (default 100,000;
// batches of 100, each key probed first, as the creates of new keys do)
// and then sweeps the keys of the round CAPSTAN_CHURN_LIVE rounds back
// (default 2), so that the store holds 2-3 rounds of keys while many
// more were written, in a store of CAPSTAN_CHURN_MEM bytes (default 32
// MiB) and a filter of CAPSTAN_CHURN_FILTER bytes (default 512 KiB:
// 419,430 keys, filled after 4-5 rounds). CAPSTAN_CHURN_REBUILD=0 turns
// the filter's rebuilds off (the store as it was: the filter holds every
// key written since Open). It runs once, whatever b.N:
//
//	go test -run '^$' -bench Churn -benchtime 1x ./internal/localdb
//
// It reports the creates' CPU per key over the second half of the rounds
// (the process's: compactions, sweeps and rebuilds included), then, at
// the end, the cost per key of probing 100,000 absent keys on one locked
// thread (probeAbsent): CPU, pebble's bloom filter tests, block cache
// misses and the share the filter answered for; and the rebuilds.
func BenchmarkChurn(b *testing.B) {
	rounds := int(envKnob(b, "CAPSTAN_CHURN_ROUNDS", 16))
	per := int(envKnob(b, "CAPSTAN_CHURN_KEYS", 100_000))
	live := uint64(envKnob(b, "CAPSTAN_CHURN_LIVE", 2))
	mem := envKnob(b, "CAPSTAN_CHURN_MEM", 32<<20)
	filter := envKnob(b, "CAPSTAN_CHURN_FILTER", 512<<10)
	rebuild := envKnob(b, "CAPSTAN_CHURN_REBUILD", 1) != 0
	d, err := Open(Options{Dir: b.TempDir(), MemoryBytes: mem, What: "bench store", FilterBytes: filter, noRebuild: !rebuild})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	waitReady(b, d.Filter())
	rnd := rand.NewChaCha8([32]byte{})
	val := make([]byte, 64)
	const batch = 100
	keys := make([][]byte, batch)
	var cpu time.Duration
	created := 0
	for r := range uint64(rounds) {
		cpu0 := cputime.Process()
		for i := 0; i < per; i += batch {
			p, err := d.NewProbe()
			if err != nil {
				b.Fatal(err)
			}
			for j := range keys {
				keys[j] = hashKey("r"+strconv.FormatUint(r, 10)+"-", i+j)
			}
			for _, j := range Order(keys) {
				if _, ok, err := p.Get(keys[j]); ok || err != nil {
					b.Fatalf("probe of a new key: %v, %v", ok, err)
				}
			}
			if err := p.Close(); err != nil {
				b.Fatal(err)
			}
			binary.BigEndian.PutUint64(val, r) // the round: what expires
			setRandomAfter(b, d, rnd, val, 8, keys)
		}
		if r >= live {
			n, err := d.Sweep(nil, nil, func(_, v []byte) bool { return len(v) >= 8 && binary.BigEndian.Uint64(v) <= r-live },
				func([]byte) *sync.Mutex { return new(sync.Mutex) })
			if err != nil || n != per {
				b.Fatalf("sweep of round %d: %d, %v; want %d", r-live, n, err, per)
			}
		}
		if r >= uint64(rounds)/2 {
			cpu += cputime.Process() - cpu0
			created += per
		}
	}
	// A rebuild cued by the last sweep ends first (it takes a quarter of a
	// core at most: the probes below measure the filter it leaves).
	time.Sleep(time.Second)
	for deadline := time.Now().Add(time.Minute); d.Filter().next.Load() != nil && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	pf := probeAbsent(b, d, -1)
	filterTests := testsPerProbe(b, d)
	b.Logf("rebuilds %d, filter %d bytes; creates %.2f CPU-µs/key; probe %.2f CPU-µs/key, %.1f%% answered by the filter, %.3f bloom filter tests/key, %.3f cache misses/key; %s",
		d.rebuilds.Load(), d.Filter().Bytes(), float64(cpu.Microseconds())/float64(created), pf.cpuMicros, 100*pf.filtered, filterTests, pf.misses, levels(d))
	b.ReportMetric(float64(cpu.Microseconds())/float64(created), "create-CPU-µs/key")
	b.ReportMetric(pf.cpuMicros, "probe-CPU-µs/key")
	b.ReportMetric(100*pf.filtered, "probe-filtered-%")
	b.ReportMetric(filterTests, "probe-bloom-tests/key")
	b.ReportMetric(pf.misses, "probe-misses/key")
	b.ReportMetric(float64(d.rebuilds.Load()), "rebuilds")
}

// testsPerProbe probes 10,000 absent keys and returns pebble's bloom
// filter tests (hits and misses) per key: the look-ups the store's filter
// did not spare.
func testsPerProbe(b *testing.B, d *DB) float64 {
	const n = 10_000
	before := d.Metrics().Filter
	p, err := d.NewProbe()
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	for i := range n {
		if _, ok, err := p.Get(hashKey("tests-", i)); ok || err != nil {
			b.Fatalf("probe of an absent key: %v, %v", ok, err)
		}
	}
	after := d.Metrics().Filter
	return float64(after.Hits+after.Misses-before.Hits-before.Misses) / n
}

// setRandomAfter writes keys with val, random after its first keep bytes,
// as the store's users do (Added first).
func setRandomAfter(b *testing.B, d *DB, rnd *rand.ChaCha8, val []byte, keep int, keys [][]byte) {
	b.Helper()
	f := d.Filter()
	defer f.EndAdds(f.BeginAdds())
	batch := d.NewBatch()
	defer batch.Close()
	for _, k := range keys {
		f.Add(k)
		rnd.Read(val[keep:])
		if err := batch.Set(k, val, nil); err != nil {
			b.Fatal(err)
		}
	}
	if err := batch.Commit(pebble.NoSync); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkFilterRebuildScan measures a rebuild's scan: CPU per key read
// (the calling thread's: the rebuild runs in it, without pauses) of a
// store of CAPSTAN_REBUILD_KEYS keys (default 1,000,000), compacted.
func BenchmarkFilterRebuildScan(b *testing.B) {
	n := int(envKnob(b, "CAPSTAN_REBUILD_KEYS", 1_000_000))
	d, err := Open(Options{Dir: b.TempDir(), MemoryBytes: 32 << 20, What: "bench store", FilterBytes: 16 << 20, rebuildShare: 1, noRebuild: true})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	f := d.Filter()
	waitReady(b, f)
	rnd := rand.NewChaCha8([32]byte{})
	val := make([]byte, 64)
	keys := make([][]byte, 1000)
	for i := 0; i < n; i += len(keys) {
		for j := range keys {
			keys[j] = hashKey("s", i+j)
		}
		setRandom(b, d, rnd, val, keys)
	}
	if err := d.Compact(b.Context(), []byte{0}, []byte{0xff}, true); err != nil {
		b.Fatal(err)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ResetTimer()
	var cpu time.Duration
	read := 0
	for range b.N {
		cpu0 := cputime.Thread()
		m, err := d.rebuild(f)
		if err != nil || m < n {
			b.Fatalf("rebuild: %d, %v; want %d keys", m, err, n)
		}
		cpu += cputime.Thread() - cpu0
		read += m
	}
	b.ReportMetric(float64(cpu.Nanoseconds())/1000/float64(read), "scan-CPU-µs/key")
}

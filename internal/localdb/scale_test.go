package localdb

import (
	"bytes"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/internal/cputime"
)

// BenchmarkScale grows a store of hashed keys, as the identity store's
// creates of new visitors grow it (batches of 100, each key probed first),
// to CAPSTAN_SCALE_KEYS keys (default 1,000,000) with random values of
// CAPSTAN_SCALE_VALUE bytes (default 64: 20 million keys take ~2 GB of
// disk), in a store of CAPSTAN_SCALE_MEM bytes of memory (default the
// identity store's 32 MiB) and a filter of absent keys of
// CAPSTAN_SCALE_FILTER bytes (default 4 MiB). It runs once, whatever b.N:
//
//	CAPSTAN_SCALE_KEYS=20000000 go test -run '^$' -bench Scale -benchtime 1x -v ./internal/localdb
//
// Every CAPSTAN_SCALE_STEP keys (default 1,000,000) it logs the growth's
// cost per key since the last step (the process's CPU, the compactions'
// included), then probes 100,000 keys that are absent, in batches of 100
// in Order, as the creates of new keys do, on one locked thread, and logs
// that thread's cost per key: CPU, bytes read (rchar: from the page cache
// or the disk) and from the disk (read_bytes), block cache misses, and the
// share of keys the filter of absent keys answered for. The last step's
// probe figures are reported as metrics. Run it in a small memory cgroup
// to see the disk reads of a small container, whose page cache is small.
func BenchmarkScale(b *testing.B) {
	total := envKnob(b, "CAPSTAN_SCALE_KEYS", 1_000_000)
	step := envKnob(b, "CAPSTAN_SCALE_STEP", 1_000_000)
	valSize := envKnob(b, "CAPSTAN_SCALE_VALUE", 64)
	mem := envKnob(b, "CAPSTAN_SCALE_MEM", 32<<20)
	filter := envKnob(b, "CAPSTAN_SCALE_FILTER", 4<<20)
	d, err := Open(Options{Dir: b.TempDir(), MemoryBytes: mem, What: "bench store", FilterBytes: filter})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	for !d.Filter().Ready() && filter > 0 {
		time.Sleep(time.Millisecond)
	}
	rnd := rand.NewChaCha8([32]byte{})
	val := make([]byte, valSize)
	const per = 100
	keys := make([][]byte, per)
	var last probeFigures
	cpu0, wall0 := cputime.Process(), time.Now()
	for i := int64(0); i < total; {
		n := min(per, total-i)
		p, err := d.NewProbe()
		if err != nil {
			b.Fatal(err)
		}
		for j := range n {
			keys[j] = hashKey("g", int(i+j))
			if _, ok, err := p.Get(keys[j]); ok || err != nil {
				b.Fatalf("probe of a new key: %v, %v", ok, err)
			}
		}
		if err := p.Close(); err != nil {
			b.Fatal(err)
		}
		setRandom(b, d, rnd, val, keys[:n])
		if i += n; i%step == 0 || i == total {
			cpu := cputime.Process() - cpu0
			b.Logf("grown to %d keys: %.1f CPU-µs/key, %.1f s wall for the last %d", i, float64(cpu.Microseconds())/float64(step),
				time.Since(wall0).Seconds(), step)
			last = probeAbsent(b, d, i)
			b.Logf("  probe at %d keys: %.2f CPU-µs/key, %.0f rchar/key, %.0f read_bytes/key, %.3f cache misses/key, %.1f%% answered by the filter; %s",
				i, last.cpuMicros, last.rchar, last.readBytes, last.misses, 100*last.filtered, levels(d))
			cpu0, wall0 = cputime.Process(), time.Now()
		}
	}
	b.ReportMetric(last.cpuMicros, "probe-CPU-µs/key")
	b.ReportMetric(last.rchar, "probe-rchar/key")
	b.ReportMetric(last.readBytes, "probe-read_bytes/key")
	b.ReportMetric(last.misses, "probe-misses/key")
}

// probeFigures is the cost per key of probing absent keys.
type probeFigures struct {
	cpuMicros, rchar, readBytes, misses, filtered float64
}

// probeAbsent probes 100,000 absent keys on one locked thread and returns
// that thread's cost per key.
func probeAbsent(b *testing.B, d *DB, seed int64) probeFigures {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	const n, per = 100_000, 100
	keys := make([][]byte, per)
	misses0 := d.Metrics().BlockCache.Misses
	cpu0 := cputime.Thread()
	rchar0, read0 := cputime.ThreadIO()
	filtered := 0
	for i := 0; i < n; i += per {
		for j := range keys {
			keys[j] = hashKey("absent"+strconv.FormatInt(seed, 10)+"-", i+j)
		}
		p, err := d.NewProbe()
		if err != nil {
			b.Fatal(err)
		}
		for _, j := range Order(keys) {
			if d.Filter().Absent(keys[j]) {
				filtered++
			}
			if _, ok, err := p.Get(keys[j]); ok || err != nil {
				b.Fatalf("probe of an absent key: %v, %v", ok, err)
			}
		}
		if err := p.Close(); err != nil {
			b.Fatal(err)
		}
	}
	cpu := cputime.Thread() - cpu0
	rchar, read := cputime.ThreadIO()
	return probeFigures{
		cpuMicros: float64(cpu.Microseconds()) / n,
		rchar:     float64(rchar-rchar0) / n,
		readBytes: float64(read-read0) / n,
		misses:    float64(d.Metrics().BlockCache.Misses-misses0) / n,
		filtered:  float64(filtered) / n,
	}
}

// levels describes the store's tables: per level, count and average size.
func levels(d *DB) string {
	m := d.Metrics()
	var buf bytes.Buffer
	for i, l := range m.Levels {
		if l.TablesCount > 0 {
			buf.WriteString("L" + strconv.Itoa(i) + ":" + strconv.FormatInt(l.TablesCount, 10) + "x" +
				strconv.FormatFloat(float64(l.AggregateSize())/float64(l.TablesCount)/(1<<20), 'f', 1, 64) + "MB ")
		}
	}
	buf.WriteString("cache " + strconv.FormatInt(m.BlockCache.Size>>20, 10) + "MB")
	return buf.String()
}

// envKnob is the benchmarks' integer knob: the environment variable name
// parsed, or def when it is unset; a value that does not parse fails b.
func envKnob(b *testing.B, name string, def int64) int64 {
	b.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		b.Fatalf("%s: %v", name, err)
	}
	return n
}

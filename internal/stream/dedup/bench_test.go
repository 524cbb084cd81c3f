package dedup

import (
	"encoding/binary"
	"flag"
	"fmt"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/internal/cputime"
)

// checkKeys is the size of BenchmarkCheck's index: the default is quick;
// millions (-dedup.keys 3000000) give the store several levels of tables,
// as in production.
var checkKeys = flag.Int("dedup.keys", 500_000, "keys in BenchmarkCheck's index")

func BenchmarkHashKey(b *testing.B) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	b.ReportAllocs()
	for b.Loop() {
		HashKey(secret, "web", "3f1c2a9e-7b4d-4e8a-9c1f-2d6b8e0a5c71")
	}
}

func BenchmarkHasher(b *testing.B) {
	h := NewHasher([]byte("0123456789abcdef0123456789abcdef"))
	b.ReportAllocs()
	for b.Loop() {
		h.Key("web", "3f1c2a9e-7b4d-4e8a-9c1f-2d6b8e0a5c71")
	}
}

// loaded returns an index holding n keys (named "0" to n-1), added in
// groups of 100 as ingest would, some of them already in tables.
func loaded(b *testing.B, n int) *Index {
	b.Helper()
	x := open(b, Options{})
	keys := make([]Key, 100)
	pos := make([]uint64, 100)
	for g := 0; g*100 < n; g++ {
		for i := range keys {
			keys[i] = key(strconv.Itoa(g*100 + i))
			pos[i] = uint64(g+1)<<16 | uint64(i)
		}
		add(b, x, keys, pos, uint64(g+1))
	}
	return x
}

// BenchmarkCheck looks up groups of 100 keys in an index of 500,000
// (-dedup.keys):
// absent ones (new events, answered by bloom filters) and present ones
// (duplicates), a different group each time from a pool of 100,000, so
// that the memtables' and caches' memory is not hot from the previous
// look-up. ns/op is per group of 100.
func BenchmarkCheck(b *testing.B) {
	const pool = 100_000
	n := *checkKeys
	x := loaded(b, n)
	b.Logf("%d keys; the store:\n%s", n, x.db.Metrics())
	for _, c := range []struct {
		name string
		id   func(i int) string
	}{
		{"absent", func(i int) string { return "absent-" + strconv.Itoa(i) }},
		{"present", func(i int) string { return strconv.Itoa(i * 7919 % n) }},
	} {
		keys := make([]Key, pool)
		for i := range keys {
			keys[i] = key(c.id(i))
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			// The look-ups' own CPU time, on a thread of their own:
			// neither the store's compactions nor the machine's other work
			// count.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			cpu0 := cputime.Thread()
			at := 0
			for b.Loop() {
				got, err := x.Check(keys[at : at+100])
				if err != nil {
					b.Fatal(err)
				}
				if (got[0] != 0) != (c.name == "present") {
					b.Fatalf("%s key at %#x", c.name, got[0])
				}
				at = (at + 100) % pool
			}
			b.ReportMetric(float64((cputime.Thread()-cpu0).Nanoseconds())/float64(b.N*100), "cpu-ns/key")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*100), "ns/key")
		})
	}
}

// mixKey is a cheap stand-in for HashKey (whose cost BenchmarkHashKey
// measures): n's bits spread over 16 bytes by splitmix64.
func mixKey(n uint64) Key {
	var k Key
	for i := range 2 {
		n += 0x9e3779b97f4a7c15
		z := n
		z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		binary.BigEndian.PutUint64(k[8*i:], z^z>>31)
	}
	return k
}

// BenchmarkAdd adds groups of new keys at increasing positions, Covered
// moving with them. ns/op is per group.
func BenchmarkAdd(b *testing.B) {
	for _, size := range []int{100, 1000} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			x := open(b, Options{})
			keys := make([]Key, size)
			pos := make([]uint64, size)
			seq := uint64(0)
			b.ReportAllocs()
			for b.Loop() {
				seq++
				for i := range keys {
					keys[i] = mixKey(seq<<16 | uint64(i))
					pos[i] = seq<<16 | uint64(i)
				}
				add(b, x, keys, pos, seq)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/key")
		})
	}
}

// BenchmarkGrow does what ingest does to the index for b.N new events, in
// groups of 100: Check (all absent), then Add at increasing positions,
// Covered moving with them. It reports the process's CPU per key, the
// store's flushes and compactions included (they run on other threads),
// and how many times over the store's tables were written (flushes,
// ingestions and compactions). Run it with enough keys for compactions to matter:
//
//	go test -run '^$' -bench Grow -benchtime 10000000x ./internal/stream/dedup
func BenchmarkGrow(b *testing.B) {
	x := open(b, Options{})
	keys := make([]Key, 100)
	pos := make([]uint64, 100)
	cpu0 := cputime.Process()
	b.ResetTimer()
	seq := uint64(0)
	for i := 0; i < b.N; i += len(keys) {
		seq++
		n := min(len(keys), b.N-i)
		for j := range n {
			keys[j] = mixKey(seq<<16 | uint64(j))
			pos[j] = seq<<16 | uint64(j)
		}
		got, err := x.Check(keys[:n])
		if err != nil {
			b.Fatal(err)
		}
		for _, p := range got {
			if p != 0 {
				b.Fatalf("a new key found at %#x", p)
			}
		}
		add(b, x, keys[:n], pos[:n], seq)
	}
	if err := x.flush(); err != nil {
		b.Fatal(err)
	}
	for x.db.Metrics().Compact.NumInProgress > 0 {
		time.Sleep(10 * time.Millisecond)
	}
	b.StopTimer()
	m := x.db.Metrics()
	var written, size uint64
	for _, l := range m.Levels {
		written += l.TableBytesFlushed + l.TableBytesIngested + l.TableBytesCompacted
		size += uint64(l.AggregateSize())
	}
	b.ReportMetric(float64((cputime.Process()-cpu0).Microseconds())/float64(b.N), "cpu-µs/key")
	b.ReportMetric(float64(written)/float64(size), "written-x")
	b.ReportMetric(float64(size)/(1<<20), "store-MB")
	b.Logf("%d keys; the store:\n%s", b.N, m)
}

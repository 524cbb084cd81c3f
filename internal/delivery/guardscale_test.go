package delivery

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/internal/cputime"
)

// BenchmarkGuardScale grows the local guard store with the claims of new
// eventIds, as delivery makes them (createKeys with real guard keys and
// claim values, CAPSTAN_GUARD_BATCH claims a call, default 1000), to
// CAPSTAN_GUARD_KEYS claims (default 1,000,000), in a store of
// CAPSTAN_GUARD_MEM bytes of memory (default DefaultGuardMemory). It runs
// once, whatever b.N:
//
//	CAPSTAN_GUARD_KEYS=20000000 go test -run '^$' -bench GuardScale -benchtime 1x -v ./internal/delivery
//
// Every CAPSTAN_GUARD_STEP claims (default 1,000,000) it logs the growth's
// cost per claim since the last step (the process's CPU, compactions
// included), then creates 100,000 more new claims on one locked thread and
// logs that thread's cost per claim: CPU, bytes read (rchar: page cache or
// disk), read_bytes (disk), block cache misses, and the share of claims
// the filter of absent keys answered for (their keys known absent before
// the create). The last step's figures are reported as metrics.
//
// CAPSTAN_GUARD_DIR keeps the store in that directory (grown there if it
// holds fewer claims; its count in the file "claims"), so that one grown
// store can be measured at several memories: CAPSTAN_GUARD_REOPEN, a
// comma-separated list of memories in bytes, reopens the store at each in
// turn after the growth (its filter rebuilt from the keys it holds) and
// measures as at a step, e.g. 16777216,67108864,16777216,67108864 for
// alternating pairs on the same data.
func BenchmarkGuardScale(b *testing.B) {
	env := func(name string, def int64) int64 {
		if s := os.Getenv(name); s != "" {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				b.Fatalf("%s: %v", name, err)
			}
			return n
		}
		return def
	}
	total := env("CAPSTAN_GUARD_KEYS", 1_000_000)
	step := env("CAPSTAN_GUARD_STEP", 1_000_000)
	per := env("CAPSTAN_GUARD_BATCH", 1000)
	mem := env("CAPSTAN_GUARD_MEM", DefaultGuardMemory)
	dir := os.Getenv("CAPSTAN_GUARD_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	countFile := dir + ".claims"
	have := int64(0)
	if s, err := os.ReadFile(countFile); err == nil {
		if have, err = strconv.ParseInt(strings.TrimSpace(string(s)), 10, 64); err != nil {
			b.Fatalf("%s: %v", countFile, err)
		}
	}
	open := func(mem int64) *GuardLocal {
		l, err := OpenGuardLocal(GuardLocalConfig{Dir: dir, MemoryBytes: mem})
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		for !l.filter.Ready() {
			time.Sleep(time.Millisecond)
		}
		b.Logf("opened at %d MiB with %d claims: filter ready in %.1f s", mem>>20, have, time.Since(t0).Seconds())
		return l
	}
	l := open(mem)
	defer func() { l.Close() }()
	var last guardFigures
	cpu0, wall0 := cputime.Process(), time.Now()
	for have < total {
		n := min(per, total-have)
		if err := createNew(l, "grow", have, n, per); err != nil {
			b.Fatal(err)
		}
		if have += n; have%step == 0 || have == total {
			cpu := cputime.Process() - cpu0
			b.Logf("grown to %d claims: %.1f CPU-µs/claim, %.1f s wall for the last %d", have, float64(cpu.Microseconds())/float64(step),
				time.Since(wall0).Seconds(), step)
			last = measureCreates(b, l, have, per)
			b.Logf("  creates at %d claims, %d MiB: %s", have, mem>>20, last)
			if err := os.WriteFile(countFile, []byte(strconv.FormatInt(have, 10)), 0o600); err != nil {
				b.Fatal(err)
			}
			cpu0, wall0 = cputime.Process(), time.Now()
		}
	}
	if s := os.Getenv("CAPSTAN_GUARD_REOPEN"); s != "" {
		run := time.Now().UnixNano()
		for round, f := range strings.Split(s, ",") {
			m, err := strconv.ParseInt(f, 10, 64)
			if err != nil {
				b.Fatalf("CAPSTAN_GUARD_REOPEN: %v", err)
			}
			if err := l.Close(); err != nil {
				b.Fatal(err)
			}
			l = open(m)
			// The measured claims are new keys: each round's are its own,
			// and each run's (the store may be measured again).
			last = measureCreates(b, l, run+int64(round), per)
			b.Logf("  reopen round %d, creates at %d claims, %d MiB: %s", round, have, m>>20, last)
		}
	}
	b.ReportMetric(last.cpuMicros, "create-CPU-µs/claim")
	b.ReportMetric(last.rchar, "create-rchar/claim")
	b.ReportMetric(last.readBytes, "create-read_bytes/claim")
	b.ReportMetric(last.misses, "create-misses/claim")
	b.ReportMetric(100*last.filtered, "filtered-%")
}

// guardFigures is the cost per claim of creating new claims.
type guardFigures struct {
	cpuMicros, rchar, readBytes, misses, filtered float64
}

func (f guardFigures) String() string {
	return strconv.FormatFloat(f.cpuMicros, 'f', 2, 64) + " CPU-µs/claim, " +
		strconv.FormatFloat(f.rchar, 'f', 0, 64) + " rchar/claim, " +
		strconv.FormatFloat(f.readBytes, 'f', 0, 64) + " read_bytes/claim, " +
		strconv.FormatFloat(f.misses, 'f', 3, 64) + " cache misses/claim, " +
		strconv.FormatFloat(100*f.filtered, 'f', 1, 64) + "% answered by the filter"
}

// guardClaims returns n claims' keys and values: eventIds "order-<prefix>-<i>"
// from i = from on, of one claim group.
func guardClaims(prefix string, from, n int64) ([]string, [][]byte) {
	cg := newClaimGroup()
	keys, values := make([]string, n), make([][]byte, n)
	var content [32]byte
	for j := range n {
		i := from + j
		keys[j] = guardKey("li", "rule", "order-"+prefix+"-"+strconv.FormatInt(i, 10))
		binary.BigEndian.PutUint64(content[:], uint64(i))
		values[j] = cg.value(content, uint32(j))
	}
	return keys, values
}

// createNew creates n new claims, per at a time, and checks that each was
// created.
func createNew(l *GuardLocal, prefix string, from, n, per int64) error {
	for done := int64(0); done < n; {
		m := min(per, n-done)
		keys, values := guardClaims(prefix, from+done, m)
		for _, err := range l.createKeys(context.Background(), keys, values) {
			if err != nil {
				return err
			}
		}
		done += m
	}
	return nil
}

// measureCreates creates 100,000 new claims, per at a time, on one locked
// thread and returns that thread's cost per claim over the createKeys
// calls only (the keys are built outside).
func measureCreates(b *testing.B, l *GuardLocal, seed, per int64) guardFigures {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	const n = 100_000
	var cpu time.Duration
	var io [2]int64
	filtered := 0
	misses0 := l.store.Metrics().BlockCache.Misses
	prefix := "m" + strconv.FormatInt(seed, 10)
	for done := int64(0); done < n; {
		m := min(per, n-done)
		keys, values := guardClaims(prefix, done, m)
		for _, key := range keys {
			k, err := guardLocalKey(key)
			if err != nil {
				b.Fatal(err)
			}
			if l.filter.Absent(k) {
				filtered++
			}
		}
		cpu0 := cputime.Thread()
		rchar0, read0 := cputime.ThreadIO()
		errs := l.createKeys(context.Background(), keys, values)
		cpu1 := cputime.Thread()
		rchar1, read1 := cputime.ThreadIO()
		cpu += cpu1 - cpu0
		io[0] += rchar1 - rchar0
		io[1] += read1 - read0
		for _, err := range errs {
			if err != nil {
				b.Fatal(errors.Join(errors.New("create of a new claim"), err))
			}
		}
		done += m
	}
	return guardFigures{
		cpuMicros: float64(cpu.Microseconds()) / n,
		rchar:     float64(io[0]) / n,
		readBytes: float64(io[1]) / n,
		misses:    float64(l.store.Metrics().BlockCache.Misses-misses0) / n,
		filtered:  float64(filtered) / n,
	}
}

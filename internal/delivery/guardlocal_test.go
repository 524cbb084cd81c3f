package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/capstan-gw/capstan/internal/localdb"
	"github.com/capstan-gw/capstan/internal/stream"
)

func openTestGuardLocal(t *testing.T, dir string, now func() time.Time) *GuardLocal {
	t.Helper()
	l, err := OpenGuardLocal(GuardLocalConfig{Dir: dir, now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

const testClaimKey = "e.00112233445566778899aabbccddeeff"

// TestGuardLocalCreateOnce: of concurrent creates of one key exactly one
// wins, and every caller then reads the winner's value.
func TestGuardLocalCreateOnce(t *testing.T) {
	l := openTestGuardLocal(t, t.TempDir(), nil)
	ctx := context.Background()
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			errs := l.createKeys(ctx, []string{testClaimKey, "g.0102030405060708"}, [][]byte{{byte(i)}, {byte(i)}})
			if errs[0] == nil {
				wins.Add(1)
			} else if !errors.Is(errs[0], errClaimExists) {
				t.Error(errs[0])
			}
		})
	}
	wg.Wait()
	if n := wins.Load(); n != 1 {
		t.Fatalf("%d creates of one key succeeded, want 1", n)
	}
	if made, err := l.create(ctx, testClaimKey, []byte("x")); made || err != nil {
		t.Errorf("create of an existing key: %v %v", made, err)
	}
	// One batch naming a key twice creates it once.
	k2 := "e.ffeeddccbbaa99887766554433221100"
	errs := l.createKeys(ctx, []string{k2, k2}, [][]byte{[]byte("a"), []byte("b")})
	if errs[0] != nil || !errors.Is(errs[1], errClaimExists) {
		t.Errorf("a key twice in one batch: %v", errs)
	}
	if v, ok, err := l.get(ctx, k2); err != nil || !ok || string(v) != "a" {
		t.Errorf("get: %q %v %v", v, ok, err)
	}
	if err := l.deleteIf(ctx, k2, []byte("b")); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := l.get(ctx, k2); !ok {
		t.Error("deleteIf removed a key whose value differs")
	}
	if err := l.deleteIf(ctx, k2, []byte("a")); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := l.get(ctx, k2); ok {
		t.Error("deleteIf kept a key whose value matches")
	}
}

// TestGuardLocalExpiry: a key older than GuardTTL is absent, may be
// claimed again, and the sweep removes it from disk; a younger one stays.
func TestGuardLocalExpiry(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	l := openTestGuardLocal(t, t.TempDir(), clock)
	ctx := context.Background()
	if made, err := l.create(ctx, testClaimKey, []byte("old")); !made || err != nil {
		t.Fatal(made, err)
	}
	advance(GuardTTL - time.Minute)
	young := "e.0000000000000000000000000000000a"
	if made, err := l.create(ctx, young, []byte("young")); !made || err != nil {
		t.Fatal(made, err)
	}
	if _, ok, _ := l.get(ctx, testClaimKey); !ok {
		t.Fatal("a claim within GuardTTL is gone")
	}
	advance(time.Minute)
	if _, ok, _ := l.get(ctx, testClaimKey); ok {
		t.Fatal("a claim GuardTTL old is still read")
	}
	n, err := l.sweep()
	if err != nil || n != 1 {
		t.Fatalf("sweep removed %d (%v), want 1", n, err)
	}
	if _, c, err := l.db.Get([]byte{'e', 0, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}); err == nil {
		c.Close()
		t.Error("the expired claim is still on disk after the sweep")
	}
	if made, err := l.create(ctx, testClaimKey, []byte("new")); !made || err != nil {
		t.Errorf("claiming an expired key again: %v %v", made, err)
	}
	if _, ok, _ := l.get(ctx, young); !ok {
		t.Error("the sweep removed a live claim")
	}
}

// TestGuardLocalSweepChunks: a sweep of more expired keys than a chunk
// removes them all.
func TestGuardLocalSweepChunks(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Now().UnixMilli())
	l := openTestGuardLocal(t, t.TempDir(), func() time.Time { return time.UnixMilli(now.Load()) })
	ctx := context.Background()
	n := 2*localdb.SweepChunk + 7
	keys, vals := make([]string, n), make([][]byte, n)
	for i := range n {
		keys[i] = guardKey("d", "r", string(rune(i))+"x")
		vals[i] = []byte{1}
	}
	for _, err := range l.createKeys(ctx, keys, vals) {
		if err != nil {
			t.Fatal(err)
		}
	}
	now.Add(GuardTTL.Milliseconds())
	if got, err := l.sweep(); err != nil || got != n {
		t.Fatalf("sweep removed %d (%v), want %d", got, err, n)
	}
}

// TestGuardLocalDurableAndOwned: claims survive a close and reopen, and a
// second open of a directory in use fails with ErrGuardInUse.
func TestGuardLocalDurableAndOwned(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "eventids")
	l, err := OpenGuardLocal(GuardLocalConfig{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenGuardLocal(GuardLocalConfig{Dir: dir}); !errors.Is(err, ErrGuardInUse) {
		t.Errorf("second open: %v, want ErrGuardInUse", err)
	}
	ctx := context.Background()
	if made, err := l.create(ctx, testClaimKey, []byte("v")); !made || err != nil {
		t.Fatal(made, err)
	}
	if failed, err := l.putAll(ctx, []markWrite{{key: "g.0102030405060708", data: []byte{3}}}); err != nil || len(failed) > 0 {
		t.Fatal(failed, err)
	}
	if err := l.sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openTestGuardLocal(t, dir, nil)
	for k, want := range map[string]string{testClaimKey: "v", "g.0102030405060708": "\x03"} {
		if v, ok, err := l.get(ctx, k); err != nil || !ok || string(v) != want {
			t.Errorf("after reopen %s: %q %v %v", k, v, ok, err)
		}
	}
	if _, ok, err := l.get(ctx, "x.1"); err == nil || ok {
		t.Error("a malformed key was read")
	}
}

// guardBucket opens an embedded engine in a temporary directory, closed
// when the test ends, and its guard bucket: the old design's claims, for
// the migration's tests.
func guardBucket(t *testing.T) (*stream.Engine, jetstream.KeyValue) {
	t.Helper()
	ctx := context.Background()
	eng, err := stream.Open(ctx, stream.Config{DataDir: t.TempDir()}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(eng.Close)
	kv, err := eng.KV(ctx, GuardKV, GuardTTL)
	if err != nil {
		t.Fatal(err)
	}
	return eng, kv
}

// TestMigrateGuardBucket: the bucket's claims and bitmaps move to the local
// store with their write times, a key the store has already is kept, keys
// not the guard's are left out, the bucket is removed, and a second run
// does nothing.
func TestMigrateGuardBucket(t *testing.T) {
	ctx := context.Background()
	eng, kv := guardBucket(t)
	claim, group, mine := guardKey("li", "r1", "order-1"), "g.0102030405060708", guardKey("li", "r1", "order-2")
	for k, v := range map[string]string{claim: "claim", group: "\x05", mine: "bucket", "other": "x"} {
		if _, err := kv.Put(ctx, k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	gone := guardKey("li", "r1", "released")
	if _, err := kv.Put(ctx, gone, []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(ctx, gone); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "eventids")
	l := openTestGuardLocal(t, dir, nil)
	if made, err := l.create(ctx, mine, []byte("local")); !made || err != nil {
		t.Fatal(made, err)
	}
	n, err := MigrateGuardBucket(ctx, eng.JetStream(), l, nil)
	if err != nil || n != 2 {
		t.Fatalf("migrated %d (%v), want 2", n, err)
	}
	for k, want := range map[string]string{claim: "claim", group: "\x05", mine: "local"} {
		if v, ok, err := l.get(ctx, k); err != nil || !ok || string(v) != want {
			t.Errorf("%s after migration: %q %v %v, want %q", k, v, ok, err, want)
		}
	}
	if _, ok, _ := l.get(ctx, gone); ok {
		t.Error("a deleted key was migrated")
	}
	if _, err := eng.JetStream().KeyValue(ctx, GuardKV); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Errorf("bucket after migration: %v, want removed", err)
	}
	if n, err := MigrateGuardBucket(ctx, eng.JetStream(), l, nil); n != 0 || err != nil {
		t.Errorf("second migration: %d %v", n, err)
	}
}

// TestMigrateGuardBucketKeepsAge: a migrated key keeps its write time, so it
// expires GuardTTL after it was written to the bucket, not after the
// migration.
func TestMigrateGuardBucketKeepsAge(t *testing.T) {
	ctx := context.Background()
	eng, kv := guardBucket(t)
	if _, err := kv.Put(ctx, testClaimKey, []byte("v")); err != nil {
		t.Fatal(err)
	}
	var now atomic.Int64
	now.Store(time.Now().Add(GuardTTL - time.Minute).UnixMilli())
	l := openTestGuardLocal(t, filepath.Join(t.TempDir(), "eventids"), func() time.Time { return time.UnixMilli(now.Load()) })
	if n, err := MigrateGuardBucket(ctx, eng.JetStream(), l, nil); n != 1 || err != nil {
		t.Fatalf("migrated %d (%v), want 1", n, err)
	}
	if _, ok, _ := l.get(ctx, testClaimKey); !ok {
		t.Fatal("the migrated key is not read")
	}
	now.Add((2 * time.Minute).Milliseconds())
	if _, ok, _ := l.get(ctx, testClaimKey); ok {
		t.Error("the migrated key outlives GuardTTL from its write to the bucket")
	}
}

// TestGuardLocalClaimsSurviveCrash: the claims a batch made are durable
// once sync returns (before anything is sent under them), and a request's
// accepted marks once putAll returns (before its events are acknowledged):
// pebble keeps writes made without sync in a buffer of its own, so a
// process that dies at once (kill -9) would lose them. The test runs
// itself as a child that writes and exits at once, without closing.
func TestGuardLocalClaimsSurviveCrash(t *testing.T) {
	const env = "CAPSTAN_GUARD_CRASH_DIR"
	ctx := context.Background()
	if dir := os.Getenv(env); dir != "" {
		l, err := OpenGuardLocal(GuardLocalConfig{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		if errs := l.createKeys(ctx, []string{testClaimKey}, [][]byte{[]byte("claim")}); errs[0] != nil {
			t.Fatal(errs[0])
		}
		if err := l.sync(ctx); err != nil {
			t.Fatal(err)
		}
		if failed, err := l.putAll(ctx, []markWrite{{key: "g.0102030405060708", data: []byte{1}}}); err != nil || len(failed) > 0 {
			t.Fatal(failed, err)
		}
		os.Exit(0) // no Close, no wait: as a kill -9 right after
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestGuardLocalClaimsSurviveCrash$")
	cmd.Env = append(os.Environ(), env+"="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	l := openTestGuardLocal(t, dir, nil)
	for _, k := range []string{testClaimKey, "g.0102030405060708"} {
		if _, ok, err := l.get(ctx, k); !ok || err != nil {
			t.Errorf("%s after the crash: %v %v", k, ok, err)
		}
	}
}

// TestGuardLocalCollector: the store's metrics count its keys once they
// reach a table, its disk space, and the keys its sweeps removed.
func TestGuardLocalCollector(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Now().UnixMilli())
	l := openTestGuardLocal(t, t.TempDir(), func() time.Time { return time.UnixMilli(now.Load()) })
	ctx := context.Background()
	keys, vals := make([]string, 10), make([][]byte, 10)
	for i := range keys {
		keys[i], vals[i] = guardKey("d", "r", string(rune('a'+i))), []byte{1}
	}
	l.createKeys(ctx, keys, vals)
	if err := l.db.Flush(); err != nil {
		t.Fatal(err)
	}
	now.Add(GuardTTL.Milliseconds())
	if _, err := l.sweep(); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(l.Collector())
	got := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		m := mf.GetMetric()[0]
		if m.GetGauge() != nil {
			got[mf.GetName()] = m.GetGauge().GetValue()
		} else {
			got[mf.GetName()] = m.GetCounter().GetValue()
		}
	}
	if got["capstan_eventid_store_keys"] < 10 || got["capstan_eventid_store_disk_bytes"] <= 0 || got["capstan_eventid_store_expired_removed_total"] != 10 {
		t.Errorf("metrics: %v", got)
	}
}

// TestGuardLocalCreateKeysMalformed: a malformed key in a batch fails
// alone; the keys around it, of both kinds, are created with their own
// values.
func TestGuardLocalCreateKeysMalformed(t *testing.T) {
	ctx := context.Background()
	l := openTestGuardLocal(t, t.TempDir(), nil)
	keys := []string{
		"g.0102030405060708",
		"e.00112233445566778899aabbccddzzzz", // right length, not hex
		testClaimKey,
		"e.short",
		"e.ffeeddccbbaa99887766554433221100",
	}
	vals := [][]byte{[]byte("g"), []byte("bad"), []byte("first"), []byte("short"), []byte("last")}
	errs := l.createKeys(ctx, keys, vals)
	for i, want := range []bool{true, false, true, false, true} {
		if (errs[i] == nil) != want {
			t.Errorf("key %d: %v", i, errs[i])
		}
		if !want {
			continue
		}
		if v, ok, err := l.get(ctx, keys[i]); err != nil || !ok || string(v) != string(vals[i]) {
			t.Errorf("key %d: %q %v %v", i, v, ok, err)
		}
	}
}

// waitGuardFilter waits for l's filter of absent keys to have read the
// store's keys: from then on it answers for absent keys.
func waitGuardFilter(t *testing.T, l *GuardLocal) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !l.filter.Ready(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("filter not ready after 10 s")
		}
	}
}

// guardFilterKeys returns n distinct claim keys named after prefix.
func guardFilterKeys(prefix string, n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = guardKey("li", "r1", fmt.Sprint(prefix, i))
	}
	return keys
}

// checkGuardKeysStored fails unless every key of keys is read with its
// value and cannot be created again: a write path that did not Add its
// key to the filter lets the filter call it absent.
func checkGuardKeysStored(t *testing.T, l *GuardLocal, what string, keys []string, want string) {
	t.Helper()
	ctx := context.Background()
	for _, k := range keys {
		if v, ok, err := l.get(ctx, k); err != nil || !ok || string(v) != want {
			t.Fatalf("%s: get(%s) = %q %v %v, want %q", what, k, v, ok, err, want)
		}
	}
	for i, err := range l.createKeys(ctx, keys, make([][]byte, len(keys))) {
		if !errors.Is(err, errClaimExists) {
			t.Fatalf("%s: a second create of %s: %v, want errClaimExists", what, keys[i], err)
		}
	}
}

// TestGuardLocalFilter: the store's filter of absent keys (localdb.Filter)
// never hides a stored key: every write path (createKeys, create, putAll)
// Adds its keys before committing them, so keys written after the filter
// is ready are read and cannot be claimed twice; keys written before a
// reopen are found by its scan; and claims of new keys look nothing up in
// the store once the filter is ready.
func TestGuardLocalFilter(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l, err := OpenGuardLocal(GuardLocalConfig{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if l.filter == nil {
		t.Fatal("the guard store has no filter")
	}
	waitGuardFilter(t, l)
	batch := guardFilterKeys("batch", 300)
	values := make([][]byte, len(batch))
	for i := range values {
		values[i] = []byte("v")
	}
	if err := errors.Join(l.createKeys(ctx, batch, values)...); err != nil {
		t.Fatal(err)
	}
	one := guardKey("li", "r1", "one")
	if made, err := l.create(ctx, one, []byte("v")); !made || err != nil {
		t.Fatal(made, err)
	}
	marks := []string{"g.0102030405060708", "g.1112131415161718", guardKey("li", "r1", "marked")}
	var writes []markWrite
	for _, k := range marks {
		writes = append(writes, markWrite{key: k, data: []byte("v")})
	}
	if failed, err := l.putAll(ctx, writes); err != nil || len(failed) > 0 {
		t.Fatal(failed, err)
	}
	checkGuardKeysStored(t, l, "createKeys", batch, "v")
	checkGuardKeysStored(t, l, "create", []string{one}, "v")
	checkGuardKeysStored(t, l, "putAll", marks, "v")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l = openTestGuardLocal(t, dir, nil)
	waitGuardFilter(t, l)
	stored := append(append([]string{one}, marks...), batch...)
	checkGuardKeysStored(t, l, "after a reopen", stored, "v")

	before := l.db.Metrics().Filter
	fresh := guardFilterKeys("fresh", 500)
	if err := errors.Join(l.createKeys(ctx, fresh, make([][]byte, len(fresh)))...); err != nil {
		t.Fatal(err)
	}
	after := l.db.Metrics().Filter
	if n := after.Hits + after.Misses - before.Hits - before.Misses; n > 10 {
		t.Errorf("claims of 500 new keys tested pebble's bloom filters %d times; want nearly none", n)
	}
	checkGuardKeysStored(t, l, "fresh", fresh[:5], "")
}

// TestMigrateGuardBucketFilter: keys the migration copies (into an empty
// store, which reads nothing, and into one that holds keys, which reads
// each key through the filter) are Added to the filter before their batch
// commits: they are read and cannot be claimed again.
func TestMigrateGuardBucketFilter(t *testing.T) {
	for _, empty := range []bool{true, false} {
		t.Run(fmt.Sprint("empty=", empty), func(t *testing.T) {
			ctx := context.Background()
			eng, kv := guardBucket(t)
			keys := append(guardFilterKeys("bucket", 50), "g.0102030405060708")
			for _, k := range keys {
				if _, err := kv.Put(ctx, k, []byte("bucket")); err != nil {
					t.Fatal(err)
				}
			}
			l := openTestGuardLocal(t, filepath.Join(t.TempDir(), "eventids"), nil)
			waitGuardFilter(t, l)
			if !empty {
				if made, err := l.create(ctx, guardKey("li", "r1", "local"), []byte("local")); !made || err != nil {
					t.Fatal(made, err)
				}
			}
			if n, err := MigrateGuardBucket(ctx, eng.JetStream(), l, nil); n != len(keys) || err != nil {
				t.Fatalf("migrated %d (%v), want %d", n, err, len(keys))
			}
			checkGuardKeysStored(t, l, "migrated", keys, "bucket")
		})
	}
}

// TestGuardLocalBatchInMemtable: delivery batches' claims (5000, the
// largest LinkedIn batch) go into the memtable, many batches a flush, not
// into a flush each: a write above pebble's large-batch threshold (half a
// memtable) is queued as a memtable of its own and flushed at once, so that
// every batch became a small L0 table, and the compactions of those tables
// took 7.3% of capstan's CPU end to end (claimCommit).
func TestGuardLocalBatchInMemtable(t *testing.T) {
	l := openTestGuardLocal(t, t.TempDir(), nil)
	const batches = 12
	for b := range batches {
		keys, values := guardClaims("memtable", int64(b)*5000, 5000)
		for i, err := range l.createKeys(context.Background(), keys, values) {
			if err != nil {
				t.Fatalf("batch %d, claim %d: %v", b, i, err)
			}
		}
	}
	if err := l.db.Flush(); err != nil {
		t.Fatal(err)
	}
	// The memtables grow from 256 KiB to 2 MiB (the default memory's),
	// ~20,000 claims each once grown: the 60,000 claims took 4 flushes
	// (the last one Flush's), one a batch without claimCommit.
	if n := l.db.Metrics().Flush.Count; n > batches/2 {
		t.Errorf("%d batches of 5000 claims took %d flushes, want at most %d", batches, n, batches/2)
	}
	keys, _ := guardClaims("memtable", 0, 10)
	for _, key := range keys {
		if _, ok, err := l.get(context.Background(), key); !ok || err != nil {
			t.Fatalf("claim %s not read back: %v %v", key, ok, err)
		}
	}
}

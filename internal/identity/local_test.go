package identity

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/capstan-gw/capstan/internal/localdb"
)

// TestLocalExpiry: a profile past the TTL is invisible at once (reads,
// Show, the next create starts empty) and the sweep removes it from disk;
// a profile written since is kept.
func TestLocalExpiry(t *testing.T) {
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	l := openLocal(t)
	g := openGraph(t, nil, Config{Store: l, TTL: time.Hour, Now: clock, MemoTTL: -1})
	observe(t, g, pageA)
	advance(59 * time.Minute)
	observe(t, g, trackU) // a new user: written now
	bare := `{"type":"track","event":"x","anonymousId":"` + anonA + `"}`
	if got := enrich(t, g, bare); got.LiFatID != "123456" {
		t.Fatalf("before the TTL: %+v", got)
	}
	advance(2 * time.Minute)
	if _, err := g.Show(context.Background(), Key{AnonymousID: anonA}); !errors.Is(err, ErrNotFound) {
		t.Errorf("Show of an expired profile: %v", err)
	}
	if got := enrich(t, g, bare); got.LiFatID != "" {
		t.Errorf("an expired profile enriched: %+v", got)
	}
	if got := keys(t, g); len(got) != 0 {
		t.Errorf("keys %v, want none (the user's profile holds nothing: never written)", got)
	}
	observe(t, g, identAU) // recreates both
	advance(61 * time.Minute)
	observe(t, g, `{"type":"page","anonymousId":"other","context":{"page":{"url":"https://x/?li_fat_id=9"}}}`)
	n, err := l.sweep()
	if err != nil || n != 2 {
		t.Fatalf("sweep removed %d (%v), want 2", n, err)
	}
	k, _ := localKey(AnonymousKey(anonA))
	if _, _, err := l.db.Get(k); !errors.Is(err, pebble.ErrNotFound) {
		t.Errorf("expired profile still stored: %v", err)
	}
	if got := keys(t, g); len(got) != 1 || got[0] != AnonymousKey("other") {
		t.Errorf("keys after the sweep %v, want the fresh one", got)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(l.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		m := mf.GetMetric()[0]
		got[mf.GetName()] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
	}
	if got["capstan_identity_store_expired_removed_total"] != 2 || got["capstan_identity_store_disk_bytes"] <= 0 {
		t.Errorf("metrics %v", got)
	}
	if _, ok := got["capstan_identity_store_keys"]; !ok {
		t.Errorf("no capstan_identity_store_keys in %v", got)
	}
}

// TestLocalCAS: the local store's compare-and-set refuses a stale
// revision and a create of an existing key, with errors update retries.
func TestLocalCAS(t *testing.T) {
	ctx := context.Background()
	l := openLocal(t)
	key := UserKey("u1")
	r1, err := l.put(ctx, key, []byte(`{}`), 0, time.Now())
	if err != nil || r1 != 1 {
		t.Fatalf("create: %d, %v", r1, err)
	}
	if _, err := l.put(ctx, key, []byte(`{}`), 0, time.Now()); !casConflict(err) {
		t.Errorf("second create: %v", err)
	}
	if r2, err := l.put(ctx, key, []byte(`{"first":1}`), r1, time.Now()); err != nil || r2 != 2 {
		t.Errorf("update: %d, %v", r2, err)
	}
	if _, err := l.put(ctx, key, []byte(`{}`), r1, time.Now()); !casConflict(err) {
		t.Errorf("stale update: %v", err)
	}
	revs, errs := l.createAll(ctx, []string{key, AnonymousKey("a1")}, [][]byte{[]byte(`{}`), []byte(`{}`)}, time.Now())
	if !casConflict(errs[0]) || errs[1] != nil || revs[1] != 1 {
		t.Errorf("createAll: %v %v", revs, errs)
	}
	if _, err := l.put(ctx, "x.nothex", nil, 0, time.Now()); err == nil {
		t.Error("malformed key accepted")
	}
}

// TestLocalInUse: one process owns the store; a second opener gets
// ErrLocalInUse, not a damaged-store error.
func TestLocalInUse(t *testing.T) {
	l := openLocal(t)
	_, err := OpenLocal(LocalConfig{Dir: l.Dir()})
	if !errors.Is(err, ErrLocalInUse) {
		t.Errorf("second open: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2, err := OpenLocal(LocalConfig{Dir: l.Dir()})
	if err != nil {
		t.Fatalf("reopen after close: %v", err)
	}
	_ = l2.Close()
}

// TestLocalDeleteLeavesNoTable: a privacy deletion compacts the deleted
// keys' ranges, so that no table file of the store holds their data any
// more (pebble alone would keep it until a compaction happened by).
func TestLocalDeleteLeavesNoTable(t *testing.T) {
	ctx := context.Background()
	l := openLocal(t)
	g := openGraph(t, nil, Config{Store: l})
	const marker = "MARKER-LFI-7f3a9c"
	observe(t, g, `{"type":"page","anonymousId":"`+anonA+`","context":{"page":{"url":"https://x/?li_fat_id=`+marker+`"}}}`)
	observe(t, g, `{"type":"page","anonymousId":"stays","context":{"page":{"url":"https://x/?li_fat_id=other"}}}`)
	if err := l.db.Flush(); err != nil {
		t.Fatal(err)
	}
	inTables := func() bool {
		t.Helper()
		files, err := filepath.Glob(filepath.Join(l.Dir(), "*.sst"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if errors.Is(err, os.ErrNotExist) {
				continue // removed meanwhile
			}
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(b, []byte(marker)) {
				return true
			}
		}
		return false
	}
	if !inTables() {
		t.Fatal("the profile is not in a table before the deletion: the test sees nothing")
	}
	if _, err := g.Delete(ctx, Key{AnonymousID: anonA}); err != nil {
		t.Fatal(err)
	}
	// pebble removes the tables a compaction replaced in the background.
	eventually(t, 5*time.Second, func() bool { return !inTables() })
	if p, err := g.Show(ctx, Key{AnonymousID: "stays"}); err != nil || p.LiFatID != "other" {
		t.Errorf("the other profile: %+v, %v", p, err)
	}
}

// TestLocalSurvivesCrash: the local store's writes do not wait for the
// disk, and pebble keeps them in a buffer of its own until a 32 KiB block
// fills; the syncer writes the log out every walSync, so a process that
// dies without closing the store (kill -9) loses at most the writes of the
// last walSync. The test runs itself as a child that writes, waits a few
// walSync and exits without closing.
func TestLocalSurvivesCrash(t *testing.T) {
	const env = "CAPSTAN_IDENTITY_CRASH_DIR"
	if dir := os.Getenv(env); dir != "" {
		l, err := OpenLocal(LocalConfig{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		g := openGraph(t, nil, Config{Store: l})
		observe(t, g, pageA)
		observe(t, g, identAU)
		time.Sleep(3 * walSync)
		os.Exit(0) // no Close: as a kill -9 after the writes
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLocalSurvivesCrash$")
	cmd.Env = append(os.Environ(), env+"="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	l, err := OpenLocal(LocalConfig{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	g := openGraph(t, nil, Config{Store: l})
	p, err := g.Show(context.Background(), Key{UserID: userU})
	if err != nil || p.LiFatID != "123456" || p.EmailSHA256 != emailHash || len(p.Linked) != 1 {
		t.Errorf("after the crash: %+v, %v", p, err)
	}
}

// TestLocalSweepInChunks: a sweep over more expired profiles than one
// chunk removes them all, and keeps the live ones among them.
func TestLocalSweepInChunks(t *testing.T) {
	now := time.Now()
	l := openLocal(t)
	l.bind(time.Hour, func() time.Time { return now })
	const n = 2*localdb.SweepChunk + 7
	var keys []string
	var data [][]byte
	for i := range n {
		keys = append(keys, AnonymousKey(fmt.Sprint("sweep-", i)))
		data = append(data, []byte(`{}`))
	}
	old := now.Add(-2 * time.Hour)
	if _, errs := l.createAll(context.Background(), keys, data, old); errors.Join(errs...) != nil {
		t.Fatal(errors.Join(errs...))
	}
	live := AnonymousKey("sweep-live")
	if _, errs := l.createAll(context.Background(), []string{live}, [][]byte{[]byte(`{}`)}, now); errors.Join(errs...) != nil {
		t.Fatal(errors.Join(errs...))
	}
	removed, err := l.sweep()
	if err != nil || removed != n {
		t.Fatalf("sweep removed %d (%v), want %d", removed, err, n)
	}
	left := 0
	if err := l.each(context.Background(), func(key string, _ stored) error {
		if key != live {
			t.Errorf("kept %s", key)
		}
		left++
		return nil
	}); err != nil || left != 1 {
		t.Fatalf("%d profiles left (%v), want the live one", left, err)
	}
}

// TestLocalFilter: the store's filter of absent keys (localdb.Filter)
// never hides a stored profile: after a reopen, profiles written before
// (by createAll, by put) are read and make a create of their key fail, as
// do profiles written since; and creates of new keys look nothing up in
// the store once its filter is ready.
func TestLocalFilter(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l, err := OpenLocal(LocalConfig{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	var created []string
	var data [][]byte
	for i := range 300 {
		created = append(created, AnonymousKey(fmt.Sprint("created", i)))
		data = append(data, []byte(`{"first":1}`))
	}
	if _, errs := l.createAll(ctx, created, data, time.Now()); errors.Join(errs...) != nil {
		t.Fatal(errs)
	}
	put := UserKey("put")
	if _, err := l.put(ctx, put, []byte(`{"first":2}`), 0, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l, err = OpenLocal(LocalConfig{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	for deadline := time.Now().Add(10 * time.Second); !l.filter.Ready(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("filter not ready after 10 s")
		}
	}
	since := UserKey("since")
	if _, err := l.put(ctx, since, []byte(`{"first":3}`), 0, time.Now()); err != nil {
		t.Fatal(err)
	}
	stored := append([]string{put, since}, created...)
	for _, key := range stored {
		if s, err := l.get(ctx, key); err != nil || !s.exists || s.rev != 1 {
			t.Fatalf("get(%s) = %+v, %v; want revision 1", key, s, err)
		}
	}
	_, errs := l.createAll(ctx, stored, make([][]byte, len(stored)), time.Now())
	for i, err := range errs {
		if !casConflict(err) {
			t.Fatalf("create of the stored %s: %v, want a conflict", stored[i], err)
		}
	}
	if _, err := l.put(ctx, created[7], nil, 0, time.Now()); !casConflict(err) {
		t.Errorf("put (create) of a stored key: %v", err)
	}

	before := l.db.Metrics().Filter
	var fresh []string
	for i := range 500 {
		fresh = append(fresh, AnonymousKey(fmt.Sprint("fresh", i)))
	}
	if _, errs := l.createAll(ctx, fresh, make([][]byte, len(fresh)), time.Now()); errors.Join(errs...) != nil {
		t.Fatal(errs)
	}
	after := l.db.Metrics().Filter
	if n := after.Hits + after.Misses - before.Hits - before.Misses; n > 10 {
		t.Errorf("creates of 500 new keys tested pebble's bloom filters %d times; want nearly none", n)
	}
	for _, key := range fresh[:5] {
		if s, err := l.get(ctx, key); err != nil || !s.exists {
			t.Errorf("get(%s) after its create: %+v, %v", key, s, err)
		}
	}
}

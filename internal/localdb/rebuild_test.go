package localdb

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// putKeys writes keys as the store's users do: Added between BeginAdds and
// EndAdds, before the batch commits.
func putKeys(t testing.TB, d *DB, keys ...[]byte) {
	t.Helper()
	f := d.Filter()
	defer f.EndAdds(f.BeginAdds())
	b := d.NewBatch()
	defer b.Close()
	for _, k := range keys {
		f.Add(k)
		if err := b.Set(k, []byte("v"), nil); err != nil {
			t.Error(err)
			return
		}
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		t.Error(err)
	}
}

// TestFilterRebuildWaitsForWrites: a key Added before a rebuild began and
// committed only after the rebuild began reading the store would be in
// none of the keys it read nor of those Added to its new generations: the
// rebuild waits for such a write to end (EndAdds) before it reads, so the
// key is in the new filter. Without that wait the new filter calls the
// committed key absent.
func TestFilterRebuildWaitsForWrites(t *testing.T) {
	d, err := Open(Options{Dir: t.TempDir(), MemoryBytes: 8 << 20, What: "test store", FilterBytes: 64 << 10, rebuildShare: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	f := d.Filter()
	waitReady(t, f)
	for i := range 100 {
		putKeys(t, d, hashKey("old", i))
	}
	late := hashKey("late", 0)
	e := f.BeginAdds()
	f.Add(late) // added to the old generations only
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := d.rebuild(f)
		done <- result{n, err}
	}()
	var r result
	waited := false
	select {
	case r = <-done:
		t.Errorf("the rebuild (%d keys, %v) did not wait for a write under way", r.n, r.err)
	case <-time.After(100 * time.Millisecond):
		waited = true
	}
	// Another write begins and ends meanwhile: it neither waits for the
	// rebuild nor is waited for.
	putKeys(t, d, hashKey("during", 0))
	if err := d.Set(late, []byte("v"), pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	f.EndAdds(e)
	if waited {
		select {
		case r = <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("the rebuild did not end after the write did")
		}
		if r.err != nil || r.n != 102 {
			t.Errorf("rebuild read %d keys, %v; want 102", r.n, r.err)
		}
	}
	for _, k := range [][]byte{late, hashKey("during", 0), hashKey("old", 0), hashKey("old", 99)} {
		if f.Absent(k) {
			t.Errorf("after the rebuild Absent(%x) of a stored key", k)
		}
	}
}

// TestFilterRebuild: once the sweeps removed at least half of the keys a
// full filter holds, the filter is rebuilt from the keys the store holds
// (counted, logged), so that it knows the removed keys absent again, while
// writers go on: no key committed before, during or after the rebuild is
// ever called absent, and the rebuild ends (not held up by them).
func TestFilterRebuild(t *testing.T) {
	const budget = 16 << 10 // 13,107 keys at 10 bits
	d, err := Open(Options{Dir: t.TempDir(), MemoryBytes: 4 << 20, What: "test store", FilterBytes: budget, rebuildShare: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	f := d.Filter()
	waitReady(t, f)
	const gone, kept = 20_000, 1_000
	goneKeys := make(map[string]bool, gone)
	for i := 0; i < gone; i += 100 {
		ks := make([][]byte, 0, 100)
		for j := range 100 {
			ks = append(ks, hashKey("gone", i+j))
			goneKeys[string(ks[j])] = true
		}
		putKeys(t, d, ks...)
	}
	for i := 0; i < kept; i += 100 {
		ks := make([][]byte, 0, 100)
		for j := range 100 {
			ks = append(ks, hashKey("kept", i+j))
		}
		putKeys(t, d, ks...)
	}
	if !f.cur.Load().isFull() {
		t.Fatalf("the filter is not full after %d keys (%d bytes)", gone+kept, f.Bytes())
	}
	if d.rebuilds.Load() != 0 {
		t.Fatal("rebuilt before any key was removed")
	}
	n, err := d.Sweep(nil, nil, func(k, _ []byte) bool { return goneKeys[string(k)] }, func([]byte) *sync.Mutex { return new(sync.Mutex) })
	if err != nil || n != gone {
		t.Fatalf("sweep: %d, %v; want %d", n, err, gone)
	}
	// Writers go on during the rebuild (cued by the sweep's end), each key
	// committed recorded.
	var (
		mu        sync.Mutex
		committed [][]byte
		stop      atomic.Bool
		wg        sync.WaitGroup
	)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A few thousand keys a second: far fewer than were swept.
			for i := 0; !stop.Load(); i++ {
				k := hashKey("w"+string(rune('a'+w))+"-", i)
				putKeys(t, d, k)
				mu.Lock()
				committed = append(committed, k)
				mu.Unlock()
				time.Sleep(time.Millisecond)
			}
		}()
	}
	for deadline := time.Now().Add(20 * time.Second); d.rebuilds.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no rebuild 20 s after the sweep")
		}
	}
	time.Sleep(20 * time.Millisecond) // writes after the rebuild too
	stop.Store(true)
	wg.Wait()
	if len(committed) == 0 {
		t.Fatal("no write during the rebuild")
	}
	t.Logf("%d keys written during the rebuild", len(committed))
	for _, k := range committed {
		if f.Absent(k) {
			t.Fatalf("Absent(%x) of a key committed around the rebuild", k)
		}
	}
	for i := range kept {
		if f.Absent(hashKey("kept", i)) {
			t.Fatalf("Absent(kept %d)", i)
		}
	}
	absent := 0
	for i := range gone {
		if f.Absent(hashKey("gone", i)) {
			absent++
		}
	}
	// Before: a filter at its budget, 40% over, answered for few of them.
	if absent < gone*95/100 {
		t.Errorf("%d of %d swept keys known absent after the rebuild; want at least 95%%", absent, gone)
	}
	if f.Bytes() > budget {
		t.Errorf("the rebuilt filter takes %d bytes, above its budget %d", f.Bytes(), budget)
	}
	if f.next.Load() != nil {
		t.Error("new generations left after the rebuild")
	}
}

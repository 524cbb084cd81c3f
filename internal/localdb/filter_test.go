package localdb

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// waitReady waits for the filter's scan of the store to end.
func waitReady(t testing.TB, f *Filter) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !f.Ready(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("filter not ready after 10 s")
		}
	}
}

// TestFilterExact: a store's filter never calls absent a key the store
// holds, whether it was there at Open (the scan read it: in a table or
// only in the log), or written since (Added first), and it knows most
// other keys absent. It answers for none before its scan ended.
func TestFilterExact(t *testing.T) {
	dir := t.TempDir()
	o := Options{Dir: dir, MemoryBytes: 8 << 20, What: "test store", FilterBytes: 1 << 20}
	d, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.CheckFormat([]byte("mformat"), "test-1"); err != nil {
		t.Fatal(err)
	}
	const n = 20000
	b := d.NewBatch()
	for i := range n {
		k := hashKey("old", i)
		d.Filter().Add(k)
		if err := b.Set(k, []byte("v"), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	if err := d.Compact(t.Context(), []byte{0}, []byte{0xff}, true); err != nil {
		t.Fatal(err)
	}
	if err := d.Set(hashKey("logonly", 0), []byte("v"), pebble.Sync); err != nil { // in no table at Close? in the log at least
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	d, err = Open(o)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	f := d.Filter()
	if f == nil {
		t.Fatal("no filter with FilterBytes set")
	}
	waitReady(t, f)
	late := hashKey("late", 0)
	f.Add(late)
	if err := d.Set(late, []byte("v"), pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	stored := [][]byte{[]byte("mformat"), hashKey("logonly", 0), late}
	for i := range n {
		stored = append(stored, hashKey("old", i))
	}
	for _, k := range stored {
		if f.Absent(k) {
			t.Fatalf("Absent(%x) of a stored key", k)
		}
	}
	const m = 10000
	absent := 0
	for i := range m {
		if f.Absent(hashKey("new", i)) {
			absent++
		}
	}
	// 1 MiB for 20,000 keys: ~400 bits a key, hardly a false positive.
	if absent < m*99/100 {
		t.Errorf("%d of %d new keys known absent; want at least 99%%", absent, m)
	}

	if d, err := Open(Options{Dir: t.TempDir(), MemoryBytes: 8 << 20, What: "none"}); err != nil || d.Filter() != nil || d.Filter().Absent(late) {
		t.Errorf("a store without FilterBytes: %v, %v", d.Filter(), err)
	} else {
		_ = d.Close()
	}
	if _, err := Open(Options{Dir: t.TempDir(), MemoryBytes: 8 << 20, What: "big", FilterBytes: 5 << 20}); err == nil {
		t.Error("a filter above half of the memory accepted")
	}
}

// TestFilterNotReady: until its scan ended, a filter knows no key absent
// (a key of the store not read yet would be a wrong answer).
func TestFilterNotReady(t *testing.T) {
	f := makeFilter(filterBlockBytes, 0)
	k := hashKey("k", 0)
	if f.Absent(k) || f.Ready() {
		t.Error("a filter not ready answered absent")
	}
	f.ready.Store(true)
	if !f.Absent(k) {
		t.Error("an empty ready filter did not answer absent")
	}
	f.Add(k)
	if f.Absent(k) {
		t.Error("an added key answered absent")
	}
	var none *Filter
	none.Add(k)
	if none.Absent(k) || none.Ready() {
		t.Error("a nil filter answered absent")
	}
}

// TestProbeFilter: in a store with a filter, a probe finds the stored keys
// and answers for absent ones without looking them up (no bloom filter of
// pebble's is tested).
func TestProbeFilter(t *testing.T) {
	d, err := Open(Options{Dir: t.TempDir(), MemoryBytes: 8 << 20, What: "test store", FilterBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	const n = 5000
	b := d.NewBatch()
	for i := range n {
		d.Filter().Add(hashKey("old", i))
		if err := b.Set(hashKey("old", i), []byte("v"), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	if err := d.Compact(t.Context(), []byte{0}, []byte{0xff}, true); err != nil {
		t.Fatal(err)
	}
	waitReady(t, d.Filter())
	p, err := d.NewProbe()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	before := d.Metrics().Filter
	const misses = 1000
	for i := range misses {
		if _, ok, err := p.Get(hashKey("new", i)); ok || err != nil {
			t.Fatalf("Get(new %d) = %v, %v", i, ok, err)
		}
	}
	if after := d.Metrics().Filter; after.Hits+after.Misses-before.Hits-before.Misses > misses/50 {
		t.Errorf("pebble's bloom filters tested %d times for %d absent keys; want nearly none (the store's filter answers)",
			after.Hits+after.Misses-before.Hits-before.Misses, misses)
	}
	for _, i := range []int{0, 17, n - 1} {
		if v, ok, err := p.Get(hashKey("old", i)); !ok || err != nil || string(v) != "v" {
			t.Errorf("Get(old %d) = %q, %v, %v", i, v, ok, err)
		}
	}
}

// TestFilterScanStoppedByClose: a Close while the filter's scan reads the
// store stops the scan and closes the store (no use after close, no leak).
func TestFilterScanStoppedByClose(t *testing.T) {
	dir := t.TempDir()
	o := Options{Dir: dir, MemoryBytes: 8 << 20, What: "test store", FilterBytes: 1 << 20}
	d, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 30_000; i += 1000 {
		b := d.NewBatch()
		for j := range 1000 {
			if err := b.Set(hashKey("k", i+j), []byte("v"), nil); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Commit(pebble.NoSync); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		d, err := Open(o)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("Close during the scan took %v", took)
		}
	}
}

// TestFilterGrows: a filter starts small (a quarter of its budget, over an
// empty store) and grows by generations as keys are added, never beyond its
// budget (Options.FilterBytes, here half the store's memory: the old fixed
// filter took at most a quarter), without ever calling an added key absent,
// and still knows most other keys absent at 200,000 keys (a fixed filter
// of its first size would answer for few: 2.6 bits a key).
func TestFilterGrows(t *testing.T) {
	const budget = 256 << 10
	d, err := Open(Options{Dir: t.TempDir(), MemoryBytes: 2 * budget, What: "test store", FilterBytes: budget})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	f := d.Filter()
	waitReady(t, f)
	if got := f.Bytes(); got != budget/4 {
		t.Errorf("an empty store's filter takes %d bytes; want %d", got, budget/4)
	}
	key := func(prefix byte, i int) []byte {
		return binary.BigEndian.AppendUint64([]byte{prefix}, uint64(i))
	}
	const n = 200_000
	grew := 0
	for i, size := 0, f.Bytes(); i < n; i++ {
		f.Add(key('k', i))
		if now := f.Bytes(); now > budget {
			t.Fatalf("after %d keys the filter takes %d bytes, above its budget of %d", i+1, now, budget)
		} else if now > size {
			grew, size = grew+1, now
		}
	}
	if got := f.Bytes(); grew != 2 || got != budget {
		t.Errorf("the filter grew %d times to %d bytes; want twice (64, 64 and 128 KiB), to its budget %d", grew, got, budget)
	}
	for i := range n {
		if f.Absent(key('k', i)) {
			t.Fatalf("added key %d answered absent", i)
		}
	}
	const m = 100_000
	absent := 0
	for i := range m {
		if f.Absent(key('x', i)) {
			absent++
		}
	}
	// Generations of 64, 64 and 128 KiB, each (nearly) full at 10 bits a
	// key, 1.1% unanswered: ~3.3%.
	if absent < m*95/100 {
		t.Errorf("%d of %d new keys known absent; want at least 95%%", absent, m)
	}
}

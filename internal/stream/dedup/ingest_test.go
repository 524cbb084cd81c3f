package dedup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// TestIngestedTableSurvivesCrash: once a buffer's write has returned, its
// keys and Covered are on disk (the table synced and named in the
// MANIFEST before its ingestion returned): a crash right after it, with
// no flush of pebble's, loses none of them, in a new index (whose format
// key must be on disk too, or the reopened index is damaged) and when the
// memtable holds a key inside the table's bounds (where pebble would
// otherwise queue the table behind the memtable, unnamed in the MANIFEST
// until the memtable's flush).
func TestIngestedTableSurvivesCrash(t *testing.T) {
	for _, c := range []struct {
		name     string
		memtable bool
	}{
		{"new index", false},
		{"memtable overlaps the table", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			opt := Options{Dir: t.TempDir(), MemoryBytes: MinMemoryBytes, bufferKeys: 1000}
			x, err := Open(opt)
			if err != nil {
				t.Fatal(err)
			}
			if c.memtable {
				// A Covered operand below the table's, in the memtable
				// (as an older release's replayed log leaves entries).
				if err := x.db.Merge(coveredKey, []byte{0, 0, 0, 0, 0, 0, 0, 1}, pebble.NoSync); err != nil {
					t.Fatal(err)
				}
			}
			addSeq(t, x, 1, 1000) // a full buffer: written
			if err := x.flush(); err != nil {
				t.Fatal(err)
			}
			crash(x)
			y, err := Open(opt)
			if err != nil {
				t.Fatalf("reopened after the crash: %v", err)
			}
			defer y.Close()
			if got := y.Covered(); got != 1000 {
				t.Errorf("Covered %d after the crash, want 1000 (the table's)", got)
			}
			checkSeq(t, y, 1, 1000)
		})
	}
}

// TestDropLeavesOutItsOwnEntries: a buffer whose Adds span the turn of two
// windows holds entries of a partition its own write drops. Its table's
// range deletion shares the sequence number of the table's entries and
// so hides none of them: they are left out of the table, and the store
// holds only the live partition's entries, as it did when the buffer's
// batch deleted its own earlier entries.
func TestDropLeavesOutItsOwnEntries(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 5, 10, 30, 0, 0, time.UTC)}
	x, err := openClock(Options{Dir: t.TempDir(), Window: time.Hour}, c.now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	add(t, x, []Key{key("a"), key("b")}, []uint64{1 << 16, 2 << 16}, 2) // partition 10:00
	c.advance(2 * time.Hour)                                            // 12:30: 10:00 is dropped
	add(t, x, []Key{key("c")}, []uint64{3 << 16}, 3)
	if err := x.flush(); err != nil { // one table: a, b, c and the drop
		t.Fatal(err)
	}
	if n := storeEntries(t, x); n != 1 {
		t.Errorf("the store holds %d entries after a table that drops a and b's partition, want 1 (c)", n)
	}
	if n := rangeDeletions(t, x); n != 1 {
		t.Errorf("%d range deletions in the store's tables, want 1", n)
	}
	if got := check(t, x, key("c")); got[0] != 3<<16 {
		t.Errorf("c at %#x, want 0x30000", got[0])
	}
}

// TestLeftoverTableRemovedAtOpen: a table built for ingestion but not
// ingested (a crash between the two) is removed when the index opens; its
// Adds are not in the index, and Covered does not claim them.
func TestLeftoverTableRemovedAtOpen(t *testing.T) {
	opt := Options{Dir: t.TempDir(), MemoryBytes: MinMemoryBytes}
	x, err := Open(opt)
	if err != nil {
		t.Fatal(err)
	}
	addSeq(t, x, 1, 100)
	x.buf.mu.Lock()
	p := x.buf.active
	x.buf.mu.Unlock()
	path, err := x.buildTable(p)
	if err != nil {
		t.Fatal(err)
	}
	crash(x)
	if path != filepath.Join(opt.Dir, ingestFile) {
		t.Fatalf("table built at %s, want %s", path, filepath.Join(opt.Dir, ingestFile))
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the table built: %v", err)
	}
	y, err := Open(opt)
	if err != nil {
		t.Fatal(err)
	}
	defer y.Close()
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the table left by the crash: %v, want removed at Open", err)
	}
	if got := y.Covered(); got != 0 {
		t.Errorf("Covered %d, want 0", got)
	}
	if got := check(t, y, key("1")); got[0] != 0 {
		t.Errorf("a key of the table not ingested found at %#x", got[0])
	}
}

// l0Tables adds full buffers of 100 keys, each written before the next,
// until L0 holds n sublevels; it returns the next position.
func l0Tables(t *testing.T, x *Index, n int) int {
	t.Helper()
	next := 1
	for range 4 * n {
		if int(x.db.Metrics().Levels[0].Sublevels) >= n {
			return next
		}
		addSeq(t, x, next, next+99)
		next += 100
		if err := x.flush(); err != nil {
			t.Fatal(err)
		}
	}
	t.Fatalf("L0 holds %d sublevels, want %d", x.db.Metrics().Levels[0].Sublevels, n)
	return 0
}

// TestWritesWaitAtL0Limit: pebble stops its writes at
// L0StopWritesThreshold sublevels but not its ingestions, so the index
// waits itself: a buffer's write waits while L0 is at the limit, Adds wait
// once the next buffer is full too, and both go on when a compaction has
// brought L0 down; the wait is bounded (stallWait): past it the table is
// ingested anyway.
func TestWritesWaitAtL0Limit(t *testing.T) {
	t.Run("until a compaction", func(t *testing.T) {
		x := open(t, Options{MemoryBytes: MinMemoryBytes, bufferKeys: 100, stopWrites: 3, noCompactions: true})
		next := l0Tables(t, x, 3)
		addSeq(t, x, next, next+99) // full: its write waits
		added := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			defer close(added)
			addSeq(t, x, next+100, next+199) // the next buffer full
			addSeq(t, x, next+200, next+200) // waits for the write
		})
		held := time.After(300 * time.Millisecond)
	wait:
		for {
			select {
			case <-added:
				t.Fatal("an Add returned while both buffers were full and L0 at its limit")
			case <-held:
				break wait
			case <-time.After(10 * time.Millisecond):
				if n := x.db.Metrics().Levels[0].Sublevels; n != 3 {
					t.Fatalf("L0 at %d sublevels, want 3: a table ingested past the limit", n)
				}
			}
		}
		if err := x.db.Compact(context.Background(), []byte{entryKind}, []byte{metaKind + 1}, false); err != nil {
			t.Fatal(err)
		}
		select {
		case <-added:
		case <-time.After(10 * time.Second):
			t.Fatal("the Add still waits after L0 was compacted")
		}
		wg.Wait()
		if err := x.flush(); err != nil {
			t.Fatal(err)
		}
		checkSeq(t, x, 1, next+200)
		if got := x.Covered(); got != uint64(next+200) {
			t.Errorf("Covered %d, want %d", got, next+200)
		}
	})
	t.Run("bounded", func(t *testing.T) {
		x := open(t, Options{MemoryBytes: MinMemoryBytes, bufferKeys: 100, stopWrites: 3, noCompactions: true, stallWait: 200 * time.Millisecond})
		next := l0Tables(t, x, 3)
		start := time.Now()
		addSeq(t, x, next, next+99)
		if err := x.flush(); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < 200*time.Millisecond {
			t.Errorf("the write waited %v, want the 200ms of stallWait", d)
		}
		if n := x.db.Metrics().Levels[0].Sublevels; n != 4 {
			t.Errorf("L0 at %d sublevels after the wait, want 4", n)
		}
		checkSeq(t, x, 1, next+99)
	})
}

// TestWriteErrorIsFatal: a buffer's write that fails (here its table
// cannot be created) ends the process (fatalf, slogLogger.Fatalf outside
// tests) with the error; nothing of the buffer is on disk, and Covered on
// disk stays where it was.
func TestWriteErrorIsFatal(t *testing.T) {
	opt := Options{Dir: t.TempDir(), MemoryBytes: MinMemoryBytes, bufferKeys: 100}
	x, err := Open(opt)
	if err != nil {
		t.Fatal(err)
	}
	var fatal []string
	x.fatalf = func(format string, args ...any) { fatal = append(fatal, fmt.Sprintf(format, args...)) }
	addSeq(t, x, 1, 100)
	if err := x.flush(); err != nil {
		t.Fatal(err)
	}
	// A directory that is not empty where the table goes: neither
	// created nor removed.
	if err := os.MkdirAll(filepath.Join(opt.Dir, ingestFile, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	addSeq(t, x, 101, 200)
	if err := x.flush(); err == nil {
		t.Error("flush after a failed write: no error")
	}
	if len(fatal) != 1 || !strings.Contains(fatal[0], "write de-duplication index: ") {
		t.Fatalf("fatalf called with %q, want once with the write's error", fatal)
	}
	if c := storedCovered(t, x); c != 100 {
		t.Errorf("Covered on disk %d after the failed write, want 100", c)
	}
	crash(x)
	if err := os.RemoveAll(filepath.Join(opt.Dir, ingestFile)); err != nil {
		t.Fatal(err)
	}
	y, err := Open(opt)
	if err != nil {
		t.Fatal(err)
	}
	defer y.Close()
	if got := y.Covered(); got != 100 {
		t.Errorf("reopened: Covered %d, want 100", got)
	}
	checkSeq(t, y, 1, 100)
}

// TestFirstTableInL0: a new index's first table goes to L0, as a flush
// put it, not to the empty bottom level, where pebble would size the
// levels from it and L0 together and compact L0 into a level above the
// bottom one (its tables then rewritten on their way down). Each table
// holds the format key, and so overlaps the format key's table a new
// index flushed to L0 at Open; they stack over it, one sublevel each.
func TestFirstTableInL0(t *testing.T) {
	x := open(t, Options{MemoryBytes: MinMemoryBytes, bufferKeys: 100})
	for i := range 3 {
		addSeq(t, x, 1+100*i, 100+100*i)
		if err := x.flush(); err != nil {
			t.Fatal(err)
		}
	}
	m := x.db.Metrics()
	for l := 1; l < len(m.Levels); l++ {
		if n := m.Levels[l].TablesCount; n != 0 {
			t.Errorf("L%d holds %d tables, want none", l, n)
		}
	}
	if n := m.Levels[0].Sublevels; n != 4 {
		t.Errorf("L0 at %d sublevels, want 4 (the format key's table under one a buffer)", n)
	}
	checkSeq(t, x, 1, 300)
}

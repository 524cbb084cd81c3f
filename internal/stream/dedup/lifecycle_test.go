package dedup

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// addKeys adds the keys of "0", "1", … "n-1" at positions 1<<16, 2<<16, …
// in Adds of 500, covering each Add's last position.
func addKeys(x *Index, n int) error {
	for lo := 0; lo < n; lo += 500 {
		var keys []Key
		var pos []uint64
		for i := lo; i < min(lo+500, n); i++ {
			keys, pos = append(keys, key(fmt.Sprint(i))), append(pos, uint64(i+1)<<16)
		}
		if err := x.Add(keys, pos, uint64(len(pos))); err != nil {
			return err
		}
	}
	return nil
}

// TestOpenWhileClosing is a start during a previous owner's shutdown, in
// process: while the first index of a directory closes (writing out its
// buffers), a second Open of the directory fails plainly, "in use" with
// the directory named and not ErrDamaged (which would have its caller
// remove the directory), until the first has closed; then it opens and
// finds every key the first one added. Never a panic, never a damaged
// index.
func TestOpenWhileClosing(t *testing.T) {
	const n = 20000
	for round := range 2 {
		dir := t.TempDir()
		a, err := Open(Options{Dir: dir, MemoryBytes: MinMemoryBytes, bufferKeys: 3000})
		if err != nil {
			t.Fatal(err)
		}
		if err := addKeys(a, n); err != nil {
			t.Fatal(err)
		}
		closed := make(chan error, 1)
		go func() { closed <- a.Close() }()
		var b *Index
		refused := 0
		deadline := time.Now().Add(30 * time.Second)
		for b == nil {
			b, err = Open(Options{Dir: dir, MemoryBytes: MinMemoryBytes})
			if err == nil {
				break
			}
			if errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "in use") || !strings.Contains(err.Error(), dir) {
				t.Fatalf("round %d: Open while the first closes: %v, want in use, naming %s", round, err, dir)
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: still in use after 30s", round)
			}
			refused++
			time.Sleep(time.Millisecond) // poll
		}
		if err := <-closed; err != nil {
			t.Errorf("round %d: Close of the first: %v", round, err)
		}
		t.Logf("round %d: %d Opens refused while the first closed", round, refused)
		keys := make([]Key, n)
		for i := range keys {
			keys[i] = key(fmt.Sprint(i))
		}
		got, err := b.Check(keys)
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range got {
			if p != uint64(i+1)<<16 {
				t.Fatalf("round %d: key %d at %d after reopening, want %d", round, i, p, uint64(i+1)<<16)
			}
		}
		if c := b.Covered(); c != 500 {
			t.Errorf("round %d: Covered %d after reopening, want 500", round, c)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// fatalChild is set in the process TestFatalStoreErrorEndsProcess starts.
const fatalChild = "CAPSTAN_DEDUP_FATAL_CHILD"

// TestFatalStoreErrorEndsProcess: the index's directory removed from
// under it while it writes (an "rm -rf" of the data directory while
// capstan still runs) makes pebble call its logger's Fatalf (a log it
// recycles, a table it compacts, is gone). The process ends with status 1
// after an error line that names the index and says why, not with a
// panic unwound through pebble's mutexes ("fatal error: sync: unlock of
// unlocked mutex"), what a capstan started during the shutdown of another
// on the same data directory once printed. Run in a child process.
func TestFatalStoreErrorEndsProcess(t *testing.T) {
	if os.Getenv(fatalChild) != "" {
		dir := t.TempDir()
		x, err := Open(Options{Dir: dir, MemoryBytes: MinMemoryBytes, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
		if err != nil {
			t.Fatal(err)
		}
		if err := addKeys(x, 50_000); err != nil {
			t.Fatal(err)
		}
		// Background writes may add files while it removes: again.
		for range 10 {
			if err = os.RemoveAll(dir); err == nil {
				break
			}
		}
		err = addKeys(x, 300_000)
		fmt.Fprintf(os.Stderr, "the index went on after its directory was removed: %v; Close: %v\n", err, x.Close())
		os.Exit(3)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestFatalStoreErrorEndsProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), fatalChild+"=1")
	out, _ := cmd.CombinedOutput()
	code := cmd.ProcessState.ExitCode()
	text := string(out)
	if code != 1 || !strings.Contains(text, "level=ERROR") || !strings.Contains(text, "de-duplication index: fatal store error; capstan stops: ") ||
		!strings.Contains(text, "component=dedup") || strings.Contains(text, "unlock of unlocked") || strings.Contains(text, "panic:") {
		if len(text) > 4000 {
			text = text[:4000] + "…"
		}
		t.Errorf("the child ended with status %d, want 1 after the error line (no panic):\n%s", code, text)
	}
}

// TestRebuildHoldsLock: a rebuild (OpenEmpty of a damaged index, Rebuild
// of one ahead of its stream) empties the directory and opens the new
// index while holding the directory's lock, so a second opener at any
// point of it (two replicas misconfigured onto one directory, with an
// external engine and so no data-directory lock) is refused "in use"
// rather than opening the directory being emptied. The new index is empty
// and holds none of the old files.
func TestRebuildHoldsLock(t *testing.T) {
	var during []error
	afterClear = func(dir string) {
		y, err := Open(Options{Dir: dir, MemoryBytes: MinMemoryBytes})
		if err == nil {
			y.Close()
		}
		during = append(during, err)
	}
	defer func() { afterClear = nil }()
	for _, how := range []string{"OpenEmpty", "Rebuild"} {
		t.Run(how, func(t *testing.T) {
			during = nil
			dir := t.TempDir()
			a, err := Open(Options{Dir: dir, MemoryBytes: MinMemoryBytes})
			if err != nil {
				t.Fatal(err)
			}
			if err := addKeys(a, 1000); err != nil {
				t.Fatal(err)
			}
			stray := dir + "/stray"
			if err := os.WriteFile(stray, []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
			var b *Index
			if how == "Rebuild" {
				b, err = a.Rebuild()
			} else {
				if err := a.Close(); err != nil {
					t.Fatal(err)
				}
				b, err = OpenEmpty(Options{Dir: dir, MemoryBytes: MinMemoryBytes})
			}
			if err != nil {
				t.Fatalf("%s: %v", how, err)
			}
			defer b.Close()
			if len(during) != 1 {
				t.Fatalf("%s: the directory was emptied %d times, want 1", how, len(during))
			}
			if err := during[0]; err == nil || errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "in use") {
				t.Errorf("Open during %s: %v, want in use", how, err)
			}
			if got := b.Covered(); got != 0 {
				t.Errorf("after %s: Covered = %d, want 0", how, got)
			}
			if got := check(t, b, key("0"), key("999")); got[0] != 0 || got[1] != 0 {
				t.Errorf("after %s: old keys found at %v", how, got)
			}
			if _, err := os.Stat(stray); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("after %s: stray file: %v, want removed", how, err)
			}
			if _, err := Open(Options{Dir: dir, MemoryBytes: MinMemoryBytes}); err == nil || !strings.Contains(err.Error(), "in use") {
				t.Errorf("Open after %s: %v, want in use", how, err)
			}
			if _, err := a.Rebuild(); !errors.Is(err, ErrClosed) {
				t.Errorf("Rebuild of a closed index: %v, want ErrClosed", err)
			}
		})
	}
}

// addSeq adds the keys of events first to last ("first", …, "last") at
// positions first<<16, …, in Adds of 500, each covering its last event.
func addSeq(t *testing.T, x *Index, first, last int) {
	t.Helper()
	for lo := first; lo <= last; lo += 500 {
		var keys []Key
		var pos []uint64
		hi := min(lo+499, last)
		for i := lo; i <= hi; i++ {
			keys, pos = append(keys, key(fmt.Sprint(i))), append(pos, uint64(i)<<16)
		}
		add(t, x, keys, pos, uint64(hi))
	}
}

// checkSeq fails unless the index holds the keys of events first to last
// at their positions.
func checkSeq(t *testing.T, x *Index, first, last int) {
	t.Helper()
	var keys []Key
	for i := first; i <= last; i++ {
		keys = append(keys, key(fmt.Sprint(i)))
	}
	for i, p := range check(t, x, keys...) {
		if want := uint64(first+i) << 16; p != want {
			t.Fatalf("event %d: position %#x, want %#x (of events %d-%d)", first+i, p, want, first, last)
		}
	}
}

// crash ends x as a killed process would: its buffers and whatever of
// the store was not flushed to tables are lost (pebble's Close without a
// flush drops its memtables, there being no write-ahead log).
func crash(x *Index) {
	x.filters.stop.Store(true)
	<-x.filters.built
	x.mu.Lock()
	defer x.mu.Unlock()
	x.closed = true
	x.buf.writes.Wait()
	_ = x.db.Close()
	x.cache.Unref()
	x.lock.Close()
}

// TestCrashCoveredOnDisk: the index has no write-ahead log, so a crash
// keeps only what pebble flushed to tables, and Covered on disk must
// claim no event whose key the crash lost: after a crash (some batches
// flushed, the buffer and any batch not yet flushed lost), the reopened
// index holds every key up to its Covered, which is at least what was
// flushed and short of the lost buffer; caught up from there (as
// OpenDedup does from the stream), then closed cleanly, it reopens with
// everything and reads nothing again.
func TestCrashCoveredOnDisk(t *testing.T) {
	const flushed = 24_000
	// Buffers of 12,000 keys, each batch (~530 KB) larger than half a
	// memtable (1 MB for MinMemoryBytes), so queued for a flush of its own
	// as a full buffer's batch is: 15,000 more events are one batch
	// written and a buffer lost, 40,000 three batches and a buffer.
	for _, extra := range []int{15_000, 40_000} {
		dir := t.TempDir()
		opt := Options{Dir: dir, MemoryBytes: MinMemoryBytes, bufferKeys: 12_000}
		x, err := Open(opt)
		if err != nil {
			t.Fatal(err)
		}
		addSeq(t, x, 1, flushed)
		if err := x.flush(); err != nil {
			t.Fatal(err)
		}
		if err := x.db.Flush(); err != nil {
			t.Fatal(err)
		}
		last := flushed + extra
		addSeq(t, x, flushed+1, last)
		crash(x)

		y, err := Open(opt)
		if err != nil {
			t.Fatal(err)
		}
		c := int(y.Covered())
		t.Logf("%d events added, %d flushed: Covered %d after the crash", last, flushed, c)
		if c < flushed || c >= last {
			t.Errorf("Covered %d after the crash, want %d to %d (flushed, not the lost buffer)", c, flushed, last-1)
		}
		checkSeq(t, y, 1, c)
		addSeq(t, y, c+1, last) // the catch-up
		if err := y.Close(); err != nil {
			t.Fatal(err)
		}

		z, err := Open(opt)
		if err != nil {
			t.Fatal(err)
		}
		if got := z.Covered(); got != uint64(last) {
			t.Errorf("Covered %d after a clean close, want %d", got, last)
		}
		checkSeq(t, z, 1, last)
		if err := z.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

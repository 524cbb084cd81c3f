package localdb

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"
)

func openTest(t *testing.T) *DB {
	t.Helper()
	d, err := Open(Options{Dir: t.TempDir(), MemoryBytes: 8 << 20, What: "test store"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// TestClosedUses: after Close, every use fails with an error wrapping
// ErrClosed that names the store; a second Close returns the first's
// result.
func TestClosedUses(t *testing.T) {
	d := openTest(t)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	_, _, figErr := d.Figures()
	_, sweepErr := d.Sweep([]byte{0}, []byte{0xff}, func(_, _ []byte) bool { return true }, func([]byte) *sync.Mutex { return new(sync.Mutex) })
	for name, err := range map[string]error{
		"Acquire":    d.Acquire(),
		"Checkpoint": d.Checkpoint(filepath.Join(t.TempDir(), "copy")),
		"Figures":    figErr,
		"Sweep":      sweepErr,
	} {
		if !errors.Is(err, ErrClosed) || err.Error() != "test store closed" {
			t.Errorf("%s after Close: %v, want %q wrapping ErrClosed", name, err, "test store closed")
		}
	}
}

// TestSecondCloseWaits: a Close while another is under way (two goroutines
// stopping one store) returns only when the first is done, with its
// result: the directory's lock is free by then, so the store reopens.
func TestSecondCloseWaits(t *testing.T) {
	d := openTest(t)
	if err := d.Acquire(); err != nil { // holds the first Close up
		t.Fatal(err)
	}
	first, second := make(chan error, 1), make(chan error, 1)
	go func() { first <- d.Close() }()
	<-d.stop // the first Close has begun
	go func() { second <- d.Close() }()
	select {
	case err := <-second:
		t.Fatalf("the second Close returned (%v) before the first was done", err)
	case <-time.After(50 * time.Millisecond):
	}
	d.Release()
	if err := <-second; err != nil {
		t.Errorf("second Close: %v, want the first's result, nil", err)
	}
	// The second has returned: the store is closed, its lock released.
	c, err := Open(Options{Dir: d.dir, MemoryBytes: 8 << 20, What: "again"})
	if err != nil {
		t.Fatalf("Open after the second Close returned: %v", err)
	}
	c.Close()
	if err := <-first; err != nil {
		t.Errorf("first Close: %v", err)
	}
}

// TestCloseWaitsForUses: Close waits for a use under way (Acquire) before
// it closes the database, and the uses that begin meanwhile fail.
func TestCloseWaitsForUses(t *testing.T) {
	d := openTest(t)
	if err := d.Acquire(); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error)
	go func() { closed <- d.Close() }()
	<-d.stop                          // Close has begun
	time.Sleep(20 * time.Millisecond) // and waits for the lock
	if err := d.Set([]byte("k"), []byte("v"), pebble.NoSync); err != nil {
		t.Fatalf("a write of a use under way during Close: %v", err)
	}
	d.Dirty()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) before the use under way ended", err)
	default:
	}
	d.Release()
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if err := d.Acquire(); !errors.Is(err, ErrClosed) {
		t.Errorf("Acquire after Close: %v", err)
	}
}

// TestCheckpoint: a checkpoint holds the writes made without sync before
// it (the log is flushed), and opens as a store; into a directory that
// exists it fails, naming the store.
func TestCheckpoint(t *testing.T) {
	d := openTest(t)
	if err := d.Set([]byte("k"), []byte("v"), pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "copy")
	if err := d.Checkpoint(dir); err != nil {
		t.Fatal(err)
	}
	if err := d.Checkpoint(dir); err == nil || !strings.HasPrefix(err.Error(), "checkpoint test store: ") {
		t.Errorf("checkpoint into a directory that exists: %v", err)
	}
	c, err := Open(Options{Dir: dir, MemoryBytes: 8 << 20, What: "copy"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	v, closer, err := c.Get([]byte("k"))
	if err != nil {
		t.Fatalf("the checkpoint lacks a write made before it: %v", err)
	}
	defer closer.Close()
	if string(v) != "v" {
		t.Errorf("checkpoint has %q, want %q", v, "v")
	}
}

// TestSweepStoppedByClose: a Close during a sweep stops it at the next
// key, with the error of a closed store, and waits for it.
func TestSweepStoppedByClose(t *testing.T) {
	d := openTest(t)
	for _, k := range []string{"a", "b", "c"} {
		if err := d.Set([]byte(k), nil, pebble.NoSync); err != nil {
			t.Fatal(err)
		}
	}
	closed := make(chan error, 1)
	var seen int
	n, err := d.Sweep([]byte("a"), []byte("z"), func(_, _ []byte) bool {
		if seen++; seen == 1 {
			go func() { closed <- d.Close() }()
			<-d.stop
		}
		return true
	}, func([]byte) *sync.Mutex { return new(sync.Mutex) })
	if n != 0 || !errors.Is(err, ErrClosed) || seen != 1 {
		t.Errorf("sweep during Close: %d removed, %d keys read, %v; want 0, 1 and ErrClosed", n, seen, err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
}

// TestStartSweeps: the sweeps run every interval until Close, which waits
// for them; after Close none starts.
func TestStartSweeps(t *testing.T) {
	d := openTest(t)
	var calls atomic.Int64
	ran := make(chan struct{}, 1)
	d.StartSweeps(time.Millisecond, func() (int, error) {
		calls.Add(1)
		select {
		case ran <- struct{}{}:
		default:
		}
		return 0, nil
	}, "test keys")
	<-ran
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	after := calls.Load()
	d.StartSweeps(time.Millisecond, func() (int, error) { calls.Add(1); return 0, nil }, "test keys")
	time.Sleep(20 * time.Millisecond)
	if got := calls.Load(); got != after {
		t.Errorf("%d sweeps after Close", got-after)
	}
}

// TestCollector: the collector reports the store's figures under the
// prefix, with the helps naming the owner, the keys Sweep removed, and
// nothing after Close.
func TestCollector(t *testing.T) {
	d := openTest(t)
	for _, k := range []string{"a1", "a2", "a3", "b1"} {
		if err := d.Set([]byte(k), []byte("v"), pebble.NoSync); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Flush(); err != nil {
		t.Fatal(err)
	}
	n, err := d.Sweep([]byte("a"), []byte("b"), func(k, _ []byte) bool { return k[1] != '3' }, func([]byte) *sync.Mutex { return new(sync.Mutex) })
	if err != nil || n != 2 {
		t.Fatalf("sweep: %d, %v; want 2", n, err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(d.Collector(Metrics{Prefix: "capstan_test_store", Owner: "the test's", Removed: "Test keys removed."}))
	got := gather(t, reg)
	want := map[string]string{
		"capstan_test_store_keys":                  "Entries in the test's local store tables (an estimate: deleted and replaced ones count until compaction drops them).",
		"capstan_test_store_disk_bytes":            "Disk space of the test's local store files.",
		"capstan_test_store_expired_removed_total": "Test keys removed.",
		"capstan_test_store_filter_rebuilds_total": "Rebuilds of the test's local store's filter of absent keys from the keys it holds " +
			"(once the sweeps removed half of the keys the full filter held).",
	}
	for name, help := range want {
		if got[name].help != help {
			t.Errorf("%s help %q, want %q", name, got[name].help, help)
		}
	}
	if got["capstan_test_store_keys"].value != 4 || got["capstan_test_store_disk_bytes"].value <= 0 || got["capstan_test_store_expired_removed_total"].value != 2 ||
		got["capstan_test_store_filter_rebuilds_total"].value != 0 {
		t.Errorf("figures %+v; want 4 keys (the flushed table's), some disk, 2 removed", got)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if got := gather(t, reg); len(got) != 0 {
		t.Errorf("after Close: %+v, want none", got)
	}
}

type metric struct {
	help  string
	value float64
}

func gather(t *testing.T, reg *prometheus.Registry) map[string]metric {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]metric{}
	for _, mf := range mfs {
		m := mf.GetMetric()[0]
		got[mf.GetName()] = metric{mf.GetHelp(), m.GetGauge().GetValue() + m.GetCounter().GetValue()}
	}
	return got
}

// TestCheckFormat: a new store takes the format, durably; a store of
// another format is refused, saying both.
func TestCheckFormat(t *testing.T) {
	dir := t.TempDir()
	key := []byte("mformat")
	d, err := Open(Options{Dir: dir, MemoryBytes: 8 << 20, What: "test store"})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.CheckFormat(key, "test-1"); err != nil {
		t.Fatalf("new store: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d, err = Open(Options{Dir: dir, MemoryBytes: 8 << 20, What: "test store"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.CheckFormat(key, "test-1"); err != nil {
		t.Errorf("same format: %v", err)
	}
	if err := d.CheckFormat(key, "test-2"); err == nil || err.Error() != `format "test-1", want "test-2"` {
		t.Errorf("another format: %v", err)
	}
}

// fatalChild is set in the process TestFatalStoreErrorEndsProcess starts.
const fatalChild = "CAPSTAN_LOCALDB_FATAL_CHILD"

// TestFatalStoreErrorEndsProcess: the store's directory removed from under
// it while it is written (an "rm -rf" of the data directory while capstan
// still runs) makes pebble call its logger's Fatalf. The process ends with
// status 1 after an error line that names the store and says why, not
// with a panic unwound through pebble's mutexes ("fatal error: sync:
// unlock of unlocked mutex"). Run in a child process.
func TestFatalStoreErrorEndsProcess(t *testing.T) {
	if os.Getenv(fatalChild) != "" {
		dir := t.TempDir()
		d, err := Open(Options{Dir: dir, MemoryBytes: 8 << 20, What: "test store", Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
		if err != nil {
			t.Fatal(err)
		}
		write := func(from, n int) error {
			v := make([]byte, 100)
			for lo := from; lo < from+n; lo += 1000 {
				b := d.NewBatch()
				for i := lo; i < lo+1000; i++ {
					if err := b.Set(fmt.Appendf(nil, "k%09d", i), v, nil); err != nil {
						return err
					}
				}
				if err := b.Commit(pebble.NoSync); err != nil {
					return err
				}
				_ = b.Close()
			}
			return nil
		}
		if err := write(0, 50_000); err != nil {
			t.Fatal(err)
		}
		// Background writes may add files while it removes: again.
		for range 10 {
			if err = os.RemoveAll(dir); err == nil {
				break
			}
		}
		err = write(50_000, 300_000)
		fmt.Fprintf(os.Stderr, "the store went on after its directory was removed: %v; Close: %v\n", err, d.Close())
		os.Exit(3)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestFatalStoreErrorEndsProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), fatalChild+"=1")
	out, _ := cmd.CombinedOutput()
	code := cmd.ProcessState.ExitCode()
	text := string(out)
	if code != 1 || !strings.Contains(text, "level=ERROR") || !strings.Contains(text, "test store: fatal store error; capstan stops: ") ||
		strings.Contains(text, "unlock of unlocked") || strings.Contains(text, "panic:") {
		if len(text) > 4000 {
			text = text[:4000] + "…"
		}
		t.Errorf("the child ended with status %d, want 1 after the error line (no panic):\n%s", code, text)
	}
}

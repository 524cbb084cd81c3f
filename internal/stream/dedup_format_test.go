package stream

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// TestDedupIndexOfOlderFormatRebuilt: a data directory of an older release,
// whose index has another format (keys derived with HMAC-SHA256, format
// 1), keeps working after the upgrade: the index is rebuilt from the
// events of the window at start, with a log line saying so, and the retry
// of an event stored before the upgrade is still a duplicate.
func TestDedupIndexOfOlderFormatRebuilt(t *testing.T) {
	dir := t.TempDir()
	_, _, w0, stop := openDedupWriter(t, dir)
	appendOK(t, w0, track("a"), track("b"))
	stop()
	olderIndex(t, dir+"/dedup")

	var (
		mu   sync.Mutex
		logs bytes.Buffer
	)
	log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))
	eng, _, w, _ := openDedupWriterLog(t, dir, log)

	mu.Lock()
	out := logs.String()
	mu.Unlock()
	for _, want := range []string{"of another format (an upgrade); rebuilding it", "capstan-dedup-pebble-1", "events_read=2"} {
		if !strings.Contains(out, want) {
			t.Errorf("log at start lacks %q:\n%s", want, out)
		}
	}
	if got := outcome(appendOK(t, w, track("a"), track("c"), track("b"))); got != "dsd" {
		t.Errorf("retries of events stored before the upgrade: %s, want dsd", got)
	}
	if got, want := storedIDs(t, eng), "[a b c]"; got != want {
		t.Errorf("stored %s, want %s", got, want)
	}
}

// olderIndex turns the index in dir into one an older release left: format
// 1, Covered still at the last event, and none of this release's keys
// (format 1's keys were HMAC-SHA256, which no Check of this release asks
// for): entries are removed with a range deletion, as format 1's keys
// would be missed.
func olderIndex(t *testing.T, dir string) {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{
		DisableWAL:         true,
		FormatMajorVersion: pebble.FormatNewest,
		Merger:             &pebble.Merger{Name: "capstan.dedup.v1", Merge: pebble.DefaultMerger.Merge},
		Logger:             quietPebble{},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteRange([]byte{'e'}, []byte{'f'}, pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	if err := db.Set([]byte("mformat"), []byte("capstan-dedup-pebble-1"), pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	if err := db.Flush(); err != nil { // no write-ahead log: to a table
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

type quietPebble struct{}

func (quietPebble) Infof(string, ...any)         {}
func (quietPebble) Errorf(string, ...any)        {}
func (quietPebble) Fatalf(f string, args ...any) { panic(f) }

package stream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// syncLog records what a blockSyncer fsyncs: the name of each file and, for
// block files, their content at that moment.
type syncLog struct {
	mu    sync.Mutex
	names []string
	data  [][]byte
}

func watchSyncs(t *testing.T, eng *Engine, stream string) *syncLog {
	t.Helper()
	s, err := eng.syncer(stream)
	if err != nil {
		t.Fatal(err)
	}
	l := &syncLog{}
	s.fsync = func(f *os.File) error {
		if err := f.Sync(); err != nil {
			return err
		}
		var b []byte
		if strings.HasSuffix(f.Name(), ".blk") {
			b, _ = os.ReadFile(f.Name())
		}
		l.mu.Lock()
		l.names = append(l.names, f.Name())
		l.data = append(l.data, b)
		l.mu.Unlock()
		return nil
	}
	return l
}

// syncedHolding reports whether a block holding marker was synced since the
// last take, and forgets what was synced; names lists the files synced.
func (l *syncLog) syncedHolding(marker string) (ok bool, names []string) {
	names, data := l.take()
	for _, b := range data {
		ok = ok || bytes.Contains(b, []byte(marker))
	}
	return ok, names
}

// take returns and forgets what was synced so far.
func (l *syncLog) take() ([]string, [][]byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, d := l.names, l.data
	l.names, l.data = nil, nil
	return n, d
}

// TestAppendSyncsTheBlockHoldingTheRecords is the proof behind "200 means on
// disk" on the embedded engine: when Append returns, a block file holding
// the record has been fsynced after the record was written to it, across
// block changes (32 KB blocks here), and every new block's directory entry
// was synced before the block; the directories from the data directory
// down to the stream's were synced once, first. If nats-server changed its
// file layout, this fails.
func TestAppendSyncsTheBlockHoldingTheRecords(t *testing.T) {
	dir := t.TempDir()
	// A small MaxBytes makes JetStream use its smallest blocks (32 KB), so
	// the appends below cross several.
	eng, app := openTest(t, Config{DataDir: dir, MaxBytes: 127_000})
	if !app.syncs || app.atomic {
		t.Fatalf("embedded engine with sync always: syncs %v, atomic %v", app.syncs, app.atomic)
	}
	log := watchSyncs(t, eng, EventsStream)
	msgs := filepath.Join(dir, "jetstream", "jetstream", "$G", "streams", EventsStream, "msgs")
	// The directories that name msgs, up to the data directory.
	var parents []string
	for d := filepath.Dir(msgs); ; d = filepath.Dir(d) {
		parents = append(parents, d)
		if d == dir {
			break
		}
	}
	blocks := map[string]bool{}
	pad := strings.Repeat("x", 1000)
	for i := range 100 {
		id := fmt.Sprintf("durable-%04d", i)
		r := record{Subject: "events.s.track", MsgID: id, Data: []byte(`{"id":"` + id + `","pad":"` + pad + `"}`)}
		res, err := app.Append(context.Background(), []record{r})
		if err != nil || res[0].Err != nil {
			t.Fatalf("append %d: %v %+v", i, err, res)
		}
		names, data := log.take()
		if i == 0 {
			if len(names) < len(parents) || !slices.Equal(names[:len(parents)], parents) {
				t.Fatalf("first sync: want the parent directories %q first, synced %q", parents, names)
			}
			names, data = names[len(parents):], data[len(parents):]
		}
		found := false
		for j, name := range names {
			if name == msgs {
				continue
			}
			if filepath.Dir(name) != msgs {
				t.Fatalf("synced %s, outside the stream's %s", name, msgs)
			}
			if !blocks[name] {
				// A block seen for the first time: its directory entry first.
				if j == 0 || names[j-1] != msgs {
					t.Errorf("record %d: new block %s synced without the directory before it: %q", i, name, names)
				}
				blocks[name] = true
			}
			found = found || bytes.Contains(data[j], []byte(id))
		}
		if !found {
			t.Fatalf("record %d: Append returned but no block holding it was synced (synced %q)", i, names)
		}
	}
	if len(blocks) < 3 {
		t.Errorf("the appends crossed %d blocks; the test wants several", len(blocks))
	}

	// A purge removes the blocks the syncer holds: it finds the new one.
	s, err := eng.JetStream().Stream(context.Background(), EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Purge(context.Background()); err != nil {
		t.Fatal(err)
	}
	res, err := app.Append(context.Background(), []record{rec("events.s.track", "after-purge")})
	if err != nil || res[0].Err != nil {
		t.Fatalf("append after purge: %v %+v", err, res)
	}
	if found, names := log.syncedHolding("after-purge"); !found {
		t.Fatalf("after a purge: no block holding the record was synced (synced %q)", names)
	}
}

// TestSyncCoalesces: callers that arrive while a sync runs share the next
// one, and none returns before a sync that started after its call.
func TestSyncCoalesces(t *testing.T) {
	eng, app := openTest(t, Config{DataDir: t.TempDir()})
	if _, err := app.Append(context.Background(), []record{rec("events.s.track", "m")}); err != nil {
		t.Fatal(err)
	}
	s, err := eng.syncer(EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var starts []time.Time
	s.fsync = func(f *os.File) error {
		mu.Lock()
		starts = append(starts, time.Now())
		mu.Unlock()
		time.Sleep(5 * time.Millisecond)
		return f.Sync()
	}
	const callers = 20
	var wg sync.WaitGroup
	calls := make([]time.Time, callers)
	for i := range callers {
		wg.Go(func() {
			calls[i] = time.Now()
			if err := eng.Sync(context.Background(), EventsStream); err != nil {
				t.Error(err)
			}
			// Some fsync must have started after this call.
			mu.Lock()
			defer mu.Unlock()
			if len(starts) == 0 || starts[len(starts)-1].Before(calls[i]) {
				t.Errorf("caller %d returned without a sync started after its call", i)
			}
		})
	}
	wg.Wait()
	if len(starts) >= callers {
		t.Errorf("%d callers, %d fsyncs: nothing shared", callers, len(starts))
	}
}

// TestSyncByAttachedTool: a tool attached to a running capstan asks it to
// sync; names that are not streams are refused.
func TestSyncByAttachedTool(t *testing.T) {
	dir := t.TempDir()
	owner, err := Open(context.Background(), Config{DataDir: dir, Listen: "127.0.0.1:0"}, discard)
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close()
	log := watchSyncs(t, owner, DLQStream)
	tool, err := Attach(context.Background(), Config{DataDir: dir}, discard)
	if err != nil {
		t.Fatal(err)
	}
	defer tool.Close()
	if tool.Embedded() || !tool.SyncsLocally() {
		t.Fatalf("attached tool: embedded %v, syncs locally %v", tool.Embedded(), tool.SyncsLocally())
	}
	if _, err := tool.JetStream().Publish(context.Background(), DLQSubject+".d.invalid", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := tool.Sync(context.Background(), DLQStream); err != nil {
		t.Fatal(err)
	}
	if names, _ := log.take(); len(names) == 0 {
		t.Error("the tool's Sync did not sync the owner's DLQ stream")
	}
	for _, bad := range []string{"", "../EVENTS", "NOPE"} {
		if err := tool.Sync(context.Background(), bad); err == nil {
			t.Errorf("Sync(%q) succeeded", bad)
		}
	}
}

// TestStateBucketSyncs: writes to a bucket from Engine.KV are synced before
// they return.
func TestStateBucketSyncs(t *testing.T) {
	eng, _ := openTest(t, Config{DataDir: t.TempDir()})
	kv, err := eng.KV(context.Background(), StateKV, 0)
	if err != nil {
		t.Fatal(err)
	}
	log := watchSyncs(t, eng, "KV_"+StateKV)
	if _, err := kv.Put(context.Background(), "token.d", []byte("secret-value")); err != nil {
		t.Fatal(err)
	}
	if found, names := log.syncedHolding("secret-value"); !found {
		t.Errorf("Put returned before its block was synced (synced %q)", names)
	}
}

// TestSyncFollowsBlockChanges: between syncs the file store may start a
// block, rewrite one (a new file renamed over it) or replace the msgs
// directory or the stream's (purge, delete); each sync must fsync the file
// now at the last block's path. On Linux the syncer watches the
// directories, and a sync with no change checks no path; each change below
// is a rename alone (what it renames was made before the sync before).
func TestSyncFollowsBlockChanges(t *testing.T) {
	root := t.TempDir()
	streams := filepath.Join(root, "jetstream", "streams")
	msgs := filepath.Join(streams, "S", "msgs")
	write := func(path, data string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rename := func(from, to string) {
		t.Helper()
		if err := os.Rename(from, to); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(msgs, "1.blk"), "one")
	s := newBlockSyncer(msgs, root)
	defer s.Close()
	var synced []os.FileInfo // the block files fsynced by the last Sync
	s.fsync = func(f *os.File) error {
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			synced = append(synced, fi)
		}
		return f.Sync()
	}
	// check syncs and wants the file at msgs/<index>.blk among those synced.
	check := func(step string, index int) {
		t.Helper()
		synced = nil
		if err := s.Sync(); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		want, err := os.Stat(filepath.Join(msgs, fmt.Sprintf("%d.blk", index)))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(synced, func(fi os.FileInfo) bool { return os.SameFile(fi, want) }) {
			t.Fatalf("%s: %d.blk not synced (%d block files synced)", step, index, len(synced))
		}
	}
	check("first", 1)
	if runtime.GOOS == "linux" && s.watch == nil {
		// Only the system's inotify limits may refuse it (the syncer then
		// checks the paths on every sync, as elsewhere).
		_, err := newDirWatch(msgs, root)
		if !errors.Is(err, syscall.EMFILE) && !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("no directory watch on Linux: %v", err)
		}
		t.Logf("no directory watch: %v", err)
	}
	checks := s.checks
	for range 3 {
		check("unchanged", 1)
	}
	if s.watch != nil && s.checks != checks {
		t.Errorf("3 syncs with no change checked the paths %d times", s.checks-checks)
	}

	write(filepath.Join(msgs, "2.tmp"), "two, compacted")
	write(filepath.Join(streams, "S", "new", "7.blk"), "seven")
	write(filepath.Join(streams, "S2", "msgs", "9.blk"), "nine")
	write(filepath.Join(msgs, "2.blk"), "two")
	check("new block", 2)
	check("new block, unchanged", 2)

	rename(filepath.Join(msgs, "2.tmp"), filepath.Join(msgs, "2.blk"))
	check("block rewritten", 2)

	// A purge: msgs moved away, another directory renamed in its place.
	rename(msgs, filepath.Join(streams, "S", "__msgs__"))
	rename(filepath.Join(streams, "S", "new"), msgs)
	check("msgs replaced", 7)

	// The stream deleted and made again.
	rename(filepath.Join(streams, "S"), filepath.Join(streams, ".S"))
	rename(filepath.Join(streams, "S2"), filepath.Join(streams, "S"))
	check("stream replaced", 9)
	checks = s.checks
	check("stream replaced, unchanged", 9)
	if s.watch != nil && s.checks != checks {
		t.Error("a sync with no change after the changes checked the paths")
	}

	// The stream's directory missing for a while: syncs fail, then find
	// the new one, watched again.
	watched := s.watch != nil
	rename(filepath.Join(streams, "S"), filepath.Join(streams, ".S2"))
	if err := s.Sync(); err == nil {
		t.Error("sync with the stream's directory missing: no error")
	}
	write(filepath.Join(msgs, "11.blk"), "eleven")
	check("stream back", 11)
	if watched && s.watch == nil {
		t.Error("no watch once the stream's directory is back")
	}
}

// TestSyncRescanCoversEveryNewBlock: when the syncer holds no block (its
// first sync, or the block it held was rewritten or purged), every block
// that may hold messages written since the last sync is fsynced, not only
// the highest: at the first sync all of them (the process may have filled
// the block it started with before that sync), after a rewrite the
// rewritten block and those after it, and in a stream made again all of
// its blocks.
func TestSyncRescanCoversEveryNewBlock(t *testing.T) {
	root := t.TempDir()
	streams := filepath.Join(root, "jetstream", "streams")
	msgs := filepath.Join(streams, "S", "msgs")
	if err := os.MkdirAll(msgs, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(dir string, i int, data string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%d.blk", i)), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s := newBlockSyncer(msgs, root)
	defer s.Close()
	var synced []string // the blocks fsynced by the last Sync, by name
	s.fsync = func(f *os.File) error {
		if strings.HasSuffix(f.Name(), ".blk") {
			synced = append(synced, filepath.Base(f.Name()))
		}
		return f.Sync()
	}
	check := func(step string, want ...string) {
		t.Helper()
		synced = nil
		if err := s.Sync(); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		slices.Sort(synced)
		if !slices.Equal(synced, want) {
			t.Errorf("%s: synced %v, want %v", step, synced, want)
		}
	}

	write(msgs, 1, "one")
	write(msgs, 2, "two")
	check("first sync", "1.blk", "2.blk")
	check("unchanged", "2.blk")

	// Block 2 rewritten (compacted and renamed over) while block 3 began.
	write(msgs, 3, "three")
	tmp := filepath.Join(msgs, "2.tmp")
	if err := os.WriteFile(tmp, []byte("two, compacted"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(msgs, "2.blk")); err != nil {
		t.Fatal(err)
	}
	check("block rewritten", "2.blk", "3.blk")

	// The stream deleted and made again: its blocks start at 1 again.
	again := filepath.Join(streams, "S2", "msgs")
	if err := os.MkdirAll(again, 0o755); err != nil {
		t.Fatal(err)
	}
	write(again, 1, "uno")
	write(again, 2, "dos")
	if err := os.Rename(filepath.Join(streams, "S"), filepath.Join(streams, ".S")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(streams, "S2"), filepath.Join(streams, "S")); err != nil {
		t.Fatal(err)
	}
	check("stream made again", "1.blk", "2.blk")
}

// blockStore is a stream's msgs directory for the syncer's tests: blocks
// appended to as the file store does, and each block's content as of its
// last fsync through the syncer (durable); onSync, when set, runs at a
// block's fsync, after its content is taken (a write during the fsync).
type blockStore struct {
	t       *testing.T
	msgs    string
	s       *blockSyncer
	durable map[string]string
	onSync  func(name string)
}

func newBlockStore(t *testing.T) *blockStore {
	root := t.TempDir()
	b := &blockStore{t: t, msgs: filepath.Join(root, "jetstream", "streams", "S", "msgs"), durable: map[string]string{}}
	if err := os.MkdirAll(b.msgs, 0o755); err != nil {
		t.Fatal(err)
	}
	b.s = newBlockSyncer(b.msgs, root)
	t.Cleanup(b.s.Close)
	b.s.fsync = func(f *os.File) error {
		name := filepath.Base(f.Name())
		if !strings.HasSuffix(name, ".blk") {
			return f.Sync()
		}
		data, err := os.ReadFile(f.Name())
		if err != nil {
			return err
		}
		b.durable[name] = string(data)
		if b.onSync != nil {
			b.onSync(name)
		}
		return f.Sync()
	}
	return b
}

// write appends data to block i.
func (b *blockStore) write(i int, data string) {
	b.t.Helper()
	f, err := os.OpenFile(filepath.Join(b.msgs, fmt.Sprintf("%d.blk", i)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		b.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(data); err != nil {
		b.t.Fatal(err)
	}
}

// sync calls Sync; what is then on disk is in durable.
func (b *blockStore) sync() {
	b.t.Helper()
	if err := b.s.Sync(); err != nil {
		b.t.Fatal(err)
	}
}

// TestSyncCoversBlockFilledDuringSync: messages written to a block while
// the syncer fsyncs it, after which the file store starts the next block,
// are made durable by the sync of a call made after them, although the
// syncer may have moved on to the next block by then: the block being
// opened (its first fsync), and the block held (its fsync at the start of
// a sync, without the directory watch, as elsewhere than on Linux, so that
// the same sync finds the next block).
func TestSyncCoversBlockFilledDuringSync(t *testing.T) {
	t.Run("opened", func(t *testing.T) {
		b := newBlockStore(t)
		b.write(1, "one")
		b.sync()
		b.onSync = func(name string) {
			if name == "2.blk" {
				b.onSync = nil
				b.write(2, ", late")
				b.write(3, "three")
			}
		}
		b.write(2, "two")
		b.sync() // finds block 2, and block 3 during its fsync
		b.sync() // the call made after ", late" was acknowledged
		if got, want := b.durable["2.blk"], "two, late"; got != want {
			t.Errorf("block 2 on disk: %q, want %q", got, want)
		}
		if got, want := b.durable["3.blk"], "three"; got != want {
			t.Errorf("block 3 on disk: %q, want %q", got, want)
		}
	})
	t.Run("held", func(t *testing.T) {
		b := newBlockStore(t)
		b.s.noWatch = true
		b.write(1, "one")
		b.sync()
		b.write(1, ", x")
		b.onSync = func(name string) {
			if name == "1.blk" {
				b.onSync = nil
				b.write(1, ", late")
				b.write(2, "two")
			}
		}
		b.sync() // holds block 1; finds block 2 after its fsync
		b.sync() // the call made after ", late" was acknowledged
		if got, want := b.durable["1.blk"], "one, x, late"; got != want {
			t.Errorf("block 1 on disk: %q, want %q", got, want)
		}
		if got, want := b.durable["2.blk"], "two"; got != want {
			t.Errorf("block 2 on disk: %q, want %q", got, want)
		}
	})
}

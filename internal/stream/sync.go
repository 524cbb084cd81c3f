package stream

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go/jetstream"
)

// Group commit on the embedded engine.
//
// JetStream makes a write durable before acknowledging it only when the
// whole server runs with sync_interval "always": every message is then
// written with its own fsync (5.7K messages/s here), unless it is part of an
// atomic batch, which JetStream stages in a temporary store of its own (a
// directory, a metadata file and their fsyncs, created and removed per batch)
// before committing it with one fsync. That staging runs in the stream's
// single goroutine and was the ceiling of ingest.
//
// The embedded engine does better with what its file store already does: a
// stream that is neither replicated nor in async persist mode writes each
// message to its block file (pwrite, no fsync) before acknowledging it. So the
// embedded server runs without sync "always", capstan publishes a group of
// records, waits for their acknowledgements, and then fsyncs the stream's
// active block file itself: one fsync makes the whole group durable, in
// capstan's goroutine, while the stream goes on writing the next group. Only
// then does ingest answer 200. The same call makes dead letters and the state
// bucket durable before capstan relies on them.
//
// This relies on the file store's layout, stable since nats-server 2.2:
// <store>/<account>/streams/<stream>/msgs/<index>.blk, the highest index being
// the block written to, a new block taking the next index. blockSyncer checks
// it (the file it holds must still be the one at that path, and no block may
// follow it) and re-reads the directory when it is not, and the tests check
// that the file synced holds the records just written. On Linux it checks
// the paths only after an inotify watch of the msgs directory and the ones
// above it saw an entry created, removed or renamed (a new block, a block
// rewritten and renamed over the old one, a purge or a deleted stream):
// between those, a sync is the fsync alone (dirWatch, syncwatch_linux.go;
// two stats of those paths were 3.1-3.5% of capstan's CPU at 2,000
// single-event requests/s). External clusters keep JetStream's
// own policy (the operator sets sync_interval: always there) and atomic
// batches.
//
// The sync is fsync, not fdatasync: on capstan's own disk the two cost the
// same, and the data alone is not enough. The file store appends, so every
// sync follows a change of the block's size and of its extents, which live
// in the inode: without the inode written, an acknowledged message past the
// old size is gone after a power loss, and fdatasync writes it then too. On
// ext4 without a journal (Linux 6.18 here, the AMD VM's data disk) a sync is
// three I/Os one after the other, each waited for: the data, the inode's
// table block (ext4_fsync_nojournal writes it through ext4_write_inode for
// fdatasync as well, whenever it is dirty, and an append always dirties
// it), then a cache flush of the device. Measured interleaved
// (bench/fsyncfloor -costs, 6 runs, load 12-17): the same writes, wake-ups
// and time per sync, CPU per sync within 2.4%; only a file overwritten in
// place skips the inode's write, for both, when its mtime did not change.
// On a journalled ext4 or XFS an append's fdatasync commits the size in the
// journal as fsync does. docs/storage.md, "What a sync costs on this VM
// (session 21)".

// blockSyncer fsyncs the block files of one stream of the embedded server.
type blockSyncer struct {
	dir  string // the stream's msgs directory
	root string // the data directory: its subdirectories down to dir are synced once

	// requested counts Sync calls; a sync that starts after call n was made
	// covers it, so concurrent callers share one fsync where they can.
	requested atomic.Uint64

	mu      sync.Mutex // held for a whole sync
	parents bool       // the directories from root down to dir are synced
	covered uint64     // calls made durable by the last successful sync
	index   uint64     // block index of f; 0 before the first block is found
	f       *os.File
	fi      os.FileInfo // f's identity, to notice a block rewritten in place
	// from is, while no block is held, the lowest block that may hold
	// messages written since the last sync (scanLocked): 0 at first, as
	// the syncer is made at the stream's first sync, when blocks may have
	// followed the one the process started with; then the block held until
	// it was purged or rewritten (the file store writes only to its last
	// block).
	from uint64
	// watch, when set, has seen no directory change since the paths were
	// last checked (dirWatch); noWatch: it cannot be made here.
	watch   *dirWatch
	noWatch bool
	checks  int // path checks made (tests)
	// fsync is (*os.File).Sync; tests wrap it to see what was synced.
	fsync func(*os.File) error
}

func newBlockSyncer(dir, root string) *blockSyncer {
	return &blockSyncer{dir: dir, root: root, fsync: (*os.File).Sync}
}

// Sync makes every message the stream acknowledged before the call durable.
func (s *blockSyncer) Sync() error {
	ticket := s.requested.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.covered >= ticket {
		return nil // a sync that started after this call already finished
	}
	upto := s.requested.Load()
	if err := s.syncLocked(); err != nil {
		return err
	}
	s.covered = upto
	return nil
}

func (s *blockSyncer) blockPath(index uint64) string {
	return filepath.Join(s.dir, strconv.FormatUint(index, 10)+".blk")
}

func (s *blockSyncer) syncLocked() error {
	if !s.parents {
		// Once: the directories that name the stream's directory, so that
		// a store created moments ago survives too.
		for d := filepath.Dir(s.dir); ; d = filepath.Dir(d) {
			if err := s.syncDir(d); err != nil {
				return err
			}
			if d == s.root || d == filepath.Dir(d) {
				break
			}
		}
		s.parents = true
	}
	if s.f != nil && s.watch != nil {
		if !s.watch.changed() {
			// No block created, removed or renamed, no directory moved:
			// f is still the stream's last block.
			if err := s.fsync(s.f); err != nil {
				return fmt.Errorf("sync %s: %w", s.blockPath(s.index), err)
			}
			return nil
		}
		s.watch.close()
		s.watch = nil
	}
	if s.watch == nil && !s.noWatch {
		// Made before the paths are checked: a change during the check
		// shows at the next sync.
		// A directory missing (a stream being replaced) may be back at
		// the next sync; any other refusal (no inotify, its limits) stays.
		w, err := newDirWatch(s.dir, s.root)
		s.watch, s.noWatch = w, err != nil && !errors.Is(err, os.ErrNotExist)
	}
	s.checks++
	if s.f != nil {
		fi, err := os.Stat(s.blockPath(s.index))
		if err != nil || !os.SameFile(fi, s.fi) {
			// Purged, compacted or rewritten: find the blocks again,
			// from this one on.
			s.from = s.index
			s.closeLocked()
		}
	}
	if s.f != nil {
		if err := s.fsync(s.f); err != nil {
			return fmt.Errorf("sync %s: %w", s.blockPath(s.index), err)
		}
		// Blocks created since the last sync hold newer messages. The
		// file store writes to its last block only, so f is complete
		// once the next block exists, but what was written to it while
		// the fsync above ran (messages of later calls, which will not
		// sync f again) may not be on disk yet: the scan syncs f again,
		// then every block after it, and the directory.
		next := s.blockPath(s.index + 1)
		if _, err := os.Stat(next); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return fmt.Errorf("sync %s: %w", next, err)
		}
		s.from = s.index
		s.closeLocked()
	}
	return s.scanLocked()
}

// scanLocked syncs the directory and every block from s.from on (those
// that may hold messages written since the last sync: at the first sync
// all of them, 56 µs each for a block already on disk here), and opens
// the highest. A directory whose blocks all lie below s.from was replaced
// (a stream deleted and made again): all of its blocks are new.
func (s *blockSyncer) scanLocked() error {
	blocks, err := s.blocks()
	if err != nil {
		return fmt.Errorf("sync stream: %w", err)
	}
	if len(blocks) == 0 {
		return nil
	}
	high := blocks[len(blocks)-1]
	if high < s.from {
		s.from = 0
	}
	for _, n := range blocks[:len(blocks)-1] {
		if n < s.from {
			continue
		}
		if err := s.syncPath(s.blockPath(n), true); err != nil {
			return err
		}
	}
	return s.openLocked(high)
}

// blocks returns the indexes of the stream's blocks, in order.
func (s *blockSyncer) blocks() ([]uint64, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	var blocks []uint64
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".blk")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(name, 10, 64); err == nil && n > 0 {
			blocks = append(blocks, n)
		}
	}
	slices.Sort(blocks)
	return blocks, nil
}

// syncPath fsyncs the file or directory at path. With missingOK a path
// that is gone is no error: a block removed meanwhile (a purge) has
// nothing left to make durable.
func (s *blockSyncer) syncPath(path string, missingOK bool) error {
	f, err := os.Open(path)
	if missingOK && errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sync stream: %w", err)
	}
	defer f.Close()
	if err := s.fsync(f); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return nil
}

// openLocked makes block index the current one: it syncs the directory (so
// the block's name survives), then the block.
func (s *blockSyncer) openLocked(index uint64) error {
	if err := s.syncDir(s.dir); err != nil {
		return err
	}
	f, err := os.Open(s.blockPath(index))
	if err != nil {
		return fmt.Errorf("sync stream: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("sync stream: %w", err)
	}
	if err := s.fsync(f); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", f.Name(), err)
	}
	s.closeLocked()
	s.f, s.fi, s.index = f, fi, index
	return nil
}

func (s *blockSyncer) syncDir(dir string) error { return s.syncPath(dir, false) }

func (s *blockSyncer) closeLocked() {
	if s.f != nil {
		s.f.Close()
	}
	s.f, s.fi, s.index = nil, nil, 0
}

// Close releases the open block file and the watch.
func (s *blockSyncer) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeLocked()
	if s.watch != nil {
		s.watch.close()
		s.watch = nil
	}
}

// syncedKV is a bucket whose writes are made durable before they return
// (Engine.Sync on the bucket's stream), for the state bucket: tokens,
// conversion-rule ids and leases that capstan relies on after a restart.
type syncedKV struct {
	jetstream.KeyValue
	eng    *Engine
	stream string
}

func (kv *syncedKV) synced(ctx context.Context, rev uint64, err error) (uint64, error) {
	if err != nil {
		return rev, err
	}
	if err := kv.eng.Sync(ctx, kv.stream); err != nil {
		return 0, err
	}
	return rev, nil
}

func (kv *syncedKV) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	rev, err := kv.KeyValue.Put(ctx, key, value)
	return kv.synced(ctx, rev, err)
}

func (kv *syncedKV) PutString(ctx context.Context, key string, value string) (uint64, error) {
	rev, err := kv.KeyValue.PutString(ctx, key, value)
	return kv.synced(ctx, rev, err)
}

func (kv *syncedKV) Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error) {
	rev, err := kv.KeyValue.Create(ctx, key, value, opts...)
	return kv.synced(ctx, rev, err)
}

func (kv *syncedKV) Update(ctx context.Context, key string, value []byte, revision uint64) (uint64, error) {
	rev, err := kv.KeyValue.Update(ctx, key, value, revision)
	return kv.synced(ctx, rev, err)
}

func (kv *syncedKV) Delete(ctx context.Context, key string, opts ...jetstream.KVDeleteOpt) error {
	err := kv.KeyValue.Delete(ctx, key, opts...)
	_, err = kv.synced(ctx, 0, err)
	return err
}

func (kv *syncedKV) Purge(ctx context.Context, key string, opts ...jetstream.KVDeleteOpt) error {
	err := kv.KeyValue.Purge(ctx, key, opts...)
	_, err = kv.synced(ctx, 0, err)
	return err
}

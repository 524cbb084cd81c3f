package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/nats-io/nats.go/jetstream"
)

// migrateBatch is how many keys MigrateGuardBucket writes per batch.
const migrateBatch = 1000

// migrateProgress is how often MigrateGuardBucket logs how far it is.
var migrateProgress = 10 * time.Second

// MigrateGuardBucket moves the eventId guard's keys (claims and accepted
// bitmaps) of the KV bucket GuardKV into the local store l, once: a data
// directory that kept them in the bucket keeps guarding the eventIds sent
// before the switch. Each live key is created in l with its last write
// time (its GuardTTL goes on from there) unless l has that key already (a
// migration cut short and run again); the copies are fsynced, then the
// bucket, and with it the index the engine kept in memory for its keys, is
// deleted. It returns the number of keys copied and logs it; without a
// bucket it does nothing. Call it before the runners start.
//
// The bucket is read in one pass, in stream order, by the ordered consumer
// of a KV watch, and written in batches of migrateBatch without sync; the
// store is synced once at the end. It logs its progress every
// migrateProgress.
func MigrateGuardBucket(ctx context.Context, js jetstream.JetStream, l *GuardLocal, log *slog.Logger) (int, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	kv, err := js.KeyValue(ctx, GuardKV)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("migrate eventId bucket %s: %w", GuardKV, err)
	}
	start := time.Now()
	var total uint64
	if st, err := kv.Status(ctx); err == nil {
		total = st.Values()
	}
	log.Info("eventId guard: moving the KV bucket into the local store (once, at the first start of this version)",
		"bucket", GuardKV, "messages", total, "dir", l.dir)
	n, kept, err := l.copyFrom(ctx, kv, func(n, kept int) {
		log.Info("eventId guard: moving the KV bucket", "bucket", GuardKV, "copied", n, "already_there", kept,
			"messages", total, "elapsed", time.Since(start).Round(time.Second))
	})
	if err != nil {
		return n, fmt.Errorf("migrate eventId bucket %s: %w", GuardKV, err)
	}
	if err := js.DeleteKeyValue(ctx, GuardKV); err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) {
		return n, fmt.Errorf("migrate eventId bucket %s: keys copied, removing the bucket: %w", GuardKV, err)
	}
	log.Info("eventId guard moved from the KV bucket to the local store; bucket removed",
		"bucket", GuardKV, "keys", n, "already_there", kept, "dir", l.dir, "took", time.Since(start).Round(time.Millisecond))
	return n, nil
}

// copyFrom creates every live key of kv that l lacks, with its write time,
// and fsyncs: n copied, kept already there. progress is called every
// migrateProgress.
func (l *GuardLocal) copyFrom(ctx context.Context, kv jetstream.KeyValue, progress func(n, kept int)) (n, kept int, err error) {
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = w.Stop() }()
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return 0, 0, errGuardClosed
	}
	// An empty store (the first run) has no key to keep: the lookup per
	// key is left out. Nothing else writes to the store while it migrates
	// (the runners and capstan backup's service start after).
	fresh, err := l.empty()
	if err != nil {
		return 0, 0, err
	}
	b := l.db.NewBatch()
	defer func() { b.Close() }()
	pending := 0
	next := time.Now().Add(migrateProgress)
	flush := func() error {
		if pending == 0 {
			return nil
		}
		if err := b.Commit(pebble.NoSync); err != nil {
			return err
		}
		b.Close()
		b, pending = l.db.NewBatch(), 0
		return nil
	}
	for {
		var e jetstream.KeyValueEntry
		select {
		case <-ctx.Done():
			return n, kept, ctx.Err()
		case e = <-w.Updates():
		}
		if e == nil {
			break // the initial values are all read
		}
		k, err := guardLocalKey(e.Key())
		if err != nil {
			continue // not the guard's (written by hand): not ours to keep
		}
		v := l.encodeAt(e.Created(), e.Value())
		if _, ok := l.live(v); !ok {
			continue // expired in the bucket too
		}
		mu := l.stripe(k)
		mu.Lock()
		exists := false
		if !fresh {
			_, exists, err = l.read(k)
		}
		if err == nil && !exists {
			err = b.Set(k, v, nil)
		}
		mu.Unlock()
		switch {
		case err != nil:
			return n, kept, err
		case exists:
			kept++
			continue
		}
		n++
		if pending++; pending == migrateBatch {
			if err := flush(); err != nil {
				return n, kept, err
			}
			if progress != nil && time.Now().After(next) {
				progress(n, kept)
				next = time.Now().Add(migrateProgress)
			}
		}
	}
	if err := flush(); err != nil {
		return n, kept, err
	}
	return n, kept, l.db.LogData(nil, pebble.Sync)
}

// empty reports whether l holds no guard key, expired or not.
func (l *GuardLocal) empty() (bool, error) {
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: []byte{'e'}, UpperBound: []byte{'h'}})
	if err != nil {
		return false, err
	}
	found := it.First()
	if err := it.Close(); err != nil {
		return false, err
	}
	return !found, nil
}

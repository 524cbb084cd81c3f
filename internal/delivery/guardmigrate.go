package delivery

import (
	"context"
	"log/slog"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/capstan-gw/capstan/internal/localdb"
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
	return localdb.MoveBucket(ctx, js, localdb.Move{Bucket: GuardKV, What: "eventId guard", Kind: "eventId", Noun: "keys", Dir: l.dir}, log, l.copyFrom)
}

// copyFrom creates every live key of kv that l lacks, with its write time,
// and fsyncs: n copied, kept already there. progress is called every
// migrateProgress.
func (l *GuardLocal) copyFrom(ctx context.Context, kv jetstream.KeyValue, progress func(n, kept int)) (n, kept int, err error) {
	// An empty store (the first run) has no key to keep: the lookup per
	// key is left out (fresh). Nothing else writes to the store while it
	// migrates (the runners and capstan backup's service start after).
	return l.store.CopyBucket(ctx, kv, localdb.Copy{Batch: migrateBatch, Every: migrateProgress, Empty: l.empty, Put: l.copyEntry}, progress)
}

// copyEntry adds the bucket entry e to b unless it is not a guard key,
// expired, or (unless fresh) in l already.
func (l *GuardLocal) copyEntry(b *pebble.Batch, e jetstream.KeyValueEntry, fresh bool) (localdb.Copied, error) {
	k, err := guardLocalKey(e.Key())
	if err != nil {
		return localdb.Skipped, nil // not the guard's (written by hand): not ours to keep
	}
	v := l.encodeAt(e.Created(), e.Value())
	if _, ok := l.live(v); !ok {
		return localdb.Skipped, nil // expired in the bucket too
	}
	sk := string(k)
	defer l.keys.Unlock(sk, l.keys.Lock(sk))
	exists := false
	if !fresh {
		if _, exists, err = l.read(k); err != nil {
			return localdb.Skipped, err
		}
	}
	if exists {
		return localdb.Kept, nil
	}
	l.filter.Add(k) // before the batch commits (localdb.Filter)
	return localdb.Added, b.Set(k, v, nil)
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

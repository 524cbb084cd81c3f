package identity

import (
	"context"
	"log/slog"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/capstan-gw/capstan/internal/localdb"
	"github.com/capstan-gw/capstan/internal/stream"
)

// migrateBatch is how many profiles MigrateBucket writes per pebble batch.
const migrateBatch = 1000

// migrateProgress is how often MigrateBucket logs how far it is.
var migrateProgress = 10 * time.Second

// MigrateBucket moves the profiles of the KV bucket (bucket; "" for
// stream.IdentityKV) into the local store l, once: a data directory that
// kept its graph in the bucket keeps it after the switch to the local
// store. Each live profile is created in l with its last write time (its
// TTL goes on from there) unless l has that key already (a migration cut
// short and run again, or a newer write); then the bucket, and with it the
// index the engine kept in memory for its keys, is deleted. It returns the
// number of profiles copied, and logs it; without a bucket it does nothing.
//
// The bucket is read in one pass, in stream order, by the ordered consumer
// of a KV watch (the last value of each key), and written in batches of
// migrateBatch without sync; the store is synced once at the end, before the
// bucket is deleted. It logs its progress every migrateProgress.
func MigrateBucket(ctx context.Context, js jetstream.JetStream, bucket string, l *Local, log *slog.Logger) (int, error) {
	if bucket == "" {
		bucket = stream.IdentityKV
	}
	return localdb.MoveBucket(ctx, js, localdb.Move{Bucket: bucket, What: "identity profiles", Kind: "identity", Noun: "profiles", Dir: l.dir}, log, l.copyFrom)
}

// copyFrom creates every live profile of kv that l lacks, with its write
// time, in batches, then syncs: n copied, kept already there. progress is
// called every migrateProgress.
func (l *Local) copyFrom(ctx context.Context, kv jetstream.KeyValue, progress func(n, kept int)) (n, kept int, err error) {
	// An empty store (the first run) has no key to keep: the lookup per
	// key, most of the CPU a key costs, is left out (fresh). Nothing else
	// writes to the store while it migrates (serve starts delivery, the
	// admin API and the tools' service after).
	return l.store.CopyBucket(ctx, kv, localdb.Copy{Batch: migrateBatch, Every: migrateProgress, Empty: l.empty, Put: l.copyEntry, Sync: l.db.Flush}, progress)
}

// copyEntry adds the bucket entry e to b unless it is not a profile or
// (unless fresh) l has its key already.
func (l *Local) copyEntry(b *pebble.Batch, e jetstream.KeyValueEntry, fresh bool) (localdb.Copied, error) {
	k, err := localKey(e.Key())
	if err != nil {
		return localdb.Skipped, nil // not a profile (written by hand): not ours to keep
	}
	// A key of the batch not yet committed cannot come twice: the watch
	// gives the last value of each key once.
	sk := string(k)
	defer l.keys.Unlock(sk, l.keys.Lock(sk))
	rev := uint64(1)
	if !fresh {
		rev, err = l.check(k, 0)
	}
	switch {
	case casConflict(err):
		return localdb.Kept, nil // copied by an earlier run, or written since
	case err != nil:
		return localdb.Skipped, err
	}
	l.filter.Add(k)
	return localdb.Added, b.Set(k, encodeValue(rev, e.Created(), e.Value()), nil)
}

// empty reports whether l holds no profile, expired or not.
func (l *Local) empty() (bool, error) {
	it, err := l.db.NewIter(nil)
	if err != nil {
		return false, err
	}
	for ok := it.First(); ok; ok = it.Next() {
		if _, profile := profileKey(it.Key()); profile {
			return false, it.Close()
		}
	}
	return true, it.Close()
}

package identity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/capstan-gw/capstan/internal/stream"
)

// MigrateBucket moves the profiles of the KV bucket (bucket; "" for
// stream.IdentityKV) into the local store l, once: a data directory that
// kept its graph in the bucket keeps it after the switch to the local
// store. Each live profile is created in l with its last write time (its
// TTL goes on from there) unless l has that key already (a migration cut
// short and run again, or a newer write); then the bucket, and with it the
// index the engine kept in memory for its keys, is deleted. It returns the
// number of profiles copied, and logs it; without a bucket it does nothing.
func MigrateBucket(ctx context.Context, js jetstream.JetStream, bucket string, l *Local, log *slog.Logger) (int, error) {
	if bucket == "" {
		bucket = stream.IdentityKV
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	kv, err := js.KeyValue(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("migrate identity bucket %s: %w", bucket, err)
	}
	st, err := js.Stream(ctx, "KV_"+bucket)
	if err != nil {
		return 0, fmt.Errorf("migrate identity bucket %s: %w", bucket, err)
	}
	from := &jsStore{js: js, kv: kv, st: st, subPre: "$KV." + bucket + "."}
	start := time.Now()
	n, kept := 0, 0
	err = from.each(ctx, func(key string, s stored) error {
		if _, err := localKey(key); err != nil {
			return nil // not a profile (written by hand): not ours to keep
		}
		_, err := l.put(ctx, key, s.data, 0, s.at)
		switch {
		case err == nil:
			n++
		case casConflict(err):
			kept++ // copied by an earlier run, or written since
		default:
			return err
		}
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("migrate identity bucket %s: %w", bucket, err)
	}
	if err := l.db.Flush(); err != nil {
		return n, fmt.Errorf("migrate identity bucket %s: %w", bucket, err)
	}
	if err := js.DeleteKeyValue(ctx, bucket); err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) {
		return n, fmt.Errorf("migrate identity bucket %s: profiles copied, removing the bucket: %w", bucket, err)
	}
	log.Info("identity profiles moved from the KV bucket to the local store; bucket removed",
		"bucket", bucket, "profiles", n, "already_there", kept, "dir", l.dir, "took", time.Since(start).Round(time.Millisecond))
	return n, nil
}

package localdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Move describes the one-time move of a JetStream KV bucket into a local
// store (MoveBucket): the names its log lines and errors use.
type Move struct {
	Bucket string // the KV bucket moved
	What   string // the log lines' subject: "identity profiles", "eventId guard"
	Kind   string // the errors' adjective: "migrate <Kind> bucket <Bucket>: …"
	Noun   string // what is counted: "profiles", "keys"
	Dir    string // the local store's directory, logged
}

// MoveBucket moves m.Bucket into a local store once: without the bucket
// it does nothing; else it logs the start (with the bucket's message
// count), has copy copy the bucket's live keys the store lacks (calling
// progress now and then, which logs how far it is), and only once copy
// has made them durable deletes the bucket, and with it the index the
// engine kept in memory for its keys, and logs the total and the time it
// took. A move cut short is run again at the next start. It returns the
// number of keys copied.
func MoveBucket(ctx context.Context, js jetstream.JetStream, m Move, log *slog.Logger,
	copy func(ctx context.Context, kv jetstream.KeyValue, progress func(n, kept int)) (n, kept int, err error)) (int, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	kv, err := js.KeyValue(ctx, m.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("migrate %s bucket %s: %w", m.Kind, m.Bucket, err)
	}
	start := time.Now()
	var total uint64
	if st, err := kv.Status(ctx); err == nil {
		total = st.Values()
	}
	log.Info(m.What+": moving the KV bucket into the local store (once, at the first start of this version)",
		"bucket", m.Bucket, "messages", total, "dir", m.Dir)
	n, kept, err := copy(ctx, kv, func(n, kept int) {
		log.Info(m.What+": moving the KV bucket", "bucket", m.Bucket, "copied", n, "already_there", kept,
			"messages", total, "elapsed", time.Since(start).Round(time.Second))
	})
	if err != nil {
		return n, fmt.Errorf("migrate %s bucket %s: %w", m.Kind, m.Bucket, err)
	}
	if err := js.DeleteKeyValue(ctx, m.Bucket); err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) {
		return n, fmt.Errorf("migrate %s bucket %s: %s copied, removing the bucket: %w", m.Kind, m.Bucket, m.Noun, err)
	}
	log.Info(m.What+" moved from the KV bucket to the local store; bucket removed",
		"bucket", m.Bucket, m.Noun, n, "already_there", kept, "dir", m.Dir, "took", time.Since(start).Round(time.Millisecond))
	return n, nil
}

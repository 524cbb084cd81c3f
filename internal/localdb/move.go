package localdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cockroachdb/pebble/v2"
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

// Copied says what a Copy's Put did with one bucket entry.
type Copied int

const (
	Skipped Copied = iota // not the store's to keep (another kind of key, expired)
	Kept                  // the store already has the key: left as it is
	Added                 // written into the batch
)

// Copy is what a store's user gives CopyBucket: its rule for each entry of
// the bucket and how its copy is made durable.
type Copy struct {
	// Batch is how many entries are written per batch (committed without
	// sync). Required.
	Batch int
	// Every is how often, at most, progress is called (after a batch).
	Every time.Duration
	// Empty reports whether the store holds none of the user's keys yet (a
	// first run), which Put learns as fresh: it may then leave out its
	// look-up of each key. Nil: fresh is false.
	Empty func() (bool, error)
	// Put decides for one entry (Copied) and, when it adds it, writes it
	// into b. Required.
	Put func(b *pebble.Batch, e jetstream.KeyValueEntry, fresh bool) (Copied, error)
	// Sync makes the copy durable once every batch is committed. Nil: the
	// log is fsynced.
	Sync func() error
}

// CopyBucket copies the live entries of the KV bucket kv into d (the copy
// MoveBucket has made): it reads them in one pass, in stream order, by the
// ordered consumer of a watch (the last value of each key, deletes left
// out), holds Close off (Acquire) from before it asks c.Empty until c.Sync
// has returned, writes the entries c.Put adds in batches of c.Batch
// without sync, calling progress (if not nil) after a batch when c.Every
// has passed since the start or the last call, and then has c.Sync make
// them durable. It returns how many entries were added and kept. Nothing
// else may write the keys Put writes while it runs. Its errors are the
// watch's, Acquire's (wrapping ErrClosed after Close), ctx's, Empty's,
// Put's, the batches' and Sync's, unwrapped: the caller (MoveBucket)
// names the operation.
func (d *DB) CopyBucket(ctx context.Context, kv jetstream.KeyValue, c Copy, progress func(n, kept int)) (n, kept int, err error) {
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = w.Stop() }()
	if err := d.Acquire(); err != nil {
		return 0, 0, err
	}
	defer d.Release()
	fresh := false
	if c.Empty != nil {
		if fresh, err = c.Empty(); err != nil {
			return 0, 0, err
		}
	}
	n, kept, err = d.copyWatch(ctx, w, c.Batch, c.Every, progress, func(b *pebble.Batch, e jetstream.KeyValueEntry) (Copied, error) {
		return c.Put(b, e, fresh)
	})
	if err != nil {
		return n, kept, err
	}
	if c.Sync == nil {
		return n, kept, d.LogData(nil, pebble.Sync)
	}
	return n, kept, c.Sync()
}

// copyWatch writes the entries of the bucket watch w (its initial values,
// up to the nil that ends them) into d, batch entries per batch committed
// without sync: put decides for each entry and adds it to the batch. It
// calls progress (if not nil) after a batch when every has passed since
// the start or the last call, and returns how many entries were added and
// kept. Making the copy durable is the caller's, after it returns.
func (d *DB) copyWatch(ctx context.Context, w jetstream.KeyWatcher, batch int, every time.Duration,
	progress func(n, kept int), put func(b *pebble.Batch, e jetstream.KeyValueEntry) (Copied, error)) (n, kept int, err error) {
	b := d.NewBatch()
	defer func() { b.Close() }()
	// A batch's Puts Add their keys to the filter: a write of the filter
	// from before the first one to after the commit (Filter.BeginAdds).
	pending := 0
	var adds uint64
	defer func() {
		if pending > 0 {
			d.filter.EndAdds(adds)
		}
	}()
	flush := func() error {
		if pending == 0 {
			return nil
		}
		err := b.Commit(pebble.NoSync)
		d.filter.EndAdds(adds)
		if err != nil {
			pending = 0 // ended
			return err
		}
		d.Dirty()
		b.Close()
		b, pending = d.NewBatch(), 0
		return nil
	}
	next := time.Now().Add(every)
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
		if pending == 0 {
			adds = d.filter.BeginAdds()
		}
		c, err := put(b, e)
		if (c != Added || err != nil) && pending == 0 {
			d.filter.EndAdds(adds) // no key of a batch Added
		}
		switch {
		case err != nil:
			return n, kept, err
		case c == Kept:
			kept++
			continue
		case c == Skipped:
			continue
		}
		n++
		if pending++; pending == batch {
			if err := flush(); err != nil {
				return n, kept, err
			}
			if progress != nil && time.Now().After(next) {
				progress(n, kept)
				next = time.Now().Add(every)
			}
		}
	}
	return n, kept, flush()
}

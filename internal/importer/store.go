package importer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/capstan-gw/capstan/internal/stream"
)

// Checkpoint is the resume point of one input: how far earlier runs got.
type Checkpoint struct {
	// Rows is the data rows, from the input's start, that are done: every
	// valid one among them is stored (or was a duplicate).
	Rows int `json:"rows"`
	// Line is the last of them's line.
	Line int `json:"line"`
	// Complete is true once the whole input was imported.
	Complete bool `json:"complete"`
	// Stored, Duplicates and Invalid are the last run's counts.
	Stored     int `json:"stored"`
	Duplicates int `json:"duplicates"`
	Invalid    int `json:"invalid"`
	// UpdatedAt is when the checkpoint was written.
	UpdatedAt time.Time `json:"updatedAt"`
}

// Checkpoints keeps resume points by key. KVCheckpoints keeps them in the
// state bucket.
type Checkpoints interface {
	// Load returns the checkpoint of key; false when there is none.
	Load(ctx context.Context, key string) (Checkpoint, bool, error)
	// Save replaces the checkpoint of key; it is durable when it returns.
	Save(ctx context.Context, key string, c Checkpoint) error
}

// ResumeKey is the key of an input's checkpoint: the SHA-256 of the source
// name and of the input's own SHA-256 (Stat.SHA256), so one file imported
// under two sources has two resume points, and a changed file a new one.
func ResumeKey(source, fileSHA256 string) string {
	sum := sha256.Sum256([]byte(source + "\x00" + fileSHA256))
	return "import." + hex.EncodeToString(sum[:])
}

// KVCheckpoints keeps checkpoints in a JetStream key-value bucket (capstan
// uses the state bucket, stream.StateKV, whose writes are durable when they
// return). It is safe for concurrent use.
type KVCheckpoints struct{ KV jetstream.KeyValue }

// Load implements Checkpoints.
func (k KVCheckpoints) Load(ctx context.Context, key string) (Checkpoint, bool, error) {
	e, err := k.KV.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Checkpoint{}, false, nil
	}
	if err != nil {
		return Checkpoint{}, false, err
	}
	var c Checkpoint
	if err := json.Unmarshal(e.Value(), &c); err != nil {
		return Checkpoint{}, false, fmt.Errorf("checkpoint %s: %w", key, err)
	}
	return c, true, nil
}

// Save implements Checkpoints.
func (k KVCheckpoints) Save(ctx context.Context, key string, c Checkpoint) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	_, err = k.KV.Put(ctx, key, b)
	return err
}

// maybeFlush notes that rows up to end (the last on line) are read, and
// sends the batch to the store when it is full.
func (r *run) maybeFlush(ctx context.Context, end, line int) {
	if len(r.batch) >= r.opt.BatchSize {
		r.flush(ctx, end, line)
	}
}

// flush sends the batch to the store, to be done with rows up to end once
// stored, waiting for the oldest batch in flight when Inflight are.
func (r *run) flush(ctx context.Context, end, line int) {
	if r.opt.Store == nil {
		return
	}
	// Take the batches already stored (so the resume point follows the
	// store closely), then wait for the oldest while too many are in
	// flight.
	for len(r.queue) > 0 && (len(r.queue) >= r.opt.Inflight || isDone(r.queue[0])) {
		r.complete(ctx, r.queue[0])
		r.queue = r.queue[1:]
	}
	p := &pending{end: end, line: line, n: len(r.batch), done: make(chan struct{})}
	evs := r.batch
	r.batch = make([]stream.Event, 0, r.opt.BatchSize)
	if len(evs) == 0 {
		close(p.done)
	} else {
		go func() {
			defer close(p.done)
			p.res, p.err = r.appendRetry(ctx, evs)
		}()
	}
	r.queue = append(r.queue, p)
}

func isDone(p *pending) bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// appendRetry appends evs, waiting and trying again while the store is
// overloaded (a running capstan busy with live traffic). An append once
// started is not abandoned when ctx ends (Ctrl-C): it finishes, so the
// checkpoint can say what was stored.
func (r *run) appendRetry(ctx context.Context, evs []stream.Event) ([]stream.Result, error) {
	wait := 50 * time.Millisecond
	for {
		res, err := r.opt.Store.Append(context.WithoutCancel(ctx), evs)
		if !errors.Is(err, stream.ErrOverloaded) {
			return res, err
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, err
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// complete waits for a batch in flight, counts its results and moves the
// resume point past it, unless an earlier batch failed.
func (r *run) complete(ctx context.Context, p *pending) {
	<-p.done
	failed := p.err
	for _, res := range p.res {
		switch {
		case res.Err != nil:
			if failed == nil {
				failed = res.Err
			}
		case res.Duplicate:
			r.sum.Duplicates++
		default:
			r.sum.Stored++
		}
	}
	if failed != nil {
		if r.storeEr == nil {
			r.storeEr = failed
		}
		return
	}
	if r.storeEr != nil {
		return // the resume point stays before the failed batch
	}
	r.doneRows, r.doneLine = p.end, p.line
	r.save(ctx, false, false)
	r.progress()
}

// drain completes every batch in flight.
func (r *run) drain(ctx context.Context) {
	for _, p := range r.queue {
		r.complete(ctx, p)
	}
	r.queue = nil
}

// save writes the resume point when it moved and SaveEvery passed since
// the last write (or force). It writes even after ctx ended: the point
// must outlive an interrupted run.
func (r *run) save(ctx context.Context, complete, force bool) {
	if r.opt.Checkpoints == nil || r.opt.Key == "" || r.opt.Store == nil {
		return
	}
	now := r.opt.Now()
	if !force && now.Sub(r.lastCP) < r.opt.SaveEvery {
		return
	}
	if r.doneRows <= r.saved.Rows && !(complete && !r.saved.Complete) {
		return
	}
	c := Checkpoint{
		Rows: max(r.doneRows, r.saved.Rows), Line: r.doneLine, Complete: complete || r.saved.Complete,
		Stored: r.sum.Stored, Duplicates: r.sum.Duplicates, Invalid: r.sum.Invalid, UpdatedAt: now.UTC(),
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := r.opt.Checkpoints.Save(sctx, r.opt.Key, c); err != nil {
		if r.saveErr == nil {
			r.saveErr = fmt.Errorf("keep the resume point: %w", err)
		}
		return
	}
	r.saved, r.lastCP = c, now
}

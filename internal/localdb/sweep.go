package localdb

import (
	"bytes"
	"errors"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// SweepChunk is how many expired keys Sweep gathers before removing them:
// its memory stays bounded however many keys expired at once.
const SweepChunk = 1024

// ErrSweepStopped is Sweep's error when stop closed during the sweep.
var ErrSweepStopped = errors.New("sweep stopped")

// Sweep removes the keys of [lower, upper) whose values expired (it asks
// expired, which must also say false for keys that are not the caller's
// expiring kind, such as meta keys) and returns how many it removed. It
// reads a fixed view of the store and removes SweepChunk keys at a time,
// each under lock(key) and only if it is still expired then: a write since
// the read renewed it. Deletes are not synced (Dirty: the syncer writes
// them out); losing them to a crash only leaves keys that reads already
// ignore for the next sweep.
func (d *DB) Sweep(stop <-chan struct{}, lower, upper []byte, expired func(k, v []byte) bool, lock func(k []byte) *sync.Mutex) (int, error) {
	it, err := d.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	n := 0
	chunk := make([][]byte, 0, SweepChunk)
	for it.First(); it.Valid(); it.Next() {
		select {
		case <-stop:
			return n, ErrSweepStopped
		default:
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return n, err
		}
		if expired(it.Key(), v) {
			chunk = append(chunk, bytes.Clone(it.Key()))
		}
		if len(chunk) == SweepChunk {
			m, err := d.removeExpired(stop, chunk, expired, lock)
			n += m
			if err != nil {
				return n, err
			}
			chunk = chunk[:0]
		}
	}
	if err := it.Error(); err != nil {
		return n, err
	}
	m, err := d.removeExpired(stop, chunk, expired, lock)
	return n + m, err
}

func (d *DB) removeExpired(stop <-chan struct{}, keys [][]byte, expired func(k, v []byte) bool, lock func(k []byte) *sync.Mutex) (int, error) {
	n := 0
	for _, k := range keys {
		select {
		case <-stop:
			return n, ErrSweepStopped
		default:
		}
		mu := lock(k)
		mu.Lock()
		v, c, err := d.Get(k)
		switch {
		case errors.Is(err, pebble.ErrNotFound):
			err = nil
		case err == nil:
			gone := expired(k, v)
			c.Close()
			if gone {
				if err = d.Delete(k, pebble.NoSync); err == nil {
					n++
					d.Dirty()
				}
			}
		}
		mu.Unlock()
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// RunSweeps calls sweep every `every` until stop closes, logging its
// errors (but those wrapping quiet: the store closing) and, when it
// removed some, how many, as "<what> removed". Run it in its own
// goroutine.
func RunSweeps(stop <-chan struct{}, every time.Duration, sweep func() (int, error), quiet error, log Logger, what string) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			n, err := sweep()
			switch {
			case err != nil && !errors.Is(err, quiet) && !errors.Is(err, ErrSweepStopped):
				log.Error("sweeping "+what+" failed", "error", err)
			case n > 0:
				log.Info(what+" removed", "count", n)
			}
		}
	}
}

// Logger is what RunSweeps logs to (*slog.Logger).
type Logger interface {
	Error(msg string, args ...any)
	Info(msg string, args ...any)
}

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

// Sweep removes the keys of [lower, upper) whose values expired (it asks
// expired, which must also say false for keys that are not the caller's
// expiring kind, such as meta keys) and returns how many it removed,
// which the store's <prefix>_expired_removed_total counts (Collector). It
// reads a fixed view of the store and removes SweepChunk keys at a time,
// each under lock(key) and only if it is still expired then: a write since
// the read renewed it. Deletes are not synced (Dirty: the syncer writes
// them out); losing them to a crash only leaves keys that reads already
// ignore for the next sweep. Once keys were removed, the store's Filter
// may be rebuilt (rebuildDue). Close stops it at the next key, with the
// error wrapping ErrClosed, as after Close.
func (d *DB) Sweep(lower, upper []byte, expired func(k, v []byte) bool, lock func(k []byte) *sync.Mutex) (int, error) {
	if err := d.Acquire(); err != nil {
		return 0, err
	}
	defer d.Release()
	n, err := d.sweep(lower, upper, expired, lock)
	d.swept.Add(uint64(n))
	if n > 0 {
		d.cueRebuild() // the filter may now hold far more keys than the store
	}
	return n, err
}

func (d *DB) sweep(lower, upper []byte, expired func(k, v []byte) bool, lock func(k []byte) *sync.Mutex) (int, error) {
	it, err := d.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	n := 0
	chunk := make([][]byte, 0, SweepChunk)
	for it.First(); it.Valid(); it.Next() {
		if d.stopping() {
			return n, d.errClosed
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return n, err
		}
		if expired(it.Key(), v) {
			chunk = append(chunk, bytes.Clone(it.Key()))
		}
		if len(chunk) == SweepChunk {
			m, err := d.removeExpired(chunk, expired, lock)
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
	m, err := d.removeExpired(chunk, expired, lock)
	return n + m, err
}

func (d *DB) removeExpired(keys [][]byte, expired func(k, v []byte) bool, lock func(k []byte) *sync.Mutex) (int, error) {
	n := 0
	for _, k := range keys {
		if d.stopping() {
			return n, d.errClosed
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

// stopping reports whether Close has begun: a sweep under way stops.
func (d *DB) stopping() bool {
	select {
	case <-d.stop:
		return true
	default:
		return false
	}
}

// StartSweeps calls sweep (the store's, which calls Sweep) every `every`
// in a goroutine of its own until Close, which waits for it, logging its
// errors (but those of Close: ErrClosed) and, when it removed some, how
// many, as "<what> removed". After Close it starts nothing.
func (d *DB) StartSweeps(every time.Duration, sweep func() (int, error), what string) {
	if err := d.Acquire(); err != nil {
		return
	}
	defer d.Release()
	d.repeat(every, func() {
		n, err := sweep()
		switch {
		case err != nil && !errors.Is(err, ErrClosed):
			d.log.Error("sweeping "+what+" failed", "error", err)
		case n > 0:
			d.log.Info(what+" removed", "count", n)
		}
	})
}

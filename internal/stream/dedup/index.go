// Package dedup is capstan's per-event de-duplication index: for each
// (source, messageId) key, the stream position of its first occurrence
// within a window, and the stream sequence up to which the index covers
// EVENTS (docs/storage.md).
//
// This file is a stand-in kept in memory, with exactly the API of the
// on-disk index (branch s7-dedup), so that package stream can be built
// and tested against it; the on-disk index replaces it.
package dedup

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"log/slog"
	"sync"
	"time"
)

var (
	// ErrDamaged is wrapped by Open's error when the directory holds an
	// index that cannot be opened: the caller removes the directory and
	// rebuilds the index from the stream. (The stand-in never returns it.)
	ErrDamaged = errors.New("de-duplication index damaged")
)

// Key is the 128-bit keyed hash of a (source, messageId) pair.
type Key [16]byte

// HashKey returns the key of (source, messageID) under secret.
func HashKey(secret []byte, source, messageID string) Key {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(source))
	m.Write([]byte{0})
	m.Write([]byte(messageID))
	var k Key
	copy(k[:], m.Sum(nil))
	return k
}

// Options configure an Index.
type Options struct {
	// Dir holds the index.
	Dir string
	// Window is how long a key is remembered.
	Window time.Duration
	// MemoryBytes bounds the index's memory.
	MemoryBytes int64
	// Logger receives the index's log lines.
	Logger *slog.Logger
}

// Index maps keys to the packed stream position of their first occurrence.
type Index struct {
	mu      sync.Mutex
	window  time.Duration
	keys    map[Key]entry
	covered uint64
	closed  bool
}

type entry struct {
	pos uint64
	at  time.Time
}

// Open opens (or creates) the index in opt.Dir.
func Open(opt Options) (*Index, error) {
	if opt.Window <= 0 {
		return nil, errors.New("dedup index: window must be positive")
	}
	return &Index{window: opt.Window, keys: make(map[Key]entry)}, nil
}

// Close closes the index.
func (x *Index) Close() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.closed = true
	return nil
}

// Check returns, per key, the packed position of its first occurrence
// inside the window, 0 when absent.
func (x *Index) Check(keys []Key) ([]uint64, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		return nil, errors.New("dedup index: closed")
	}
	now := time.Now()
	out := make([]uint64, len(keys))
	for i, k := range keys {
		if e, ok := x.keys[k]; ok && now.Sub(e.at) < x.window {
			out[i] = e.pos
		}
	}
	return out, nil
}

// Add records keys at pos (an existing key keeps the smaller position:
// first in stream order wins) and that every event up to stream seq
// covered is in the index (covered only ever grows; 0 = unchanged).
func (x *Index) Add(keys []Key, pos []uint64, covered uint64) error {
	if len(keys) != len(pos) {
		return errors.New("dedup index: keys and positions differ in number")
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		return errors.New("dedup index: closed")
	}
	now := time.Now()
	for i, k := range keys {
		if e, ok := x.keys[k]; ok && now.Sub(e.at) < x.window && e.pos <= pos[i] {
			continue
		}
		x.keys[k] = entry{pos: pos[i], at: now}
	}
	if covered > x.covered {
		x.covered = covered
	}
	return nil
}

// Covered returns the stream sequence up to which every event is in the
// index (0: none).
func (x *Index) Covered() uint64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.covered
}

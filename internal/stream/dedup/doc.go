// Package dedup is the on-disk per-event de-duplication index of the event
// store (docs/storage.md, "Per-event de-duplication on disk"): for each
// (source, messageId) pair seen inside the window, the stream position of
// its first occurrence, and the stream sequence up to which every event is
// in the index.
//
// Only internal/stream uses it (internal/archtest enforces this): the
// writer asks Check before committing a group and Adds the group's keys
// after, the ordered readers ask Check once Covered has passed them, and
// at start the stream catches the index up from Covered. The index is
// derived state: it has no write-ahead log, nothing is fsynced on the
// hot path (each full write buffer's table is, in the background, before
// pebble ingests it: Covered on disk is what the tables hold), and a lost
// or damaged one
// (Open's error wraps ErrDamaged) is removed and rebuilt from the part of
// the stream inside the window.
//
// Keys are HashKey(secret, source, messageId): SHA-256 keyed by a
// per-install secret (its first block), truncated to 128 bits, so the index holds no messageId in
// clear and every key has the same small size. Positions are packed
// seq<<16 | idx, never 0. The rule is "first occurrence in stream order
// wins": of two Adds of a key the smaller position stays, whichever came
// first, so that every process that reads the stream in order reaches the
// same verdict.
//
// The store is pebble (github.com/cockroachdb/pebble/v2). An entry is
// keyed by its partition (the Add's time divided by the window) and its
// Key, and holds the position and the time it expires; Check looks in the
// two partitions that can hold a live entry and ignores expired ones, and
// an Add in a new partition drops the partitions before the previous one
// with one range deletion, which pebble turns into whole files deleted.
// Add writes merge operands; the merge operator keeps the smallest
// position, so the rule costs no read. Adds reach the store through a
// write buffer in memory (buffer.go), which Check consults: each full
// buffer becomes one table of its keys and the Covered of its Adds,
// written by the index and ingested by pebble whole (no memtable, no
// flush).
//
// In front of the store, one Bloom filter in memory per partition answers
// for most new keys without a seek in the store (filter.go): every Add puts
// its keys in the filter before the store can hold them, and at Open a
// scan of the store fills the filters, Check asking the store for every
// key until it is done, so a filter never hides a key the store holds.
//
// Memory is pebble's block cache (bloom filters and indexes first),
// memtables and compactions, the filters and the write buffers, all sized
// from Options.MemoryBytes; it does not grow with the window or the event
// rate. The tables on disk, about
// 47 bytes per key (up to twice the window's worth before a partition is
// dropped), are read with pread, so the kernel's page cache holds what is
// hot and the process's resident set does not include them.
//
// badger (dgraph-io/badger/v4), the first choice of docs/storage.md for its
// per-entry TTL, measured worse on the memory goal: it maps its tables into
// the process, so every page it has read or written stays in the resident
// set (RssFile), which grew with the index to 1.4 GB at 31 million events
// (anonymous memory stayed at 0.2-0.5 GB); pebble's resident set stayed
// flat. bench/results/dedup-2026-12-05.md has both runs.
//
// Package dedup knows nothing of events, segments or NATS: it maps 16-byte
// keys to positions.
package dedup

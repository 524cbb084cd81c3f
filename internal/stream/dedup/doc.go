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
// derived state: nothing in it is fsynced, and a lost or damaged one
// (Open's error wraps ErrDamaged) is removed and rebuilt from the part of
// the stream inside the window.
//
// Keys are HashKey(secret, source, messageId): HMAC-SHA256 truncated to
// 128 bits under a per-install secret, so the index holds no messageId in
// clear and every key has the same small size. Positions are packed
// seq<<16 | idx, never 0. The rule is "first occurrence in stream order
// wins": of two Adds of a key the smaller position stays, whichever came
// first, so that every process that reads the stream in order reaches the
// same verdict.
//
// The store is badger (github.com/dgraph-io/badger/v4) in managed mode,
// one entry per key with a time to live of the window, the entry's version
// being ^position so that the smallest position is the newest version:
// the rule costs no read. Its memory (memtables, compaction buffers) is
// sized from Options.MemoryBytes and does not grow with the window or the
// rate; its tables on disk, about 47 bytes per key, do, and the pages of
// them badger touched stay mapped into the process (page cache, counted as
// RssFile) until the kernel reclaims them. Badger's own goroutines flush
// and compact; values stay in the tables, so there is no value log to
// collect. Badger's warnings and errors go to the slog logger given, its
// chatter is dropped.
//
// Package dedup knows nothing of events, segments or NATS: it maps 16-byte
// keys to positions.
package dedup

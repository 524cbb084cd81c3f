// Package stream is capstan's event store: NATS JetStream, embedded in the
// process by default or an external cluster for scale-out.
//
// It owns the stream and bucket names that are part of capstan's contract
// (stream EVENTS, stream DLQ, stream AUDIT, KV identity, KV state, KV
// suppression) and their
// configuration, and it is the only package that knows how events are
// stored: subjects, de-duplication ids, headers (format.go). Everything
// else sees events through two paths.
//
// The one append path is Writer. Every producer (HTTP ingest, DLQ replay,
// import) hands it normalised events (Event: the document with its source,
// type, messageId and the facts of the request that carried it), and
// Append returns once they are durable. Events from concurrent calls are
// written together and fsynced once (group commit), so "200 OK" from
// ingest always means "on disk" without paying one fsync per event. On the
// embedded engine capstan fsyncs the stream's block file itself after
// JetStream acknowledged the group (sync.go explains why and how); on an
// external cluster the group is one JetStream atomic batch. Writer.Ready
// says whether events can be stored now: the engine is up and the store
// did not refuse the last commit (a full stream or disk), which is what
// /readyz reports.
//
// The one read path gives each event as Stored (its position, source,
// type, time, document and request facts), in two forms: Engine.ReadEvents,
// the ordered, unacknowledged read of tools and the console, and
// Engine.Consumer, the durable, acknowledged consumer of delivery, whose
// Feed hands on Deliveries to acknowledge, one per event; a segment is
// acknowledged once all its events are. The DLQ stream is written and
// read through AppendDeadLetter, ReadDeadLetters, DeadLetterAt and
// RemoveDeadLetters.
//
// Privacy deletions erase through DeleteEvents and DeleteDeadLetters: they
// read the whole stream through the read path (O(retention)) and erase the
// messages a predicate selects with JetStream's secure delete, which
// overwrites the data in the store. The AUDIT stream (what operators did)
// is written and read through AppendAudit and ReadAudit; its documents are
// internal/audit's.
//
// With an external cluster Open and Attach refuse a server older than
// MinServerVersion (ErrServerTooOld), and Engine.CheckServers (servers.go)
// logs at start what the cluster is (versions, JetStream domain, atomic
// batches or the one-by-one fall-back before 2.12) and warns when a server
// does not sync always, reading jetstream.sync_interval from the servers'
// monitoring endpoints (engine.monitor_url), since the client protocol
// does not carry it.
//
// Engine.Backup and Restore (backup.go) copy every stream and bucket,
// consumers included, through JetStream's snapshot and restore API, never
// by copying the files of a running store; a manifest with checksums lets
// Restore refuse a damaged or newer backup.
//
// Storage format (docs/storage.md): each commit stores, per source, one
// segment (segment.go: subject events.<source>.seg, a versioned binary
// frame of its events); messages of one event each, written by older
// releases, stay readable. An event's position is its segment's stream
// sequence and its index in it (Pos, "seq:idx"). Per-event
// de-duplication is an index of (source, messageId) keys with the position
// of their first occurrence (dedup.go, package dedup), looked up by the
// Writer before each commit and caught up with EVENTS at start
// (OpenDedup); the stream's own duplicate window only drops a whole
// segment stored again within minutes. Because nothing outside sees the
// format, it changes here alone.
//
// Package stream knows nothing of HTTP, Segment or LinkedIn: it stores and
// reads documents with the facts it is given.
package stream

// Package stream is capstan's event store: NATS JetStream, embedded in the
// process by default or an external cluster for scale-out.
//
// It owns the stream and bucket names that are part of capstan's contract
// (stream EVENTS, stream DLQ, KV identity, KV state), their configuration,
// and the Appender, which makes an acknowledged write durable: events from
// concurrent requests are written together and fsynced once (group commit),
// so "200 OK" from ingest always means "on disk" without paying one fsync per
// event. On the embedded engine capstan fsyncs the stream's block file itself
// after JetStream acknowledged the group (sync.go explains why and how); on
// an external cluster the group is one JetStream atomic batch.
//
// Package stream knows nothing of HTTP, Segment or LinkedIn: it stores and
// reads opaque messages with headers.
package stream

// Package privacy erases a person everywhere capstan keeps them, for
// privacy requests, and keeps them from being delivered again.
//
// Delete removes the person from the identity graph (following linked ids,
// as identity.Graph.Delete does), erases their events from EVENTS and their
// dead letters from the DLQ with JetStream's secure delete (the data is
// overwritten in the store), records a suppression entry per id, and writes
// an audit record (internal/audit). Finding events reads every stored event
// and dead letter once: it takes time in proportion to what the streams
// retain (7 and 30 days by default).
//
// Ids are known here only as keys: the kind's prefix and the lower-case hex
// SHA-256 of the id, "u." for a userId, "a." for an anonymousId (the
// identity graph's keys) and "e." for an email (normalised by the
// configured HashEmail, as the graph stores it). Suppression entries live in
// the KV bucket "suppression" under these keys, with the bucket's TTL; the
// delivery runners check each event against an in-memory copy kept current
// by a watch on the bucket, so a deletion takes effect in every process at
// once and survives restarts. Ingest still stores a suppressed person's
// events (they age out with the stream's retention); delivery neither sends
// them nor lets them teach the identity graph.
package privacy

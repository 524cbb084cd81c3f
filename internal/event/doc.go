// Package event is the Segment event model: limits, per-event validation and
// normalisation (segment-ingest.md §2.5), clock-skew correction (§2.6),
// messageId generation (§2.7), batch-envelope merging (§1.6) and server
// enrichment (§2.8).
//
// It works on raw JSON: an event's members are split without decoding the
// values, so user data (property names, values, key order, number text) is
// stored exactly as received and only the fields capstan owns are rewritten.
// Package event is a leaf: it does no I/O and imports no capstan package.
package event

// Package segmentgen builds realistic Segment request bodies for the ingest
// benchmark: analytics-next-like track events (about 630 bytes each on
// average, with properties, context.page, userAgent and library) wrapped as
// /v1/batch envelopes or sent alone to /v1/track.
//
// Bodies are generated once as templates; Stamp copies a template into a
// caller's buffer and writes a fresh, never-repeated messageId into each
// event in place, so a load generator can send millions of unique events
// without building JSON on the hot path. It uses only the standard library
// and must never import capstan's own packages: the benchmark describes the
// clients, not the server.
package segmentgen

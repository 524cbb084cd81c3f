// Package ingest is the Segment-compatible tracking HTTP API
// (segment-ingest.md §1): every tracking path long and short, the batch
// endpoints, /v1/m, the analytics-next settings document, write-key
// authentication, CORS, gzip, size limits and the exact status codes and
// bodies Segment's clients expect.
//
// RudderStack's SDKs speak the same API; for its browser SDK
// (@rudderstack/analytics-js v3) the package also serves the source
// configuration it fetches before it sends anything (GET /sourceConfig/ and
// /v1/sourceConfig/, write key from Basic auth or ?writeKey=; rudder.go)
// and its beacon transport's POST /beacon/v1/batch?writeKey=KEY, handled as
// /v1/batch with the key taken from the query.
//
// Request bodies are read as their bytes arrive, into pooled buffers that
// grow with them (body.go): nothing is reserved from a declared
// Content-Length, and the bytes that requests in progress hold together are
// capped (server.max_inflight_body_bytes; past it, 503 with Retry-After).
//
// A request is answered 200 only after every accepted event is durably in
// the EVENTS stream (through stream.Writer's group commit). ingest never
// talks to LinkedIn and never evaluates mappings; it stores events.
package ingest

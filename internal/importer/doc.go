// Package importer is capstan's offline and CRM conversion import: it reads
// a CSV or JSONL file (any io.Reader) and stores its rows as Segment events
// through the one append path of EVENTS (stream.Writer), exactly as HTTP
// ingest stores a batch from a server source: each event goes through
// ingest.ServerEvent (the tracking API's validation and normalisation,
// trust "server"). Triggers, mappings, identity enrichment and delivery
// therefore treat imported rows as live events: a row that carries only a
// userId gets the li_fat_id and email hash the identity graph knows.
//
// `capstan import` drives it; the console's upload can call Run the same
// way (an io.Reader in, Options.Progress and Options.Invalid out).
//
// # Rows to events
//
// A JSONL line is one Segment event as is (the same rules as one item of
// POST /v1/import). A CSV row becomes a track event; its columns map by
// header name (case, '_', '-' and spaces ignored; --map overrides, see
// Field) to:
//
//	userId, anonymousId, messageId (or id), event, timestamp  top level
//	email                      traits.email (the default mapping's email)
//	first_name, last_name      traits.firstName, traits.lastName
//	title                      traits.title
//	company                    traits.company.name
//	country                    traits.address.country
//	li_fat_id                  properties.li_fat_id (captured by identity)
//	revenue (or value)         properties.revenue, a JSON number
//	currency                   properties.currency, upper case
//	any other column           properties.<header as written>, a string
//
// These are the places the default LinkedIn mapping (linkedin-capi.md
// §20.1: $.traits.email, $.properties.revenue / currency, $.messageId,
// $.timestamp) and the identity graph (properties.li_fat_id, traits.email)
// read, and the Segment spec's names (segment-ingest.md §2.9), so a mapping
// written for live events serves imported ones. Every CSV event carries
// context.library {"name":"capstan-import"}. Timestamps are RFC 3339,
// "YYYY-MM-DD[ HH:MM:SS]" (UTC), or Unix seconds (below 10^11) or
// milliseconds; a row without one happened at import time. A row with
// neither userId nor anonymousId but an email or li_fat_id gets a stable
// anonymousId derived from them (Segment events need one of the two ids).
//
// # Invalid rows
//
// A row that cannot become a valid event, or whose conversion LinkedIn
// would refuse for its time (older than 90 days, MaxAge, or more than 5
// minutes ahead; for JSONL, track events only), is reported as a RowError
// (FILE:LINE: field: detail) and counted by reason; the other rows are
// imported. Input that cannot be imported at all (empty, header only, not
// text, a --map naming no column, no event name) is a UsageError before
// anything is stored.
//
// # Idempotence and resuming
//
// A row's messageId is its messageId (or id) column, or else "import-" and
// a SHA-256 of the source and the row's content, so the same row always
// has the same id; EVENTS de-duplicates (source, messageId) within
// engine.dedup.window (the de-duplication index's window, 24 h by default)
// and LinkedIn receives the messageId as eventId. Beyond the window the
// stream would store a row again, so the resume point also covers it: a
// Checkpoint per input (ResumeKey: the source and the file's SHA-256) in
// the state bucket says how many rows from the start are done. It moves
// only past batches the store confirmed, contiguously, and is written at
// most four times a second, when interrupted and at the end. A run of the same
// file continues after it: the rows before it are read and checked again
// (so invalid ones are still reported) but not stored; a file imported
// completely stores nothing again, however long after. Only the rows
// stored in the last quarter second before a crash are sent to the stream again by
// the next run, and the de-duplication window drops them when the next run
// comes within engine.dedup.window. Standard input has no identity: it
// relies on the de-duplication window alone, and so do rows shared by two
// different files (overlapping exports) imported further apart than the
// window.
//
// Package importer imports event, ingest (for ServerEvent) and stream; it
// never imports delivery, linkedin, mapping or sandbox, and knows nothing
// of terminals (progress is a callback).
package importer

// Package event is the Segment event model. It holds an event in two forms:
//
//   - Raw JSON, for ingest: limits, per-event validation and normalisation
//     (segment-ingest.md §2.5), clock-skew correction (§2.6), messageId
//     generation (§2.7), batch-envelope merging (§1.6) and server enrichment
//     (§2.8). An event's members are split without decoding the values, so
//     user data (property names, values, key order, number text) is stored
//     exactly as received and only the fields capstan owns are rewritten.
//   - [Value], the parsed form in which the rest of capstan (identity,
//     mapping, delivery) reads stored events: an immutable, order-preserving
//     JSON model with a fast parser ([Parse]) and encoder
//     ([Value.AppendJSON]). Numbers keep their exact text. The zero Value is
//     [Undefined] ("absent"), distinct from null. [Value.Any] converts to
//     plain Go values (map[string]any, []any, string, json.Number, bool,
//     nil) for code that does not use Value.
//
// Both forms share one nesting limit, [MaxDepth]: ingest drops an event
// nested deeper (CodeEventTooDeep) and [Parse] refuses deeper JSON, so every
// stored event can be parsed.
//
// Package event is a leaf: it does no I/O and imports no capstan package. It
// never modifies a Value once built (values share memory with the parsed
// text and with each other). It knows nothing of triggers or mappings: the
// JavaScript semantics of the mapping language (truthiness, conversion to
// text, loose equality) live in internal/mapping.
package event

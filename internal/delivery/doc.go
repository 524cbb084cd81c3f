// Package delivery gets stored events to a destination, whichever it is:
// per destination it reads EVENTS through a durable consumer, selects events
// (source, integrations, consent, triggers), maps them (mapping-kit
// directives, identity enrichment), batches, rate-limits, sends, retries,
// splits refused batches and dead-letters what the destination will not
// take, acknowledging an event only once each of its conversions was taken
// or is in the DLQ.
//
// It knows destinations only through a small contract (destination.go):
//
//   - a Format (pure) builds one Payload from a mapping's output and
//     groups payloads into Requests;
//   - a Destination sends one Request and classifies the answer into an
//     Answer of delivery's own classes: Accepted, Retry, Split, TooLarge,
//     Refused, Pause; LimitKey names what the remote counts requests
//     against, so destinations sharing it share one rate limiter (Limits);
//   - optionally a Preparer (set-up before delivering, such as creating
//     conversion rules) and a TokenSource (credential expiry warnings).
//
// Adapter packages implement the contract: internal/delivery/linkedin is the
// only place where delivery meets package linkedin. Package delivery itself
// never imports linkedin (the import-rule test enforces it), so a second
// destination type is a new adapter package and a configuration type,
// nothing else here (webhook_test.go shows one).
//
// The parts: Plan (plan.go) compiles a destination's mappings and converts
// events, shared by the Runner, Preview (preview.go: `capstan preview` and
// the console's dry run) and DLQ replay, so all build exactly the same
// requests. Runner (runner.go) holds a destination's state (pause, lease,
// status) and its pipeline: read.go consumes and tracks events, send.go
// batches them and works each batch through an explicit queue of requests
// (a split or halved request queues its parts; nothing recurses).
// guard.go is the eventId collision guard: for Formats that are Keyed, each
// key is claimed in the "eventids" bucket with its content's hash before the
// first send (7 days), and a later payload with the same key and other
// content is re-keyed (suffix) or dead-lettered (ReasonCollision); once the
// remote accepted a conversion its key is marked accepted before the event
// is acknowledged (the sent-conversion record: one write per accepted
// request, the bitmap of its claim group), and the same content read
// again (crash, lost acknowledgement, lease move, replay) is not sent again.
// Its keys live behind claimStore (guardstore.go): the "eventids" bucket
// (kvClaims: every replica of a cluster shares it) or, with the embedded
// engine, GuardLocal (guardlocal.go: a pebble store in data_dir/eventids,
// memory bounded whatever the number of conversions; guardmigrate.go moves
// the bucket's keys into it once; guardremote.go lets capstan backup have
// the running process checkpoint it);
// ledger.go counts accepted conversions per rule and UTC day in the
// "accepted" bucket for reconciliation.
// dlq.go keeps dead letters; lease.go lets one replica of a shared cluster
// deliver a destination (fenced by the lease key's revision); ack.go
// confirms acknowledgements on a cluster; limiter.go counts requests in
// LinkedIn's UTC-aligned windows. An engine error while delivering never
// ends Serve: the destination shows "degraded" and is retried. An event
// whose identity graph update or look-up fails because the engine did not
// answer (identity.Unavailable) is held: put back in the stream with a
// delay, converted once the graph answers (read.go, hold).
// testevent.go builds the one conversion of a test
// send (Plan.BuildTest: a mapping's built-in SampleEvent, or a given event,
// through the same filters, trigger, fields, enrichment and validation);
// the adapter sends it after Limits.Wait. A mapping with enrich: false gets
// no identifiers besides its fields' (Route.Enriches).
//
// Statistics: a Runner counts each stage of its funnel through Deps.Funnel
// (funnel.go): Received when it reads a stored event (read.go, parse), an
// Outcome for an event that becomes no conversion, Matched (valid or not)
// for each mapping whose trigger matches (read.go, convert), Delivered
// with the identifiers the conversion carried (Payload.IDs, set by the
// Format) and the time since the event was stored when the destination
// accepts it (send.go, attempt), DeadLettered once a dead letter is
// written (send.go, deadLetter). Counters are resolved once per
// destination and mapping; internal/stats implements them in memory and
// keeps them durably. The same delivery also increments
// capstan_delivery_conversions_total{destination,mapping,ids}, ids being
// the match-coverage class li_fat_id, email, both or neither.
package delivery

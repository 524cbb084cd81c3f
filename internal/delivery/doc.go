// Package delivery turns stored events into LinkedIn conversions and gets
// them to LinkedIn: per destination it selects events (source, integrations,
// consent, triggers), builds each conversion (mappings, enrichment, the
// linkedin package's validation), batches, rate-limits, sends, retries,
// splits refused batches and dead-letters what LinkedIn will not take.
//
// Plan (this file's first part) is the pure half: a destination's compiled
// mappings and the Convert step shared by delivery, `capstan preview` and
// DLQ replay, so that all three build exactly the same requests.
package delivery

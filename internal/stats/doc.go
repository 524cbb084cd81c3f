// Package stats keeps capstan's durable delivery statistics: per
// destination and per mapping, the funnel (received → matched → valid →
// delivered → dead-lettered), the events that became no conversion and
// why, the delivery latency from an event being stored to the destination
// accepting its conversion, and the match coverage of delivered
// conversions (how many carried li_fat_id, an email hash, both or
// neither). The console's Overview reads them for the last hour, day and
// week; they survive restarts.
//
// # How it counts
//
// A Collector implements delivery.Funnel: each runner resolves its
// counters once per destination and mapping, and counting an event is a
// few atomic additions in memory (BenchmarkFunnel measures it). Every
// FlushEvery (5 s by default, aligned to the wall clock so that minute
// boundaries fall between flushes) and once more when Run stops, the
// counts gathered since the last flush are added to two JetStream
// key-value buckets of the engine:
//
//   - stats_minutes: key <destination>.<unix minute>, kept 2 hours;
//   - stats_quarters: key <destination>.<unix quarter hour>, kept 26 hours;
//   - stats_hours: key <destination>.<unix hour>, kept 8 days;
//
// each value a JSON Record of the destination and its mappings (the bucket
// names are stream's: capstan backup and restore include them). A flush
// reads, adds and writes each key with the revision it read (compare and
// set), so replicas sharing a cluster add up instead of overwriting each
// other (a Report shows what every replica flushed plus what this one has
// not flushed yet). A write that fails is kept and tried again at the next
// flush. If the buckets cannot be opened at start, `capstan serve` logs it
// and delivers without statistics.
//
// # What a crash can lose
//
// Only figures, never events: a process killed without its final flush
// loses the counts of at most the last FlushEvery (and of failed writes
// still pending). The counts are at least once, like delivery: an event
// redelivered after a crash (it was sent but not acknowledged) is counted
// again. Delivery itself never waits for statistics: a flush that fails
// is logged and retried, and nothing is dropped from the streams.
//
// # Reading
//
// Collector.Report answers a Query for a window of 1 h (60 one-minute
// points, from stats_minutes), 24 h (96 points of 15 minutes, from
// stats_quarters) or 7 d (168 one-hour points, from stats_hours) with the
// stored counts plus those not yet flushed: each window reads at most
// about 200 keys per destination, in one watch of its bucket.
// Latency percentiles come from a histogram of 68 buckets growing by a
// factor 1.25 from 5 ms (to about 4 hours): p50 and p95 are interpolated
// inside their bucket, so they are within 25% of the exact value.
//
// It imports delivery for the Funnel contract and stream for the engine;
// delivery never imports it.
package stats

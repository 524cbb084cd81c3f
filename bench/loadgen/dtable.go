package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// writeDeliveryTables renders the delivery benchmark's result lines: rates,
// latency, batches, the exactly-once check and a timeline per case.
func writeDeliveryTables(w io.Writer, rows []Result) {
	fmt.Fprintln(w, "### Throughput")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| case | ingest events/s (window) | acknowledged events | delivered events/s (window) | delivered events/s end to end | best 5 s delivered/s | max backlog (events) | backlog drained after the load (s) | all delivered | capstan CPU (cores, start → all delivered) | capstan CPU µs/event (ingest + delivery) | sandbox CPU (cores) | load (1 min) at start |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|---|--:|--:|--:|--:|")
	for _, r := range rows {
		d := r.Delivery
		if d == nil {
			continue
		}
		load, _, _ := strings.Cut(r.LoadAvg, " ")
		fmt.Fprintf(w, "| %s | %.0f | %d | %.0f | %.0f | %.0f | %d | %.1f | %s | %.2f | %.1f | %.2f | %s |\n",
			r.Scenario, r.EventsPerS, r.AckedEvents, d.DeliveredWinS, d.DeliveredPerS, d.PeakPerS, d.BacklogMax, d.DrainS,
			yesNo(d.AllDelivered, d.StopReason), d.CapstanCores, d.CapstanCPUus, d.SandboxCores, load)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "\"window\": the measured ingest window (after warm-up). \"end to end\": all acknowledged events ÷ time from the first request until the sandbox had accepted the last one.")
	fmt.Fprintln(w)

	fmt.Fprintln(w, "### End-to-end latency (capstan receivedAt → sandbox receive time)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| case | events | p50 ms | p95 ms | p99 ms | p99.9 ms | max ms | mean ms | histogram p50 / p95 / p99 (s) | ingest p99 ms (client) |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|---|--:|")
	for _, r := range rows {
		d := r.Delivery
		if d == nil {
			continue
		}
		hist := "—"
		if d.Metric != nil {
			hist = fmt.Sprintf("%s / %s / %s", secs(d.Metric["p50"]), secs(d.Metric["p95"]), secs(d.Metric["p99"]))
		}
		for _, x := range []struct {
			what string
			l    *LatencyStats
		}{{"measured window", d.LatWindow}, {"all (warm-up and drain included)", d.LatAll}} {
			if x.l == nil {
				fmt.Fprintf(w, "| %s, %s | 0 | | | | | | | %s | %.1f |\n", r.Scenario, x.what, hist, r.P99Ms)
				continue
			}
			fmt.Fprintf(w, "| %s, %s | %d | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %s | %.1f |\n",
				r.Scenario, x.what, x.l.N, x.l.P50, x.l.P95, x.l.P99, x.l.P999, x.l.Max, x.l.Mean, hist, r.P99Ms)
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Exact figures join every sandbox record (`/_sandbox/records`, receive time in ms) with the event's `receivedAt` read back from capstan's EVENTS stream (ms), first arrival per eventId. The histogram column is `capstan_delivery_end_to_end_seconds` from capstan's `/metrics` (buckets .05 .1 .25 .5 1 2 5 10 30 60 s, linear interpolation, measured when capstan saw the 2xx).")
	fmt.Fprintln(w)

	fmt.Fprintln(w, "### Batches LinkedIn saw")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| case | conversion requests | batches | min | p50 | mean | max | 1 | 2–99 | 100–999 | 1000–4999 | 5000 | single creates | capstan batch_size mean (metric) | capstan requests by class |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|")
	for _, r := range rows {
		d := r.Delivery
		if d == nil {
			continue
		}
		b := d.BatchSizes
		fmt.Fprintf(w, "| %s | %d | %d | %d | %d | %.0f | %d | %d | %d | %d | %d | %d | %d | %.0f | %s |\n",
			r.Scenario, d.ConversionRequests, b.Count, b.Min, b.P50, b.Mean, b.Max,
			b.Buckets["1"], b.Buckets["2-99"], b.Buckets["100-999"], b.Buckets["1000-4999"], b.Buckets["5000"], b.Single,
			d.MetricBatchMean, kvs(d.MetricRequests))
	}
	fmt.Fprintln(w)

	fmt.Fprintln(w, "### Exactly once")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| case | acknowledged (loadgen) | EVENTS stream | sandbox accepted | sandbox deduplicated | rejected events | 429s | records | distinct eventIds | missing | unexpected | capstan delivery events | verdict |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|")
	for _, r := range rows {
		d := r.Delivery
		if d == nil {
			continue
		}
		fmt.Fprintf(w, "| %s | %d | %d | %d | %d | %d | %d | %d | %d | %d | %d | %s | %s |\n",
			r.Scenario, r.AckedEvents, d.StreamEvents, d.Accepted, d.Deduplicated, d.RejectedEvents, d.RateLimited,
			d.Records, d.UniqueEventIDs, d.Missing, d.Unexpected, kvs(d.MetricEvents), d.Exact)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "\"missing\": events in the stream with no conversion at the sandbox; \"unexpected\": sandbox eventIds not in the stream. Exactly once means acknowledged = stream = accepted = distinct eventIds, nothing missing; re-sends that LinkedIn de-duplicates by eventId would show as deduplicated.")
	fmt.Fprintln(w)

	for _, r := range rows {
		d := r.Delivery
		if d == nil || len(d.Timeline) == 0 {
			continue
		}
		fmt.Fprintf(w, "### Timeline: %s\n\n", r.Scenario)
		fmt.Fprintln(w, "| t (s from first request) | acknowledged | delivered | backlog | delivered/s since previous row |")
		fmt.Fprintln(w, "|--:|--:|--:|--:|--:|")
		step := max(1.0, math.Round(d.Timeline[len(d.Timeline)-1].T/30))
		var prev *TimelinePoint
		next := 0.0
		for i := range d.Timeline {
			p := d.Timeline[i]
			if p.T < next && i != len(d.Timeline)-1 {
				continue
			}
			rate := "—"
			if prev != nil && p.T > prev.T {
				rate = fmt.Sprintf("%.0f", float64(p.Delivered-prev.Delivered)/(p.T-prev.T))
			}
			fmt.Fprintf(w, "| %.1f | %d | %d | %d | %s |\n", p.T, p.Acked, p.Delivered, p.Acked-p.Delivered, rate)
			prev = &d.Timeline[i]
			next = p.T + step
		}
		fmt.Fprintln(w)
	}
}

func yesNo(ok bool, why string) string {
	if ok {
		return "yes"
	}
	return "NO: " + why
}

func secs(v float64) string {
	if math.IsNaN(v) {
		return "—"
	}
	return fmt.Sprintf("%.2f", v)
}

func kvs(m map[string]float64) string {
	if len(m) == 0 {
		return "—"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %.0f", k, m[k])
	}
	return b.String()
}

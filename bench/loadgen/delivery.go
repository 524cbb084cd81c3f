package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/capstan-gw/capstan/internal/stream"
)

// The delivery benchmark (bench/delivery.sh) runs "loadgen run" with
// -sandbox: while the load runs, and after it until every acknowledged
// event reached the sandbox, loadgen polls /_sandbox/counters; then it joins
// the sandbox's per-conversion records (receive time, batch id) with the
// events in capstan's EVENTS stream (receivedAt) to get the exact end-to-end
// latency of every conversion, the batch sizes LinkedIn saw and whether
// each event arrived exactly once.

// deliveryConfig is the -sandbox part of runConfig.
type deliveryConfig struct {
	sandbox    string        // sandbox base URL
	engine     string        // capstan's DATA_DIR/engine.json
	metrics    string        // capstan's base URL, for /metrics
	sandboxPID int           // for its CPU use
	timeout    time.Duration // longest wait for the backlog after the load
	readLimit  time.Duration // longest time for reading EVENTS back (-stream-timeout)
	stall      time.Duration // give up when nothing arrives for this long
	poll       time.Duration
}

// DeliveryResult is the "delivery" object of a result line.
type DeliveryResult struct {
	// Counters at the end (from /_sandbox/counters).
	Accepted           int64 `json:"accepted"`
	Deduplicated       int64 `json:"deduplicated"`
	RejectedEvents     int64 `json:"rejected_events"`
	RateLimited        int64 `json:"rate_limited"`
	ConversionRequests int64 `json:"conversion_requests"`
	Batches            int64 `json:"batches"`
	Evicted            int64 `json:"evicted"`

	AllDelivered bool   `json:"all_delivered"`
	StopReason   string `json:"stop_reason"`

	// Times in seconds from the start of the load.
	LoadEndS      float64 `json:"load_end_s"`             // last request of the load answered
	FirstAcceptS  float64 `json:"first_accept_s"`         // first poll that saw an accepted conversion
	AllAcceptedS  float64 `json:"all_accepted_s"`         // first poll that saw accepted ≥ acknowledged
	DrainS        float64 `json:"drain_s"`                // AllAcceptedS − LoadEndS: the backlog's drain time
	IngestPerS    float64 `json:"ingest_per_s"`           // acknowledged events / load duration (warm-up included)
	DeliveredWinS float64 `json:"delivered_window_per_s"` // accepted during the measured ingest window / its length
	DeliveredPerS float64 `json:"delivered_per_s"`        // all acknowledged events / AllAcceptedS (end to end, from the first request)
	PeakPerS      float64 `json:"peak_5s_per_s"`          // best 5-second delivery rate
	BacklogMax    int64   `json:"backlog_max"`            // most acknowledged-but-not-delivered events seen by a poll

	Timeline []TimelinePoint `json:"timeline"`

	// Exact per-conversion latency: sandbox receive time − capstan receivedAt (ms resolution).
	LatAll    *LatencyStats `json:"latency_all,omitempty"`
	LatWindow *LatencyStats `json:"latency_window,omitempty"` // events received in the measured window
	// From capstan's capstan_delivery_end_to_end_seconds histogram (bucket interpolation).
	Metric          map[string]float64 `json:"metric_e2e_quantiles_s,omitempty"`
	MetricBatchMean float64            `json:"metric_batch_size_mean"`
	MetricRequests  map[string]float64 `json:"metric_requests_total,omitempty"`
	MetricEvents    map[string]float64 `json:"metric_events_total,omitempty"`

	// Batches as LinkedIn saw them (grouped by the sandbox's batch id).
	BatchSizes BatchStats `json:"batch_sizes"`

	// Exactly once: stream messageIds vs sandbox eventIds.
	StreamEvents   int64  `json:"stream_events"`
	Records        int64  `json:"records"`          // sandbox records, duplicates included
	UniqueEventIDs int64  `json:"unique_event_ids"` // distinct eventIds among them
	DupRecords     int64  `json:"duplicate_records"`
	Missing        int64  `json:"missing"` // in the stream, not at the sandbox
	Unexpected     int64  `json:"unexpected"`
	Exact          string `json:"exactly_once"`

	CapstanCPUus float64 `json:"capstan_cpu_us_per_event"` // load start to all delivered
	CapstanCores float64 `json:"capstan_cpu_cores"`
	SandboxCores float64 `json:"sandbox_cpu_cores"`
}

// TimelinePoint is one sample of the progress.
type TimelinePoint struct {
	T         float64 `json:"t"`
	Acked     int64   `json:"acked"`
	Delivered int64   `json:"delivered"`
}

// LatencyStats are exact percentiles in milliseconds.
type LatencyStats struct {
	N    int64   `json:"n"`
	P50  float64 `json:"p50_ms"`
	P95  float64 `json:"p95_ms"`
	P99  float64 `json:"p99_ms"`
	P999 float64 `json:"p999_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
	Min  float64 `json:"min_ms"`
}

// BatchStats describe the sizes of the batches the sandbox accepted.
type BatchStats struct {
	Count   int64            `json:"count"`
	Min     int64            `json:"min"`
	P50     int64            `json:"p50"`
	Max     int64            `json:"max"`
	Mean    float64          `json:"mean"`
	Buckets map[string]int64 `json:"buckets"` // "1", "2-99", "100-999", "1000-4999", "5000"
	Single  int64            `json:"single_creates"`
}

type sandboxCounters struct {
	Requests           int64 `json:"requests"`
	ConversionRequests int64 `json:"conversion_requests"`
	Batches            int64 `json:"batches"`
	Accepted           int64 `json:"accepted"`
	Deduplicated       int64 `json:"deduplicated"`
	Evicted            int64 `json:"evicted"`
	RejectedEvents     int64 `json:"rejected_events"`
	RateLimited        int64 `json:"rate_limited"`
}

// watcher polls the sandbox during and after the load.
type watcher struct {
	cfg       deliveryConfig
	serverPID int
	hc        *http.Client
	start     time.Time
	acked     *atomic.Int64 // live count of acknowledged events

	mu       sync.Mutex
	timeline []TimelinePoint
	last     sandboxCounters
	firstAcc time.Time
	err      error

	cpu0, sbCPU0 float64
	done         chan struct{}
	loadOver     chan struct{}
}

func newWatcher(c deliveryConfig, serverPID int, start time.Time, acked *atomic.Int64) (*watcher, error) {
	if err := checkLoopbackURL(c.sandbox); err != nil {
		return nil, fmt.Errorf("-sandbox: %w", err)
	}
	if c.metrics != "" {
		if err := checkLoopbackURL(c.metrics); err != nil {
			return nil, fmt.Errorf("-metrics: %w", err)
		}
	}
	w := &watcher{cfg: c, serverPID: serverPID, hc: &http.Client{Timeout: 30 * time.Second}, start: start, acked: acked,
		done: make(chan struct{}), loadOver: make(chan struct{})}
	w.cpu0, w.sbCPU0 = pidCPU(serverPID), pidCPU(c.sandboxPID)
	if _, err := w.counters(); err != nil {
		return nil, fmt.Errorf("sandbox counters: %w", err)
	}
	return w, nil
}

func pidCPU(pid int) float64 {
	if pid <= 0 {
		return -1
	}
	return procCPU(strconv.Itoa(pid))
}

func (w *watcher) getJSON(path string, v any) error {
	resp, err := w.hc.Get(strings.TrimSuffix(w.cfg.sandbox, "/") + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: HTTP %d", path, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func (w *watcher) counters() (sandboxCounters, error) {
	var c sandboxCounters
	err := w.getJSON("/_sandbox/counters", &c)
	return c, err
}

// poll samples until the load is over and every acknowledged event is
// accepted, or the timeout or a stall ends it. It returns why it stopped.
func (w *watcher) poll(ctx context.Context) string {
	tick := time.NewTicker(w.cfg.poll)
	defer tick.Stop()
	var loadOverAt time.Time
	lastProgress := time.Now()
	var lastAcc int64 = -1
	over := w.loadOver
	for {
		select {
		case <-ctx.Done():
			return "cancelled"
		case <-over:
			loadOverAt, over = time.Now(), nil
			continue
		case <-tick.C:
		}
		acked := w.acked.Load() // read before the counters: delivered ≤ acked
		c, err := w.counters()
		now := time.Now()
		if err != nil {
			w.mu.Lock()
			w.err = err
			w.mu.Unlock()
			if now.Sub(lastProgress) > w.cfg.stall {
				return "sandbox unreachable: " + err.Error()
			}
			continue
		}
		w.mu.Lock()
		w.last = c
		w.timeline = append(w.timeline, TimelinePoint{T: now.Sub(w.start).Seconds(), Acked: acked, Delivered: c.Accepted})
		if c.Accepted > 0 && w.firstAcc.IsZero() {
			w.firstAcc = now
		}
		w.mu.Unlock()
		if c.Accepted != lastAcc {
			lastAcc, lastProgress = c.Accepted, now
		}
		if loadOverAt.IsZero() {
			continue
		}
		switch {
		case c.Accepted >= w.acked.Load():
			return "all delivered"
		case now.Sub(loadOverAt) > w.cfg.timeout:
			return fmt.Sprintf("timeout: %s after the load", w.cfg.timeout)
		case now.Sub(lastProgress) > w.cfg.stall:
			return fmt.Sprintf("stalled: nothing accepted for %s", w.cfg.stall)
		}
	}
}

// finish waits for the backlog and computes the delivery result.
func (w *watcher) finish(ctx context.Context, res *Result, loadEnd, warmEnd, end time.Time, stop string) *DeliveryResult {
	d := &DeliveryResult{StopReason: stop}
	w.mu.Lock()
	tl := w.timeline
	last := w.last
	firstAcc := w.firstAcc
	w.mu.Unlock()
	cpu1, sb1 := pidCPU(w.serverPID), pidCPU(w.cfg.sandboxPID)
	allAt := time.Now()
	if len(tl) > 0 {
		allAt = w.start.Add(time.Duration(tl[len(tl)-1].T * float64(time.Second)))
	}
	d.Accepted, d.Deduplicated, d.RejectedEvents, d.RateLimited = last.Accepted, last.Deduplicated, last.RejectedEvents, last.RateLimited
	d.ConversionRequests, d.Batches, d.Evicted = last.ConversionRequests, last.Batches, last.Evicted
	d.AllDelivered = stop == "all delivered"
	d.LoadEndS = loadEnd.Sub(w.start).Seconds()
	if !firstAcc.IsZero() {
		d.FirstAcceptS = firstAcc.Sub(w.start).Seconds()
	}
	d.AllAcceptedS = allAt.Sub(w.start).Seconds()
	d.DrainS = max(0, d.AllAcceptedS-d.LoadEndS)
	if d.LoadEndS > 0 {
		d.IngestPerS = float64(res.AckedEvents) / d.LoadEndS
	}
	if d.AllAcceptedS > 0 {
		d.DeliveredPerS = float64(d.Accepted) / d.AllAcceptedS
	}
	d.DeliveredWinS = rateBetween(tl, warmEnd.Sub(w.start).Seconds(), end.Sub(w.start).Seconds())
	for i := range tl {
		if j := indexAtLeast(tl, tl[i].T+5); j >= 0 {
			d.PeakPerS = max(d.PeakPerS, float64(tl[j].Delivered-tl[i].Delivered)/(tl[j].T-tl[i].T))
		}
		d.BacklogMax = max(d.BacklogMax, tl[i].Acked-tl[i].Delivered)
	}
	d.Timeline = thin(tl, time.Second)
	secs := allAt.Sub(w.start).Seconds()
	if w.cpu0 >= 0 && cpu1 >= 0 && secs > 0 {
		d.CapstanCores = (cpu1 - w.cpu0) / secs
		if res.AckedEvents > 0 {
			d.CapstanCPUus = (cpu1 - w.cpu0) / float64(res.AckedEvents) * 1e6
		}
	}
	if w.sbCPU0 >= 0 && sb1 >= 0 && secs > 0 {
		d.SandboxCores = (sb1 - w.sbCPU0) / secs
	}
	if w.cfg.metrics != "" {
		if err := w.scrapeMetrics(d); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen: capstan metrics:", err)
		}
	}
	if err := w.exact(ctx, d, warmEnd, end); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen: per-conversion check:", err)
		d.Exact = "not checked: " + err.Error()
	}
	return d
}

// rateBetween is the delivery rate between two times, from the samples
// nearest to them.
func rateBetween(tl []TimelinePoint, from, to float64) float64 {
	i, j := indexAtLeast(tl, from), indexAtLeast(tl, to)
	if i < 0 {
		return 0
	}
	if j < 0 {
		j = len(tl) - 1
	}
	if tl[j].T <= tl[i].T {
		return 0
	}
	return float64(tl[j].Delivered-tl[i].Delivered) / (tl[j].T - tl[i].T)
}

func indexAtLeast(tl []TimelinePoint, t float64) int {
	for i := range tl {
		if tl[i].T >= t {
			return i
		}
	}
	return -1
}

// thin keeps about one sample per step, and the last.
func thin(tl []TimelinePoint, step time.Duration) []TimelinePoint {
	var out []TimelinePoint
	next := 0.0
	for i, p := range tl {
		if p.T >= next || i == len(tl)-1 {
			out = append(out, p)
			next = p.T + step.Seconds()
		}
	}
	return out
}

// sandboxRecord is the part of a /_sandbox/records element used here.
type sandboxRecord struct {
	EventID     string `json:"event_id"`
	ReceivedAt  int64  `json:"received_at"`
	BatchID     string `json:"batch_id"`
	DuplicateOf int64  `json:"duplicate_of"`
}

// exact joins the stream's events with the sandbox's records.
func (w *watcher) exact(ctx context.Context, d *DeliveryResult, warmEnd, end time.Time) error {
	if w.cfg.engine == "" {
		return errors.New("no -engine: cannot read receivedAt")
	}
	recv, err := readStreamReceived(ctx, w.cfg.engine, w.cfg.readLimit)
	if err != nil {
		return err
	}
	d.StreamEvents = int64(len(recv))

	// The records of a run of a million events or more take longer than
	// hc's 30 s to read and decode (1.29 million did not fit): their
	// download is bounded by -deliver-timeout instead, with a client
	// without a whole-answer limit.
	rctx, cancel := context.WithTimeout(ctx, w.cfg.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, strings.TrimSuffix(w.cfg.sandbox, "/")+"/_sandbox/records", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /_sandbox/records: HTTP %d", resp.StatusCode)
	}
	dec := json.NewDecoder(bufio.NewReaderSize(resp.Body, 1<<20))
	if err := expectTokens(dec, json.Delim('{'), "elements", json.Delim('[')); err != nil {
		return fmt.Errorf("records: %w", err)
	}
	seen := make(map[string]int32, len(recv))
	batches := map[string]int64{}
	var all, win []float64
	winFrom, winTo := warmEnd.UnixMilli(), end.UnixMilli()
	for dec.More() {
		var r sandboxRecord
		if err := dec.Decode(&r); err != nil {
			return fmt.Errorf("records: %w", err)
		}
		d.Records++
		if r.DuplicateOf != 0 {
			d.DupRecords++
		}
		if r.BatchID != "" {
			batches[r.BatchID]++
		} else {
			d.BatchSizes.Single++
		}
		seen[r.EventID]++
		if seen[r.EventID] > 1 {
			continue // latency of the first arrival only
		}
		rcv, ok := recv[r.EventID]
		if !ok {
			d.Unexpected++
			continue
		}
		ms := float64(r.ReceivedAt - rcv)
		all = append(all, ms)
		if rcv >= winFrom && rcv < winTo {
			win = append(win, ms)
		}
	}
	d.UniqueEventIDs = int64(len(seen))
	for id := range recv {
		if seen[id] == 0 {
			d.Missing++
		}
	}
	d.LatAll, d.LatWindow = latencyStats(all), latencyStats(win)
	d.BatchSizes = batchStats(batches, d.BatchSizes.Single)
	switch {
	case d.Evicted > 0:
		d.Exact = fmt.Sprintf("not checked: the sandbox evicted %d records (raise --max-conversions)", d.Evicted)
	case d.Missing == 0 && d.Unexpected == 0 && d.DupRecords == 0 && d.UniqueEventIDs == d.StreamEvents:
		d.Exact = "OK"
	case d.Missing == 0 && d.Unexpected == 0:
		d.Exact = fmt.Sprintf("OK at LinkedIn (%d re-sends de-duplicated by eventId)", d.DupRecords)
	default:
		d.Exact = fmt.Sprintf("FAIL: %d missing, %d unexpected, %d duplicate records", d.Missing, d.Unexpected, d.DupRecords)
	}
	return nil
}

func expectTokens(dec *json.Decoder, want ...json.Token) error {
	for _, w := range want {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		if t != w {
			return fmt.Errorf("unexpected %v, want %v", t, w)
		}
	}
	return nil
}

func latencyStats(v []float64) *LatencyStats {
	if len(v) == 0 {
		return nil
	}
	slices.Sort(v)
	q := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(v)))) - 1
		return v[min(max(i, 0), len(v)-1)]
	}
	var sum float64
	for _, x := range v {
		sum += x
	}
	return &LatencyStats{N: int64(len(v)), P50: q(0.50), P95: q(0.95), P99: q(0.99), P999: q(0.999),
		Max: v[len(v)-1], Min: v[0], Mean: sum / float64(len(v))}
}

func batchStats(batches map[string]int64, single int64) BatchStats {
	b := BatchStats{Single: single, Buckets: map[string]int64{}}
	sizes := make([]int64, 0, len(batches))
	var sum int64
	for _, n := range batches {
		sizes = append(sizes, n)
		sum += n
		switch {
		case n == 1:
			b.Buckets["1"]++
		case n < 100:
			b.Buckets["2-99"]++
		case n < 1000:
			b.Buckets["100-999"]++
		case n < 5000:
			b.Buckets["1000-4999"]++
		default:
			b.Buckets["5000"]++
		}
	}
	if len(sizes) == 0 {
		return b
	}
	slices.Sort(sizes)
	b.Count, b.Min, b.Max, b.P50 = int64(len(sizes)), sizes[0], sizes[len(sizes)-1], sizes[(len(sizes)-1)/2]
	b.Mean = float64(sum) / float64(len(sizes))
	return b
}

// readStreamReceived reads every event of capstan's EVENTS stream through
// capstan's own read path (events are stored in segments) and returns
// messageId → receivedAt (epoch ms). It gives up after limit (attach and
// read, as "loadgen stream -timeout").
func readStreamReceived(ctx context.Context, ctlPath string, limit time.Duration) (map[string]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	eng, err := attachEngine(ctx, ctlPath)
	if err != nil {
		return nil, err
	}
	defer eng.Close()
	out := make(map[string]int64)
	err = eng.ReadEvents(ctx, stream.ReadOptions{}, func(s stream.Stored) error {
		var ev struct {
			MessageID  string `json:"messageId"`
			ReceivedAt string `json:"receivedAt"`
		}
		if err := json.Unmarshal(s.Doc, &ev); err != nil {
			return fmt.Errorf("stored event %s: %w", s.Pos(), err)
		}
		t, err := time.Parse(time.RFC3339Nano, ev.ReceivedAt)
		if err != nil {
			return fmt.Errorf("receivedAt %q: %w", ev.ReceivedAt, err)
		}
		out[ev.MessageID] = t.UnixMilli()
		return nil
	})
	return out, err
}

// attachEngine connects to the embedded engine of the capstan whose
// DATA_DIR/engine.json is ctlPath (stream.Attach: a running capstan holds
// the data directory).
func attachEngine(ctx context.Context, ctlPath string) (*stream.Engine, error) {
	b, err := os.ReadFile(ctlPath)
	if err != nil {
		return nil, fmt.Errorf("read engine control file: %w", err)
	}
	var ctl struct {
		URL string `json:"url"`
	}
	if err := json.Unmarshal(b, &ctl); err != nil {
		return nil, fmt.Errorf("read engine control file: %w", err)
	}
	u, err := url.Parse(ctl.URL)
	if err != nil {
		return nil, fmt.Errorf("engine url: %w", err)
	}
	if err := checkLoopbackHost(u.Hostname()); err != nil {
		return nil, err
	}
	return stream.Attach(ctx, stream.Config{DataDir: filepath.Dir(ctlPath)}, slog.New(slog.DiscardHandler))
}

// scrapeMetrics reads capstan's delivery metrics.
func (w *watcher) scrapeMetrics(d *DeliveryResult) error {
	resp, err := w.hc.Get(strings.TrimSuffix(w.cfg.metrics, "/") + "/metrics")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /metrics: HTTP %d", resp.StatusCode)
	}
	var e2e []bucket
	var bsum, bcount float64
	d.MetricRequests, d.MetricEvents = map[string]float64{}, map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		name, labels, v, ok := parseSample(line)
		if !ok {
			continue
		}
		switch name {
		case "capstan_delivery_end_to_end_seconds_bucket":
			le, err := strconv.ParseFloat(labels["le"], 64)
			if labels["le"] == "+Inf" {
				le, err = math.Inf(1), nil
			}
			if err == nil {
				e2e = append(e2e, bucket{le, v})
			}
		case "capstan_delivery_batch_size_sum":
			bsum += v
		case "capstan_delivery_batch_size_count":
			bcount += v
		case "capstan_delivery_requests_total":
			d.MetricRequests[labels["class"]] += v
		case "capstan_delivery_events_total":
			d.MetricEvents[labels["outcome"]] += v
		}
	}
	if bcount > 0 {
		d.MetricBatchMean = bsum / bcount
	}
	slices.SortFunc(e2e, func(a, b bucket) int {
		switch {
		case a.le < b.le:
			return -1
		case a.le > b.le:
			return 1
		}
		return 0
	})
	if len(e2e) > 0 && e2e[len(e2e)-1].n > 0 { // JSON has no NaN
		d.Metric = map[string]float64{"p50": histQuantile(e2e, 0.5), "p95": histQuantile(e2e, 0.95), "p99": histQuantile(e2e, 0.99)}
	}
	return sc.Err()
}

type bucket struct{ le, n float64 }

// histQuantile is Prometheus' histogram_quantile: linear within a bucket.
func histQuantile(b []bucket, q float64) float64 {
	if len(b) == 0 || b[len(b)-1].n == 0 {
		return math.NaN()
	}
	rank := q * b[len(b)-1].n
	lo, prev := 0.0, 0.0
	for _, x := range b {
		if x.n >= rank {
			if math.IsInf(x.le, 1) {
				return lo // above the largest finite bound
			}
			if x.n == prev {
				return x.le
			}
			return lo + (x.le-lo)*(rank-prev)/(x.n-prev)
		}
		lo, prev = x.le, x.n
	}
	return lo
}

// parseSample parses `name{k="v",...} value` (no escapes needed here).
func parseSample(line string) (string, map[string]string, float64, bool) {
	if line == "" || line[0] == '#' {
		return "", nil, 0, false
	}
	name, rest := line, ""
	labels := map[string]string{}
	if i := strings.IndexByte(line, '{'); i >= 0 {
		j := strings.LastIndexByte(line, '}')
		if j < i {
			return "", nil, 0, false
		}
		name, rest = line[:i], strings.TrimSpace(line[j+1:])
		for _, kv := range strings.Split(line[i+1:j], ",") {
			k, v, ok := strings.Cut(kv, "=")
			if ok {
				labels[k] = strings.Trim(v, `"`)
			}
		}
	} else {
		f := strings.Fields(line)
		if len(f) < 2 {
			return "", nil, 0, false
		}
		name, rest = f[0], f[1]
	}
	f := strings.Fields(rest)
	if len(f) == 0 {
		return "", nil, 0, false
	}
	v, err := strconv.ParseFloat(f[0], 64)
	return name, labels, v, err == nil
}

func printDelivery(w io.Writer, d *DeliveryResult) {
	fmt.Fprintf(w, "  delivery: %s; accepted %d (dedup %d, rejected events %d, 429s %d) in %d requests\n",
		d.StopReason, d.Accepted, d.Deduplicated, d.RejectedEvents, d.RateLimited, d.ConversionRequests)
	fmt.Fprintf(w, "  ingest %.0f ev/s over %.1fs; delivered %.0f ev/s in the window, %.0f ev/s end to end, peak 5s %.0f ev/s; drained %.1fs after the load; max backlog %d\n",
		d.IngestPerS, d.LoadEndS, d.DeliveredWinS, d.DeliveredPerS, d.PeakPerS, d.DrainS, d.BacklogMax)
	if l := d.LatAll; l != nil {
		fmt.Fprintf(w, "  end-to-end (exact, all %d): p50 %.0f ms p95 %.0f ms p99 %.0f ms max %.0f ms\n", l.N, l.P50, l.P95, l.P99, l.Max)
	}
	if l := d.LatWindow; l != nil {
		fmt.Fprintf(w, "  end-to-end (exact, window %d): p50 %.0f ms p95 %.0f ms p99 %.0f ms max %.0f ms\n", l.N, l.P50, l.P95, l.P99, l.Max)
	}
	if d.Metric != nil {
		fmt.Fprintf(w, "  end-to-end (capstan histogram): p50 %.3f s p95 %.3f s p99 %.3f s\n", d.Metric["p50"], d.Metric["p95"], d.Metric["p99"])
	}
	fmt.Fprintf(w, "  batches: %d, sizes min %d p50 %d mean %.0f max %d %v; single creates %d\n",
		d.BatchSizes.Count, d.BatchSizes.Min, d.BatchSizes.P50, d.BatchSizes.Mean, d.BatchSizes.Max, d.BatchSizes.Buckets, d.BatchSizes.Single)
	fmt.Fprintf(w, "  exactly once: %s (stream %d, records %d, unique %d, missing %d, unexpected %d)\n",
		d.Exact, d.StreamEvents, d.Records, d.UniqueEventIDs, d.Missing, d.Unexpected)
	fmt.Fprintf(w, "  CPU start→delivered: capstan %.2f cores (%.1f µs/event), sandbox %.2f cores\n", d.CapstanCores, d.CapstanCPUus, d.SandboxCores)
}

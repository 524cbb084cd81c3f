package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/capstan-gw/capstan/bench/internal/segmentgen"
)

// runConfig is the flags of "loadgen run".
type runConfig struct {
	url         string
	endpoint    string
	writeKey    string
	scenario    string
	target      string
	concurrency int
	batch       int
	rate        int
	warmup      time.Duration
	duration    time.Duration
	maxRequests int64
	timeout     time.Duration
	drain       time.Duration
	templates   int
	serverPID   int
	out         string
	seed        uint64
	convertible bool
	newPeople   bool
	delivery    deliveryConfig
	client      string
}

// Result is one JSON line of -out: one scenario against one target.
type Result struct {
	Scenario      string  `json:"scenario"`
	Target        string  `json:"target"`
	URL           string  `json:"url"`
	Endpoint      string  `json:"endpoint"`
	Mode          string  `json:"mode"`   // closed or open
	Client        string  `json:"client"` // std (net/http) or raw
	Concurrency   int     `json:"concurrency"`
	Rate          int     `json:"rate,omitempty"`
	EventsPerReq  int     `json:"events_per_request"`
	BytesPerEvent float64 `json:"bytes_per_event"`
	WarmupS       float64 `json:"warmup_s"`
	DurationS     float64 `json:"duration_s"`

	// Measured window: requests completed inside it (closed loop) or
	// scheduled inside it (open loop).
	Requests   int64   `json:"requests"`
	Events     int64   `json:"events"` // acknowledged events of those requests
	ReqPerS    float64 `json:"requests_per_s"`
	EventsPerS float64 `json:"events_per_s"`
	MBPerS     float64 `json:"mb_per_s"`
	P50Ms      float64 `json:"p50_ms"`
	P90Ms      float64 `json:"p90_ms"`
	P95Ms      float64 `json:"p95_ms"`
	P99Ms      float64 `json:"p99_ms"`
	P999Ms     float64 `json:"p999_ms"`
	MaxMs      float64 `json:"max_ms"`
	MeanMs     float64 `json:"mean_ms"`
	Errors     int64   `json:"errors"` // non-200 answers and transport errors in the window

	// Whole run, warm-up and drain included: what the store must hold.
	SentRequests    int64            `json:"sent_requests"`
	AckedEvents     int64            `json:"acked_events"`
	DuplicateEvents int64            `json:"duplicate_events"`
	DroppedEvents   int64            `json:"dropped_events"`
	Statuses        map[string]int64 `json:"statuses"`
	TransportErrors int64            `json:"transport_errors"`
	FirstError      string           `json:"first_error,omitempty"`
	Late            int64            `json:"late_starts,omitempty"` // open loop: sent >1ms after schedule

	// Open loop, measured window: how late loadgen itself handed each
	// request to the HTTP client after its scheduled time (its own
	// scheduling, not the server's); part of every latency above.
	SendLagP50Ms float64 `json:"send_lag_p50_ms,omitempty"`
	SendLagP99Ms float64 `json:"send_lag_p99_ms,omitempty"`
	SendLagMaxMs float64 `json:"send_lag_max_ms,omitempty"`

	ServerCPUCores      float64   `json:"server_cpu_cores"`        // CPU seconds / window seconds, -1 unknown
	ServerCPUPerEventUs float64   `json:"server_cpu_us_per_event"` // server CPU µs per acknowledged event, -1 unknown
	LoadgenCPUCores     float64   `json:"loadgen_cpu_cores"`
	LoadAvg             string    `json:"loadavg_start"`
	Started             time.Time `json:"started"`

	// Seconds the server's (loadgen's) threads waited for a CPU per CPU
	// second they ran in the window (/proc schedstat), -1 unknown: the
	// machine's CPU contention, which every latency includes.
	ServerRunqPerCPU  float64 `json:"server_runq_per_cpu"`
	LoadgenRunqPerCPU float64 `json:"loadgen_runq_per_cpu"`

	// Delivery is set with -sandbox (bench/delivery.sh).
	Delivery *DeliveryResult `json:"delivery,omitempty"`
}

func runCmd(args []string) error {
	var c runConfig
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	fs.StringVar(&c.url, "url", "", "base URL of the target, loopback only (http://127.0.0.1:PORT)")
	fs.StringVar(&c.endpoint, "endpoint", "/v1/batch", "path: /v1/batch (batch body) or /v1/track (one event)")
	fs.StringVar(&c.writeKey, "write-key", "wk_bench", "write key sent as HTTP Basic user")
	fs.StringVar(&c.scenario, "scenario", "", "scenario name for the results table")
	fs.StringVar(&c.target, "target", "", "target name for the results table")
	fs.IntVar(&c.concurrency, "concurrency", 32, "connections / workers")
	fs.IntVar(&c.batch, "batch", 100, "events per /v1/batch request")
	fs.IntVar(&c.rate, "rate", 0, "open loop: requests per second on a fixed schedule (0: closed loop)")
	fs.DurationVar(&c.warmup, "warmup", 3*time.Second, "warm-up, not measured")
	fs.DurationVar(&c.duration, "duration", 20*time.Second, "measured duration")
	fs.Int64Var(&c.maxRequests, "max-requests", 2_000_000, "hard cap on requests sent")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "per-request timeout")
	fs.DurationVar(&c.drain, "drain", 30*time.Second, "how long in-flight requests may finish after the run")
	fs.IntVar(&c.templates, "templates", 64, "distinct pre-generated bodies")
	fs.IntVar(&c.serverPID, "server-pid", 0, "server process id, to report its CPU use (0: none)")
	fs.StringVar(&c.client, "client", "std", "HTTP client: std (net/http's Transport) or raw (lean HTTP/1.1 keep-alive, no goroutine hand-offs; see raw.go)")
	fs.StringVar(&c.out, "out", "", "append the JSON result line to this file")
	fs.Uint64Var(&c.seed, "seed", 1, "random seed of the generated events")
	fs.BoolVar(&c.convertible, "convertible", false, "give every event a LinkedIn identifier (properties.li_fat_id or traits.email)")
	fs.BoolVar(&c.newPeople, "new-people", false, "make every event come from a person never seen before (new anonymousId and userId): the identity graph's worst case; otherwise ids are fixed per template")
	fs.StringVar(&c.delivery.sandbox, "sandbox", "", "delivery benchmark: the sandbox's base URL; wait until it accepted every acknowledged event")
	fs.StringVar(&c.delivery.engine, "engine", "", "delivery benchmark: capstan's DATA_DIR/engine.json, to read receivedAt of every stored event")
	fs.StringVar(&c.delivery.metrics, "metrics", "", "delivery benchmark: capstan's base URL, to read its delivery metrics")
	fs.IntVar(&c.delivery.sandboxPID, "sandbox-pid", 0, "delivery benchmark: the sandbox's process id, for its CPU use")
	fs.DurationVar(&c.delivery.timeout, "deliver-timeout", 10*time.Minute, "delivery benchmark: longest wait for the backlog after the load")
	fs.DurationVar(&c.delivery.readLimit, "stream-timeout", defaultStreamTimeout, "delivery benchmark: longest time for reading every stored event back from EVENTS after the load (as loadgen stream -timeout)")
	fs.DurationVar(&c.delivery.stall, "deliver-stall", 60*time.Second, "delivery benchmark: give up when nothing is accepted for this long")
	fs.DurationVar(&c.delivery.poll, "deliver-poll", 200*time.Millisecond, "delivery benchmark: how often to read the sandbox's counters")
	_ = fs.Parse(args)

	if err := checkLoopbackURL(c.url); err != nil {
		return err
	}
	switch {
	case c.concurrency < 1 || c.concurrency > 4096:
		return errors.New("-concurrency must be 1..4096")
	case c.duration <= 0 || c.duration > 10*time.Minute || c.warmup < 0 || c.warmup > time.Minute:
		return errors.New("-duration must be in (0, 10m] and -warmup in [0, 1m]")
	case c.maxRequests < 1:
		return errors.New("-max-requests must be positive")
	case c.rate < 0 || c.rate > 100_000:
		return errors.New("-rate must be 0..100000")
	case c.delivery.readLimit <= 0:
		return errors.New("-stream-timeout must be positive")
	case c.client != "std" && c.client != "raw":
		return fmt.Errorf("-client %q: want std or raw", c.client)
	}
	res, err := run(c)
	if err != nil {
		return err
	}
	printSummary(os.Stderr, res)
	if res.Delivery != nil {
		printDelivery(os.Stderr, res.Delivery)
	}
	return appendResult(c.out, res)
}

// appendResult appends v as one JSON line to path (the -out file); "" means
// no file.
func appendResult(path string, v any) error {
	if path == "" {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("open -out: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("write -out: %w", err)
	}
	return f.Close()
}

// checkLoopbackURL refuses any target that is not on this machine.
func checkLoopbackURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("-url %q: want e.g. http://127.0.0.1:8080", raw)
	}
	return checkLoopbackHost(u.Hostname())
}

func checkLoopbackHost(host string) error {
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("target host %q is not a loopback address: loadgen only targets this machine", host)
	}
	return nil
}

// workerStats is owned by one worker; merged after the run.
type workerStats struct {
	h                             hist
	lag                           hist // open loop: scheduled time to send, window requests
	winReqs, winEvents, winErrors int64
	sent, acked, dups, dropped    int64
	transportErrs, late           int64
	lastDone                      time.Time // latest completion of a window request
	statuses                      map[int]int64
	firstErr                      string
	buf                           []byte
	live                          *atomic.Int64 // all workers' acknowledged events, read by the delivery watcher
}

type outcome struct {
	status                  int
	accepted, dups, dropped int64
	err                     error
}

type client struct {
	hc     *http.Client
	url    string
	header http.Header
}

func newClient(c runConfig, ua string) *client {
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          c.concurrency,
		MaxIdleConnsPerHost:   c.concurrency,
		MaxConnsPerHost:       c.concurrency,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: c.timeout,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
		WriteBufferSize:       64 << 10,
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(c.writeKey+":")))
	h.Set("User-Agent", ua)
	return &client{
		hc:     &http.Client{Transport: tr, Timeout: c.timeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		url:    strings.TrimSuffix(c.url, "/") + c.endpoint,
		header: h,
	}
}

// reusableBody lets a worker reuse its buffer: the transport may close the
// request body after RoundTrip returns, so the worker waits for Close.
type reusableBody struct {
	*bytes.Reader
	once   sync.Once
	closed chan struct{}
}

func (b *reusableBody) Close() error {
	b.once.Do(func() { close(b.closed) })
	return nil
}

var okBody = []byte(`{"success":true}`)

func (c *client) send(ctx context.Context, body []byte, events int) (outcome, bool) {
	rb := &reusableBody{Reader: bytes.NewReader(body), closed: make(chan struct{})}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, rb)
	if err != nil {
		return outcome{err: err}, false
	}
	req.ContentLength = int64(len(body))
	req.Header = c.header // read-only, shared
	resp, err := c.hc.Do(req)
	reusable := waitClosed(rb)
	if err != nil {
		return outcome{err: err}, reusable
	}
	var rbuf [4096]byte
	n, _ := io.ReadFull(resp.Body, rbuf[:])
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	return answer(resp.StatusCode, rbuf[:n], events), reusable
}

func (c *client) close() { c.hc.CloseIdleConnections() }

// openSchedule is the open loop's timetable: request i is due at start +
// i/rate. A free worker takes the next request and waits for its due time
// itself (wait): one wake-up per request, the worker's timer. A scheduling
// goroutine handing each request to a worker at its due time was two (its
// timer, then the worker), each a wait for a CPU on a machine shared with
// the server: 35% more context switches and 12-15% more CPU for loadgen.
// When every worker is busy the next request waits for one, and its
// latency still counts from its due time (no coordinated omission).
type openSchedule struct {
	start    time.Time
	interval float64 // ns
	total    int64
	next     atomic.Int64
}

func newOpenSchedule(start time.Time, rate int, total int64) *openSchedule {
	return &openSchedule{start: start, interval: float64(time.Second) / float64(rate), total: total}
}

func (s *openSchedule) due(i int64) time.Time {
	return s.start.Add(time.Duration(float64(i) * s.interval))
}

// wait takes the next request, waits on timer (the caller's, reused)
// until it is due and returns its due time; false once every request is
// taken or ctx ended.
func (s *openSchedule) wait(ctx context.Context, timer *time.Timer) (time.Time, bool) {
	i := s.next.Add(1) - 1
	if i >= s.total || ctx.Err() != nil {
		return time.Time{}, false
	}
	due := s.due(i)
	if d := time.Until(due); d > 0 {
		timer.Reset(d)
		select {
		case <-timer.C:
		case <-ctx.Done():
			return time.Time{}, false
		}
	}
	return due, true
}

// answer is the outcome of a response with status and (the start of) body
// b to a request of events events.
func answer(status int, b []byte, events int) outcome {
	o := outcome{status: status}
	if status != http.StatusOK {
		o.err = fmt.Errorf("HTTP %d: %s", status, bytes.TrimSpace(b[:min(len(b), 200)]))
		return o
	}
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, okBody) {
		o.accepted = int64(events)
		return o
	}
	var v struct {
		Success    bool   `json:"success"`
		Accepted   *int64 `json:"accepted"`
		Duplicates int64  `json:"duplicates"`
		Dropped    int64  `json:"dropped"`
	}
	if err := json.Unmarshal(b, &v); err != nil || !v.Success {
		o.err = fmt.Errorf("HTTP 200 with unexpected body %q", b[:min(len(b), 200)])
		return o
	}
	o.accepted = int64(events) - v.Duplicates - v.Dropped
	if v.Accepted != nil {
		o.accepted = *v.Accepted
	}
	o.dups, o.dropped = v.Duplicates, v.Dropped
	return o
}

func waitClosed(rb *reusableBody) bool {
	select {
	case <-rb.closed:
		return true
	default:
	}
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case <-rb.closed:
		return true
	case <-t.C:
		return false
	}
}

func (w *workerStats) account(o outcome, lat time.Duration, inWindow bool) {
	w.sent++
	if o.status == 0 {
		w.transportErrs++
	} else {
		w.statuses[o.status]++
	}
	if o.err != nil && w.firstErr == "" {
		w.firstErr = o.err.Error()
	}
	w.acked += o.accepted
	if w.live != nil {
		w.live.Add(o.accepted)
	}
	w.dups += o.dups
	w.dropped += o.dropped
	if !inWindow {
		return
	}
	w.winReqs++
	if done := time.Now(); done.After(w.lastDone) {
		w.lastDone = done
	}
	if o.err != nil {
		w.winErrors++
	} else {
		w.winEvents += o.accepted
	}
	if o.status != 0 {
		w.h.record(lat)
	}
}

func run(c runConfig) (*Result, error) {
	runID := fmt.Sprintf("%012x", rand.Uint64()&0xffffffffffff)
	gen := segmentgen.New(c.seed, runID, time.Now())
	if c.convertible {
		gen.Convertible()
	}
	if c.newPeople {
		gen.NewPeople()
	}
	batch := isBatchEndpoint(c.endpoint)
	ua := "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	if batch {
		ua = "analytics-node-next/latest (node.js 22)"
	}
	tmpls := make([]*segmentgen.Template, c.templates)
	var bytesTotal, eventsTotal int
	for i := range tmpls {
		var err error
		if batch {
			tmpls[i], err = gen.Batch(c.batch)
		} else {
			tmpls[i], err = gen.Single()
		}
		if err != nil {
			return nil, err
		}
		bytesTotal += tmpls[i].Len()
		eventsTotal += tmpls[i].Events()
	}
	perReq := tmpls[0].Events()
	var cl sender = newClient(c, ua)
	if c.client == "raw" {
		rc, err := newRawClient(c, ua)
		if err != nil {
			return nil, err
		}
		cl = rc
	}
	defer cl.close()

	res := &Result{
		Scenario: c.scenario, Target: c.target, URL: c.url, Endpoint: c.endpoint, Mode: "closed", Client: c.client,
		Concurrency: c.concurrency, Rate: c.rate, EventsPerReq: perReq,
		BytesPerEvent: float64(bytesTotal) / float64(eventsTotal),
		WarmupS:       c.warmup.Seconds(), DurationS: c.duration.Seconds(),
		LoadAvg: readLoadAvg(), Started: time.Now().UTC(), Statuses: map[string]int64{},
	}
	if c.rate > 0 {
		res.Mode = "open"
	}

	start := time.Now()
	warmEnd := start.Add(c.warmup)
	end := warmEnd.Add(c.duration)
	ctx, cancel := context.WithDeadline(context.Background(), end.Add(c.drain))
	defer cancel()

	// CPU snapshots at the window's edges.
	var cpu cpuWindow
	var snapWG sync.WaitGroup
	snapWG.Go(func() { cpu.measure(ctx, c.serverPID, warmEnd, end) })

	// Delivery benchmark: watch the sandbox from the first request until
	// the backlog is gone (its own deadline, not the load's).
	var liveAcked atomic.Int64
	var watch *watcher
	var watchStop string
	var watchWG sync.WaitGroup
	wctx, wcancel := context.WithCancel(context.Background())
	defer wcancel()
	if c.delivery.sandbox != "" {
		var err error
		if watch, err = newWatcher(c.delivery, c.serverPID, start, &liveAcked); err != nil {
			return nil, err
		}
		watchWG.Go(func() { watchStop = watch.poll(wctx) })
	}

	var ids atomic.Uint64
	ids.Store(1)
	var issued atomic.Int64
	var capped atomic.Bool // closed loop: -max-requests ended the load before the window
	stats := make([]*workerStats, c.concurrency)
	var wg sync.WaitGroup

	stamp := func(w *workerStats, r *rand.Rand) ([]byte, int) {
		t := tmpls[r.IntN(len(tmpls))]
		n := uint64(t.Events())
		body := t.Stamp(w.buf, ids.Add(n)-n)
		return body, t.Events()
	}

	if c.rate == 0 {
		for i := range stats {
			w := &workerStats{statuses: map[int]int64{}, live: &liveAcked}
			stats[i] = w
			r := rand.New(rand.NewPCG(c.seed, uint64(i)))
			wg.Go(func() {
				for ctx.Err() == nil {
					t0 := time.Now()
					if !t0.Before(end) {
						return
					}
					if issued.Add(1) > c.maxRequests {
						capped.Store(true)
						return
					}
					body, n := stamp(w, r)
					o, reuse := cl.send(ctx, body, n)
					done := time.Now()
					if reuse {
						w.buf = body
					} else {
						w.buf = nil
					}
					w.account(o, done.Sub(t0), !done.Before(warmEnd) && done.Before(end))
				}
			})
		}
	} else {
		total := min(int64(float64(c.rate)*(c.warmup+c.duration).Seconds()), c.maxRequests)
		sch := newOpenSchedule(start, c.rate, total)
		for i := range stats {
			w := &workerStats{statuses: map[int]int64{}, live: &liveAcked}
			stats[i] = w
			r := rand.New(rand.NewPCG(c.seed, uint64(i)))
			wg.Go(func() {
				timer := time.NewTimer(time.Hour)
				defer timer.Stop()
				for {
					intended, ok := sch.wait(ctx, timer)
					if !ok {
						return
					}
					body, n := stamp(w, r)
					lag := time.Since(intended)
					if lag > time.Millisecond {
						w.late++
					}
					inWindow := !intended.Before(warmEnd) && intended.Before(end)
					if inWindow {
						w.lag.record(lag)
					}
					o, reuse := cl.send(ctx, body, n)
					done := time.Now()
					if reuse {
						w.buf = body
					} else {
						w.buf = nil
					}
					w.account(o, done.Sub(intended), inWindow)
				}
			})
		}
	}
	wg.Wait()
	loadEnd := time.Now()
	if capped.Load() && loadEnd.Before(end) {
		// -max-requests ended the load early (bench/memory.sh's chunks):
		// no request is left, so do not wait for the window's end; the
		// CPU figures of a window cut short are unknown (-1).
		cancel()
	}
	// The CPU snapshot at the window's end comes first: an open-loop run's
	// last request can finish before it, and cancel would lose it.
	snapWG.Wait()
	cancel()
	if watch != nil {
		close(watch.loadOver)
		watchWG.Wait()
	}

	var h, lag hist
	var lastDone time.Time
	for _, w := range stats {
		if w.lastDone.After(lastDone) {
			lastDone = w.lastDone
		}
		h.merge(&w.h)
		lag.merge(&w.lag)
		res.Requests += w.winReqs
		res.Events += w.winEvents
		res.Errors += w.winErrors
		res.SentRequests += w.sent
		res.AckedEvents += w.acked
		res.DuplicateEvents += w.dups
		res.DroppedEvents += w.dropped
		res.TransportErrors += w.transportErrs
		res.Late += w.late
		for s, n := range w.statuses {
			res.Statuses[strconv.Itoa(s)] += n
		}
		if res.FirstError == "" {
			res.FirstError = w.firstErr
		}
	}
	secs := c.duration.Seconds()
	// Open loop: the window's requests were scheduled over the duration; if
	// the server fell behind, they completed over a longer span.
	span := secs
	if c.rate > 0 && lastDone.Sub(warmEnd).Seconds() > span {
		span = lastDone.Sub(warmEnd).Seconds()
	}
	res.ReqPerS = float64(res.Requests) / span
	res.EventsPerS = float64(res.Events) / span
	res.MBPerS = res.EventsPerS * res.BytesPerEvent / 1e6
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	res.P50Ms, res.P90Ms, res.P99Ms, res.P999Ms = ms(h.quantile(0.50)), ms(h.quantile(0.90)), ms(h.quantile(0.99)), ms(h.quantile(0.999))
	res.P95Ms = ms(h.quantile(0.95))
	res.MaxMs, res.MeanMs = ms(time.Duration(h.max)), ms(h.mean())
	if c.rate > 0 {
		res.SendLagP50Ms, res.SendLagP99Ms, res.SendLagMaxMs = ms(lag.quantile(0.50)), ms(lag.quantile(0.99)), ms(time.Duration(lag.max))
	}
	res.ServerCPUCores, res.LoadgenCPUCores = cpu.cores(secs)
	res.ServerRunqPerCPU, res.LoadgenRunqPerCPU = cpu.runqPerCPU()
	res.ServerCPUPerEventUs = -1
	if res.ServerCPUCores >= 0 && res.Events > 0 {
		res.ServerCPUPerEventUs = res.ServerCPUCores * secs / float64(res.Events) * 1e6
	}
	if watch != nil {
		res.Delivery = watch.finish(wctx, res, loadEnd, warmEnd, end, watchStop)
	}
	return res, nil
}

func isBatchEndpoint(p string) bool {
	switch strings.TrimSuffix(p, "/") {
	case "/v1/batch", "/v1/import", "/v1/b":
		return true
	}
	return false
}

func printSummary(w io.Writer, r *Result) {
	fmt.Fprintf(w, "%s → %s (%s loop, %s, %d events/req, %.0f B/event, %s client)\n", r.Scenario, r.Target, r.Mode, r.Endpoint, r.EventsPerReq, r.BytesPerEvent, r.Client)
	fmt.Fprintf(w, "  window %.0fs: %d requests, %.0f req/s, %.0f events/s (%.1f MB/s)\n", r.DurationS, r.Requests, r.ReqPerS, r.EventsPerS, r.MBPerS)
	fmt.Fprintf(w, "  latency p50 %.2f ms  p90 %.2f ms  p95 %.2f ms  p99 %.2f ms  p99.9 %.2f ms  max %.2f ms\n", r.P50Ms, r.P90Ms, r.P95Ms, r.P99Ms, r.P999Ms, r.MaxMs)
	fmt.Fprintf(w, "  errors in window %d; whole run: sent %d requests, acked %d events, statuses %v, transport errors %d\n",
		r.Errors, r.SentRequests, r.AckedEvents, r.Statuses, r.TransportErrors)
	if r.FirstError != "" {
		fmt.Fprintf(w, "  first error: %s\n", r.FirstError)
	}
	if r.Mode == "open" {
		fmt.Fprintf(w, "  open loop: %d requests left more than 1 ms after their scheduled time; send lag in the window p50 %.2f ms  p99 %.2f ms  max %.2f ms\n",
			r.Late, r.SendLagP50Ms, r.SendLagP99Ms, r.SendLagMaxMs)
	}
	fmt.Fprintf(w, "  CPU: server %.2f cores (%.1f µs per event), loadgen %.2f cores; waited for a CPU per CPU second: server %.2f s, loadgen %.2f s\n",
		r.ServerCPUCores, r.ServerCPUPerEventUs, r.LoadgenCPUCores, r.ServerRunqPerCPU, r.LoadgenRunqPerCPU)
}

package main

import (
	"context"
	"flag"
	"fmt"
	"sync/atomic"
	"time"
)

// drainCmd measures delivery alone. bench/delivery.sh first fills a
// capstan that has no destination with a backlog, then starts capstan again
// on the same data directory with the destination and runs "loadgen drain":
// it polls the sandbox until it accepted every event of the backlog and
// reports how fast that went and what it cost capstan in CPU. Ingest does
// not compete for the CPUs here, so this is the pipeline's own capacity:
// stored event → identity graph → conversion → LinkedIn's 2xx → ack.
func drainCmd(args []string) error {
	fs := flag.NewFlagSet("drain", flag.ExitOnError)
	var c deliveryConfig
	fs.StringVar(&c.sandbox, "sandbox", "", "the sandbox's base URL")
	fs.IntVar(&c.sandboxPID, "sandbox-pid", 0, "the sandbox's process id, for its CPU use")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Minute, "longest wait for the backlog")
	fs.DurationVar(&c.stall, "stall", time.Minute, "give up when nothing is accepted for this long")
	fs.DurationVar(&c.poll, "poll", 100*time.Millisecond, "how often to read the sandbox's counters")
	expect := fs.Int64("expect", 0, "events in the backlog")
	serverPID := fs.Int("server-pid", 0, "capstan's process id, for its CPU use")
	scenario := fs.String("scenario", "backlog", "scenario name for the results table")
	target := fs.String("target", "capstan", "target name for the results table")
	out := fs.String("out", "", "append the JSON result line to this file")
	_ = fs.Parse(args)
	if *expect <= 0 {
		return fmt.Errorf("-expect: the backlog's size is required")
	}

	var acked atomic.Int64
	acked.Store(*expect)
	start := time.Now()
	w, err := newWatcher(c, *serverPID, start, &acked)
	if err != nil {
		return err
	}
	close(w.loadOver) // there is no load: only the backlog
	stop := w.poll(context.Background())
	end := time.Now()
	cpu, sbCPU := pidCPU(*serverPID)-w.cpu0, pidCPU(c.sandboxPID)-w.sbCPU0

	w.mu.Lock()
	last, first := w.last, w.firstAcc
	w.mu.Unlock()
	r := DrainResult{
		Scenario: *scenario, Target: *target, Events: *expect, Accepted: last.Accepted,
		AllDelivered: last.Accepted >= *expect, StopReason: stop,
		Seconds: end.Sub(start).Seconds(), ServerCPUSeconds: cpu, SandboxCPUSeconds: sbCPU,
	}
	if !first.IsZero() {
		r.FirstAcceptS = first.Sub(start).Seconds()
		if d := end.Sub(first).Seconds(); d > 0 {
			r.EventsPerSFirstToLast = float64(last.Accepted) / d
		}
	}
	r.EventsPerS = float64(last.Accepted) / r.Seconds
	if last.Accepted > 0 && cpu >= 0 {
		r.ServerCPUMicrosPerEvent = cpu * 1e6 / float64(last.Accepted)
	}
	fmt.Printf("%s: %d of %d events accepted in %.1fs (%s): %.0f events/s, %.0f/s from the first accept; capstan %.1f CPU-µs per event\n",
		r.Scenario, r.Accepted, r.Events, r.Seconds, stop, r.EventsPerS, r.EventsPerSFirstToLast, r.ServerCPUMicrosPerEvent)
	if err := appendResult(*out, r); err != nil {
		return err
	}
	if !r.AllDelivered {
		return fmt.Errorf("backlog not delivered: %s", stop)
	}
	return nil
}

// DrainResult is the JSON line of "loadgen drain".
type DrainResult struct {
	Scenario     string `json:"scenario"`
	Target       string `json:"target"`
	Events       int64  `json:"events"`
	Accepted     int64  `json:"accepted"`
	AllDelivered bool   `json:"all_delivered"`
	StopReason   string `json:"stop_reason"`
	// Seconds from capstan's start (loadgen drain starts right after it)
	// until the sandbox had accepted the backlog; FirstAcceptS is when the
	// first conversion arrived (start-up, conversion rule, first batch).
	Seconds                 float64 `json:"seconds"`
	FirstAcceptS            float64 `json:"first_accept_s"`
	EventsPerS              float64 `json:"events_per_s"`
	EventsPerSFirstToLast   float64 `json:"events_per_s_first_to_last"`
	ServerCPUSeconds        float64 `json:"server_cpu_s"`
	ServerCPUMicrosPerEvent float64 `json:"server_cpu_us_per_event"`
	SandboxCPUSeconds       float64 `json:"sandbox_cpu_s"`
}

package delivery

import (
	"context"
	"sync"
	"time"
)

// Acknowledgements are confirmed (stream.Delivery.AckSync, the "double
// ack"): a fire-and-forget ack sent to a consumer leader that dies is lost,
// and the events are delivered (sent to the destination) again by the next
// leader. Confirming costs a round trip per event, so it is not done by the
// goroutine that finished the event (a sender, which would wait for it
// before its next request) but by a bounded pool of ackers fed through a
// queue; a sender waits only when the queue is full.
//
// Only with an external (clustered) engine: the embedded engine is one
// server in this process, where no consumer leader can change, and a plain
// ack is lost only when the process dies, which a confirmation does not
// change. Measured with bench/inproc BenchmarkDelivery (nograph,
// sync=always, 30,000 events, on the loaded 2-core machine): confirmed acks
// cost 81–88 CPU-µs per event against 54–56 for plain ones, and 2.5–4.9K
// against 3.7–5.3K events/s (three alternating runs each). docs/storage.md's segments bring this down to
// one confirmed ack per segment.
const (
	// ackWorkers confirm acknowledgements concurrently.
	ackWorkers = 32
	// ackQueue bounds the events waiting for their acknowledgement.
	ackQueue = 8192
	// ackTry bounds one confirmation's wait.
	ackTry = 5 * time.Second
)

// acker confirms the acknowledgements of one Run.
type acker struct {
	r  *Runner
	ch chan *tracked
	wg sync.WaitGroup
}

// startAcker starts the pool of ackers.
func (r *Runner) startAcker() *acker {
	a := &acker{r: r, ch: make(chan *tracked, ackQueue)}
	for range ackWorkers {
		a.wg.Go(func() {
			for t := range a.ch {
				r.confirmAck(t)
			}
		})
	}
	return a
}

// ack queues t's acknowledgement.
func (a *acker) ack(t *tracked) { a.ch <- t }

// stop waits for every queued acknowledgement to be confirmed (or given up).
func (a *acker) stop() {
	close(a.ch)
	a.wg.Wait()
}

// confirmAck acknowledges t and waits for the server's confirmation,
// retrying a transient error (a timeout while a consumer leader is being
// elected) with backoff for up to AckWait: after that the event is
// redelivered anyway. It does not stop with the runner's context, so that
// what was delivered before a shutdown is still acknowledged.
func (r *Runner) confirmAck(t *tracked) {
	deadline := time.Now().Add(r.cfg.AckWait)
	wait := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), ackTry)
		err := t.AckSync(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().Add(wait).After(deadline) {
			r.log.Warn("acknowledgement not confirmed; the event will be delivered again", "error", err, "event_pos", t.Pos(), "attempts", attempt)
			return
		}
		if attempt == 1 {
			r.log.Debug("acknowledgement not confirmed; retrying", "error", err, "event_pos", t.Pos())
		}
		time.Sleep(wait)
		wait = min(2*wait, 2*time.Second)
	}
}

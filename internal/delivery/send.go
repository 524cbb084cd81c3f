package delivery

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
)

// item is one conversion on its way.
type item struct {
	Payload
	route *Route
	ev    *tracked
	tries int
	// collision: sent under a derived key by the eventId guard.
	collision bool
	// claim is the guard key this item's content owns ("" none), content
	// its hash: released when the remote refuses the item, so that a
	// corrected conversion can take the eventId. group and idx are the
	// claim group that wrote the key's value and the key's index in it
	// (group nil: the key was claimed earlier, and is marked by key).
	claim   string
	content [32]byte
	group   *claimGroup
	idx     uint32
}

// batch gathers conversions and flushes on count, linger or stop.
func (r *Runner) batch(ctx context.Context, in <-chan *item, senders *sync.WaitGroup) {
	sem := make(chan struct{}, r.cfg.MaxInflight)
	var pending []*item
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	flush := func() {
		if len(pending) == 0 {
			return
		}
		batch := pending
		pending = nil
		timer.Stop()
		sem <- struct{}{}
		senders.Go(func() {
			defer func() { <-sem }()
			// Requests already under way finish even when ctx ends; only
			// their retries stop.
			r.deliver(context.WithoutCancel(ctx), ctx, batch)
		})
	}
	for {
		select {
		case it, ok := <-in:
			if !ok {
				flush() // soft stop: send what is batched
				return
			}
			if len(pending) == 0 {
				timer.Reset(r.cfg.Linger)
			}
			pending = append(pending, it)
			if len(pending) >= r.cfg.BatchSize {
				flush()
			}
		case <-timer.C:
			flush()
		}
	}
}

// job is one entry of a batch's work queue: items still to be encoded
// into requests (req nil), or one encoded request with its items.
type job struct {
	items   []*item
	req     *Request
	attempt int
}

// deliver sends a flushed batch. Its work is an explicit stack of jobs:
// encoding pushes one job per request, and an answer pushes what must be
// sent next (the unrefused rest of a split, the halves of a request that
// was too large, a retry), so the batch is worked through in order without
// recursion. send is used for requests, stop ends retries.
func (r *Runner) deliver(send, stop context.Context, batch []*item) {
	// The guard's claims, like the requests, finish on a soft stop: what
	// is batched is still sent.
	batch = r.guardBatch(send, batch)
	if len(batch) == 0 {
		return
	}
	stack := []job{{items: batch}}
	for len(stack) > 0 {
		j := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if j.req == nil {
			jobs := r.encode(j.items, j.attempt)
			for i := len(jobs) - 1; i >= 0; i-- { // the first request is sent first
				stack = append(stack, jobs[i])
			}
			continue
		}
		next := r.attempt(send, stop, j)
		for i := len(next) - 1; i >= 0; i-- {
			stack = append(stack, next[i])
		}
	}
}

// encode groups items into requests, one job each, whose attempts count
// on from attempt.
func (r *Runner) encode(items []*item, attempt int) []job {
	if len(items) == 0 {
		return nil
	}
	ps := make([]Payload, len(items))
	for i, it := range items {
		ps[i] = it.Payload
	}
	reqs, err := r.plan.Format.Requests(ps)
	if err != nil {
		// Payloads passed validation, so this is a bug; keep the events
		// (they are redelivered shortly, not acknowledged).
		r.log.Error("encode request failed; events will be redelivered", "error", err)
		for _, it := range items {
			it.ev.failed.Store(true)
			r.release(it.ev)
		}
		return nil
	}
	jobs := make([]job, len(reqs))
	for i := range reqs {
		sub := make([]*item, len(reqs[i].Items))
		for k, idx := range reqs[i].Items {
			sub[k] = items[idx]
		}
		jobs[i] = job{items: sub, req: &reqs[i], attempt: attempt}
	}
	return jobs
}

// attempt sends j's request once, within the rate limits, acts on the
// answer and returns the jobs that must follow.
func (r *Runner) attempt(send, stop context.Context, j job) []job {
	items := j.items
	if waited, err := r.limits.wait(stop, r.dest.LimitKey(), r.cfg.PerMinute, r.cfg.PerDay); err != nil {
		r.abandon(items)
		return nil
	} else if waited {
		r.m.limited.WithLabelValues(r.plan.Name, "local").Inc()
	}
	if r.lease != nil && !r.lease.Valid() {
		// The lease was lost (another replica wrote it) or could not be
		// renewed within its ttl: another replica may deliver now, so send
		// nothing more; the events stay unacknowledged for it.
		r.abandon(items)
		return nil
	}
	// Taken before the request: a Resume while it is in flight (an
	// operator who has just fixed what will pause it) wakes its retry.
	wake := r.resumed()
	start := time.Now()
	a := r.dest.Send(send, *j.req)
	r.m.latency.WithLabelValues(r.plan.Name).Observe(time.Since(start).Seconds())
	if a.Class == 0 {
		a.Class = Retry
	}
	r.m.requests.WithLabelValues(r.plan.Name, a.label()).Inc()
	for _, it := range items {
		it.tries++
	}
	switch a.Class {
	case Accepted:
		r.unpause()
		r.retrying.Store(nil)
		r.m.batchSize.WithLabelValues(r.plan.Name).Observe(float64(len(items)))
		now := time.Now()
		// The sent-conversion record, confirmed before the events'
		// acknowledgements: whoever reads them again skips these. It is
		// written at once, alongside the ledger's count, to keep short the
		// time in which a crash loses the knowledge of this acceptance.
		var marked sync.WaitGroup
		if r.guard != nil {
			marked.Go(func() {
				if err := r.guard.markAccepted(items); err != nil {
					r.log.Warn("accepted conversions not recorded; if their events are read again they are sent again", "error", err, "batch_size", len(items))
				}
			})
		}
		if r.ledger != nil { // before the metric: delivered implies counted
			ts := make([]Tally, len(items))
			at := r.clock.Now()
			for i, it := range items {
				ts[i] = Tally{Rule: it.route.Rule, Day: dayOf(it.Happened, at), Accepted: 1, LastSent: at.UnixMilli()}
				if it.collision {
					ts[i].Collisions = 1
				}
			}
			r.count(ts)
		}
		marked.Wait()
		r.delivered.Add(float64(len(items)))
		for _, it := range items {
			if !it.ev.recv.IsZero() {
				r.endToEnd.Observe(now.Sub(it.ev.recv).Seconds())
			}
			r.funnel.route(it.route).Delivered(it.IDs, now.Sub(it.ev.StoredAt))
			if cs := r.funnel.delivery[it.route]; cs != nil {
				cs[it.IDs.Index()].Inc()
			}
			r.release(it.ev)
		}
		return nil

	case Split:
		refused := make(map[int]Refusal, len(a.Refused))
		for _, f := range a.Refused {
			refused[f.Index] = f
		}
		if len(refused) == 0 { // nothing named: refused whole
			for _, it := range items {
				r.deadLetterItem(stop, it, ReasonRejected, a, a.Status, a.Message, nil)
			}
			return nil
		}
		var rest []*item
		for i, it := range items {
			if f, ok := refused[i]; ok {
				r.deadLetterItem(stop, it, ReasonRejected, a, f.Status, f.Message, f.Details)
			} else {
				rest = append(rest, it)
			}
		}
		return []job{{items: rest}}

	case TooLarge:
		if len(items) == 1 {
			r.deadLetterItem(stop, items[0], ReasonRejected, a, a.Status, a.Message, nil)
			return nil
		}
		half := len(items) / 2
		return []job{{items: items[:half]}, {items: items[half:]}}

	case Refused:
		var details any
		if len(items) == 1 && len(a.Refused) > 0 {
			details = a.Refused[0].Details
		}
		for _, it := range items {
			r.deadLetterItem(stop, it, ReasonRejected, a, a.Status, a.Message, details)
		}
		return nil

	case Retry:
		r.m.retries.WithLabelValues(r.plan.Name).Inc()
		msg := answerText(a)
		if len(msg) > 300 {
			msg = strings.ToValidUTF8(msg[:300], "") + "…"
		}
		rt := &Retrying{Since: r.clock.Now().UTC(), Status: a.Status, Message: msg}
		if old := r.retrying.Load(); old != nil {
			rt.Since = old.Since
		}
		r.retrying.Store(rt)
		if a.Status == 429 {
			r.m.limited.WithLabelValues(r.plan.Name, "remote").Inc()
		}
		wait := backoff(r.cfg.RetryBase, r.cfg.RetryMax, j.attempt, a.RetryAfter)
		if a.DayExhausted {
			r.limits.exhaustDay(r.dest.LimitKey())
			wait += time.Duration(rand.Int64N(int64(time.Minute)))
		}
		kept := r.expire(stop, items, wait, a)
		if len(kept) == 0 {
			return nil
		}
		r.log.Warn("request failed; retrying", "status", a.Status, "attempt", j.attempt+1, "wait", wait.String(), "batch_size", len(kept), "error", answerText(a))
		if err := r.clock.Sleep(stop, wait); err != nil {
			r.abandon(kept)
			return nil
		}
		if len(kept) != len(items) { // some expired: encode the rest again
			return []job{{items: kept, attempt: j.attempt + 1}}
		}
		return []job{{items: items, req: j.req, attempt: j.attempt + 1}}

	default: // Pause: wait for an operator's fix
		r.pause(a.PauseReason)
		select {
		case <-stop.Done():
			r.abandon(items)
			return nil
		case <-wake:
		case <-time.After(r.cfg.PauseRetry):
		}
		return []job{{items: items, req: j.req, attempt: j.attempt + 1}}
	}
}

// count adds ts to the ledger's accepted counts; a failure is logged (the
// counts are then short), never the delivery's.
func (r *Runner) count(ts []Tally) {
	if r.ledger == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.ledger.Add(ctx, r.plan.Name, ts); err != nil {
		r.log.Warn("accepted counts not updated; reconciliation will show fewer", "error", err)
	}
}

// expire dead-letters the items that would leave the destination's window
// before the next attempt and returns the others.
func (r *Runner) expire(ctx context.Context, items []*item, wait time.Duration, a Answer) []*item {
	deadline := r.clock.Now().Add(wait + time.Minute)
	keep := items[:0:0]
	for _, it := range items {
		if !it.Happened.IsZero() && deadline.Sub(it.Happened) >= r.cfg.Window {
			msg := fmt.Sprintf("not delivered within the destination's %d-day window; last error: %s", int(r.cfg.Window/(24*time.Hour)), a.Message)
			r.deadLetterItem(ctx, it, ReasonExpired, a, a.Status, msg, nil)
			continue
		}
		keep = append(keep, it)
	}
	return keep
}

// abandon leaves items un-acknowledged (stop): JetStream redelivers them.
func (r *Runner) abandon(items []*item) {
	for _, it := range items {
		it.ev.Abandon()
	}
}

// deadLetterItem dead-letters one conversion of an event with the remote's
// answer a (status, msg and details may be the element's own).
func (r *Runner) deadLetterItem(ctx context.Context, it *item, reason string, a Answer, status int, msg string, details any) {
	if it.claim != "" && r.guard != nil {
		// LinkedIn did not take it: its eventId is free again.
		r.guard.release(ctx, it.claim, it.content, r.log)
	}
	payload, _ := json.Marshal(it.Value)
	r.deadLetter(ctx, it.ev, &DeadLetter{
		Reason: reason, Mapping: it.route.Name, Status: status, Code: a.Code, Message: msg, Errors: details,
		RequestID: a.RequestID, Attempts: it.tries, Payload: payload,
	})
	r.release(it.ev)
}

// deadLetter writes dl for event t. A failed write marks t so that it is
// redelivered rather than acknowledged.
func (r *Runner) deadLetter(ctx context.Context, t *tracked, dl *DeadLetter) {
	dl.At = r.clock.Now().UTC()
	dl.Destination, dl.Source, dl.Trust, dl.EventSeq, dl.EventIndex, dl.Event = r.plan.Name, t.Source, t.Trust, t.Seq, t.Index, t.Doc
	var probe struct {
		MessageID string `json:"messageId"`
	}
	_ = json.Unmarshal(t.Doc, &probe)
	dl.MessageID = probe.MessageID
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := writeDeadLetter(wctx, r.eng, dl); err != nil {
		t.failed.Store(true)
		r.log.Error("dead-letter write failed; the event will be delivered again", "error", err, "event_pos", t.Pos())
		return
	}
	r.m.deadLetters.WithLabelValues(r.plan.Name, dl.Reason).Inc()
	r.m.events.WithLabelValues(r.plan.Name, "dead_lettered").Inc()
	if dl.Mapping != "" {
		r.funnel.mapping(dl.Mapping).DeadLettered()
	} else {
		r.funnel.dest.DeadLettered()
	}
	// The detail stays in the DLQ entry (capstan dlq show): the remote's
	// messages may echo field values.
	r.log.Warn("conversion dead-lettered", "reason", dl.Reason, "mapping", dl.Mapping, "status", dl.Status, "code", dl.Code, "message_id", dl.MessageID)
}

// backoff is capped exponential backoff with full jitter; retryAfter is the
// minimum (STYLE §7).
func backoff(base, maxWait time.Duration, attempt int, retryAfter time.Duration) time.Duration {
	ceil := maxWait
	if attempt < 30 {
		ceil = min(maxWait, base<<attempt)
	}
	return max(retryAfter, time.Duration(rand.Int64N(int64(ceil)+1)))
}

func answerText(a Answer) string {
	if a.Err != nil {
		return a.Err.Error()
	}
	return a.Message
}

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// sentRequest is one tracking request the tests made, kept so that it can
// be sent again.
type sentRequest struct {
	path string
	body []byte
	ids  []string // messageIds of its events, in order
}

// ledger records every request sent and every messageId acknowledged with a
// 200. It is safe for concurrent use.
type ledger struct {
	mu       sync.Mutex
	requests []sentRequest
	acked    map[string]bool
	attempts map[string]bool
}

func newLedger() *ledger {
	return &ledger{acked: map[string]bool{}, attempts: map[string]bool{}}
}

func (l *ledger) sent(r sentRequest) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.requests = append(l.requests, r)
	for _, id := range r.ids {
		l.attempts[id] = true
	}
}

func (l *ledger) ack(ids []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, id := range ids {
		l.acked[id] = true
	}
}

func (l *ledger) ackedIDs() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return sortedKeys(l.acked)
}

func (l *ledger) attemptedIDs() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return sortedKeys(l.attempts)
}

func (l *ledger) allRequests() []sentRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.requests)
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// makeRequest builds request n of a worker: single track events
// and batches of 2 to 8, alternating, with messageIds unique to the run.
func makeRequest(prefix string, n int) sentRequest {
	if n%3 == 0 {
		id := fmt.Sprintf("%s-%d", prefix, n)
		return sentRequest{path: "/v1/track", body: marshal(trackEvent(id, n)), ids: []string{id}}
	}
	size := 2 + n%7
	batch := make([]any, size)
	ids := make([]string, size)
	for i := range size {
		ids[i] = fmt.Sprintf("%s-%d.%d", prefix, n, i)
		batch[i] = trackEvent(ids[i], n*10+i)
	}
	return sentRequest{path: "/v1/batch", body: marshal(map[string]any{"batch": batch}), ids: ids}
}

// marshal is json.Marshal for values that always encode.
func marshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // programmer error: only maps, strings and numbers here
	}
	return b
}

// loadResult counts what happened to a load's requests.
type loadResult struct {
	acked, refused, failed int64 // 200, other status, no answer
	inflightAtStop         int64
}

// load runs workers that each send requests (makeRequest with their own
// prefix) to url, concurrently and back to back, and calls act once
// afterAcked requests have been acknowledged, with requests in flight. Each
// worker stops after its first request that got no answer (the server is
// gone), after maxPerWorker requests, or after loadTimeout. load returns when
// every worker has ended.
func load(t testing.TB, hc *http.Client, url string, l *ledger, prefix string, workers int, afterAcked int64, act func()) loadResult {
	t.Helper()
	const maxPerWorker, loadTimeout = 5000, 60 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
	defer cancel()
	var res loadResult
	var inflight atomic.Int64
	var acked, refused, failed atomic.Int64
	reached := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for n := 0; n < maxPerWorker && ctx.Err() == nil; n++ {
				r := makeRequest(fmt.Sprintf("%s-w%d", prefix, w), n)
				l.sent(r)
				inflight.Add(1)
				status, ans, err := post(ctx, hc, url, r.path, r.body)
				inflight.Add(-1)
				switch {
				case err == nil && status == http.StatusOK && ans.Success && ans.Dropped == 0 && ans.Duplicates == 0:
					l.ack(r.ids)
					if acked.Add(1) == afterAcked { // exactly once
						close(reached)
					}
				case err == nil && status == http.StatusOK:
					t.Errorf("request %s with new messageIds: 200 but not all events accepted: %+v", r.path, ans)
					return
				case err == nil:
					refused.Add(1)
				default:
					failed.Add(1)
					return
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-reached:
		res.inflightAtStop = inflight.Load()
		act()
	case <-done:
		t.Errorf("load %s: every worker stopped after %d acknowledged requests, before %d", prefix, acked.Load(), afterAcked)
	}
	<-done
	res.acked, res.refused, res.failed = acked.Load(), refused.Load(), failed.Load()
	return res
}

package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// crashSeedEnv fixes the seed of TestDeliveryCrash's kill moments.
const crashSeedEnv = "CAPSTAN_E2E_CRASH_SEED"

// TestDeliveryCrash sends 20,000 Sign Ups from eight concurrent clients
// (POST /v1/batch, 100 events each, unique messageIds) while `capstan
// serve` is killed with SIGKILL five times at random moments — while events
// are ingested and while conversions are on their way to LinkedIn — and
// restarted on the same data directory. Clients retry every request that
// failed or got no 200, as real clients do. In the end every event is in the
// sandbox exactly once: re-sends after a crash are absorbed by capstan's
// messageId de-duplication on ingest and LinkedIn's eventId de-duplication
// on delivery (the sandbox's deduplicated counter).
func TestDeliveryCrash(t *testing.T) {
	const (
		requests  = 200
		perReq    = 100
		total     = requests * perReq
		workers   = 8
		kills     = 5
		deliverBy = 60 * time.Second // from the first request
	)
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(crashSeedEnv); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("%s=%q: %v", crashSeedEnv, s, err)
		}
	}
	rng := rand.New(rand.NewPCG(seed, 0))
	t.Logf("kill moments from seed %d (set %s to repeat)", seed, crashSeedEnv)

	sb := startSandbox(t, "--token", "crash-token", "--max-conversions", "100000")
	dir := t.TempDir()
	cfg := writeDeliveryConfig(t, dir, "capstan.yaml", filepath.Join(dir, "data"), "",
		linkedInDest{sandbox: sb, accessToken: "crash-token", batchSize: 1000})
	srv := startServer(t, cfg)
	hc := newHTTPClient(t)
	hc.Timeout = 10 * time.Second

	// The requests, built up front: request r holds crash-r-0 … crash-r-99.
	bodies := make([][]byte, requests)
	var ids []string
	for r := range requests {
		batch := make([]any, perReq)
		for i := range perReq {
			id := fmt.Sprintf("crash-%03d-%02d", r, i)
			ids = append(ids, id)
			if i%2 == 0 {
				batch[i] = signUp(id, id+"@example.com", "")
			} else {
				batch[i] = signUp(id, "", "lfi-"+id)
			}
		}
		bodies[r] = marshal(map[string]any{"batch": batch})
	}

	// Progress is acknowledged events plus conversions LinkedIn accepted
	// (0 to 2*total): the kills happen at random points of it, so some hit
	// ingest and some delivery.
	var moments []int64
	for len(moments) < kills {
		m := int64(total/20 + rng.IntN(total*18/10))
		if !slices.ContainsFunc(moments, func(o int64) bool { return o > m-total/20 && o < m+total/20 }) {
			moments = append(moments, m)
		}
	}
	slices.Sort(moments)

	var current atomic.Pointer[string] // the running server's URL
	current.Store(&srv.URL)
	var acked, retried, ingested atomic.Int64
	var next atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), deliverBy)
	defer cancel()
	begin := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				r := int(next.Add(1) - 1)
				if r >= requests {
					return
				}
				for ctx.Err() == nil {
					url := current.Load()
					status, ans, err := post(ctx, hc, *url, "/v1/batch", bodies[r])
					if err == nil && status == http.StatusOK && ans.Success && ans.Dropped == 0 {
						if acked.Add(perReq) == total {
							ingested.Store(int64(time.Since(begin)))
						}
						break
					}
					// Retry once the server was restarted, or soon.
					retried.Add(1)
					poll(time.Second, func() bool { return current.Load() != url || ctx.Err() != nil })
				}
			}
		})
	}
	sendersDone := make(chan struct{})
	go func() { wg.Wait(); close(sendersDone) }()
	t.Cleanup(func() { cancel(); <-sendersDone })

	servers := []*server{srv}
	accepted := func() int64 { return sb.counters().Accepted }
	for k, m := range moments {
		var at int64
		if !poll(time.Until(begin.Add(deliverBy)), func() bool {
			at = acked.Load() + accepted()
			return at >= m
		}) {
			t.Errorf("kill %d not done: progress stalled at %d before %d (%d events acknowledged, %d conversions accepted by LinkedIn after %s)",
				k+1, at, m, acked.Load(), accepted(), deliverBy)
			break
		}
		srv.Kill()
		t.Logf("kill %d after %s: %d events acknowledged, %d conversions accepted by LinkedIn",
			k+1, time.Since(begin).Round(time.Millisecond), acked.Load(), accepted())
		srv = startServer(t, cfg)
		servers = append(servers, srv)
		current.Store(&srv.URL)
	}

	select {
	case <-sendersDone:
	case <-ctx.Done():
	}
	if n := acked.Load(); n != total {
		t.Fatalf("clients could not send every request within %s: %d of %d events acknowledged", deliverBy, n, total)
	}
	var c sandboxCounters
	poll(time.Until(begin.Add(deliverBy)), func() bool {
		c = sb.counters()
		return c.Accepted >= total
	})
	delivered := time.Since(begin)
	t.Logf("%d events acknowledged after %s (%d requests retried); LinkedIn accepted %d conversions after %s; sandbox counters %+v",
		acked.Load(), time.Duration(ingested.Load()).Round(time.Millisecond), retried.Load(), c.Accepted, delivered.Round(time.Millisecond), c)

	convs := sb.conversions()
	got := byEventID(t, convs)
	missing := 0
	for _, id := range ids {
		if _, ok := got[id]; !ok {
			if missing++; missing <= 5 {
				t.Errorf("event %s was acknowledged but did not reach LinkedIn within %s", id, deliverBy)
			}
		}
	}
	if missing > 0 || len(convs) != total {
		t.Errorf("the sandbox holds %d conversions (%d distinct), want %d; %d acknowledged events missing after %s",
			len(convs), len(got), total, missing, deliverBy)
		if missing > 0 {
			standby := 0
			for _, s := range servers {
				if strings.Contains(s.Output(), "standing by") {
					standby++
				}
			}
			t.Logf("%d of the %d restarted servers stood by at first (the lease of the killed one had not expired); delivery metrics of the last server: %s",
				standby, len(servers)-1, deliveryMetricsSummary(t, hc, srv.URL))
		}
	}
	t.Logf("LinkedIn-side de-duplication absorbed %d re-sent conversions", c.Deduplicated)
	if out := runDLQ(t, cfg, "list"); !strings.Contains(out, "no dead letters") {
		t.Errorf("capstan dlq list:\n%s\nwant no dead letters", out)
	}
}

// deliveryMetricsSummary returns the linkedin destination's event counters
// on srv, for failure messages.
func deliveryMetricsSummary(t testing.TB, hc *http.Client, url string) string {
	t.Helper()
	var parts []string
	for _, o := range []string{"received", "delivered", "dead_lettered", "not_matched"} {
		parts = append(parts, fmt.Sprintf("%s=%d", o, deliveryEvents(t, hc, url, o)))
	}
	return strings.Join(parts, " ")
}

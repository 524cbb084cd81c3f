package stream

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	dto "github.com/prometheus/client_model/go"
)

// commits is how many commits w wrote (capstan_store_commit_records' count).
func commits(t *testing.T, w *Writer) uint64 {
	t.Helper()
	var m dto.Metric
	if err := w.app.m.records.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}

func tracks(prefix string, from, to int) []Event {
	evs := make([]Event, 0, to-from)
	for i := from; i < to; i++ {
		evs = append(evs, track(fmt.Sprint(prefix, i)))
	}
	return evs
}

// TestCommitOfSeveralChunks: where capstan fsyncs the stream itself, a
// commit carries several chunks of MaxBatch events with one fsync; events
// are still stored in order, each once, de-duplicated across the chunks of
// one commit and across concurrent commits, and covered reaches the last
// sequence.
func TestCommitOfSeveralChunks(t *testing.T) {
	eng, d, w, _ := openDedupWriter(t, t.TempDir())

	// One request of 3 chunks (MaxBatch 1000), its event 2,100 a repeat of
	// its event 5 (in the first chunk): one commit.
	evs := tracks("a", 0, 2500)
	evs[2100] = track("a5")
	res, err := w.Append(context.Background(), evs)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Repeat("s", 2100) + "d" + strings.Repeat("s", 399)
	if got := outcome(res); got != want {
		t.Errorf("outcome %q…, want 2,100 stored, a duplicate, 399 stored", got[:min(len(got), 40)])
	}
	if n := commits(t, w); n != 1 {
		t.Errorf("one request of 3 chunks: %d commits, want 1", n)
	}
	stored := readEvents(t, eng, ReadOptions{})
	if len(stored) != 2499 {
		t.Fatalf("%d events stored, want 2,499", len(stored))
	}
	for i, s := range stored {
		j := i
		if i >= 2100 {
			j++
		}
		if want := fmt.Sprint("a", j); s.MessageID != want {
			t.Fatalf("event %d stored is %s, want %s (in order)", i, s.MessageID, want)
		}
	}

	// 16 concurrent requests of 1,500 events, each overlapping the next by
	// 1,000: every id stored once, and each request sees every event of
	// its own either stored or a duplicate.
	var wg sync.WaitGroup
	var mu sync.Mutex
	stores := map[string]int{}
	for r := range 16 {
		wg.Go(func() {
			evs := tracks("b", r*500, r*500+1500)
			res, err := w.Append(context.Background(), evs)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for i, x := range res {
				switch {
				case x.Err != nil:
					t.Errorf("request %d event %d: %v", r, i, x.Err)
				case x.Duplicate:
				case x.Seq == 0:
					t.Errorf("request %d event %d: neither stored nor a duplicate", r, i)
				default:
					stores[evs[i].MessageID]++
				}
			}
		})
	}
	wg.Wait()
	seen := map[string]int{}
	for _, s := range readEvents(t, eng, ReadOptions{}) {
		if strings.HasPrefix(s.MessageID, "b") {
			seen[s.MessageID]++
		}
	}
	if len(seen) != 15*500+1500 {
		t.Errorf("%d ids stored, want %d", len(seen), 15*500+1500)
	}
	for id, n := range seen {
		if n != 1 || stores[id] != 1 {
			t.Errorf("%s stored %d times, reported stored %d times", id, n, stores[id])
		}
	}
	last, _ := eng.LastEventSeq(context.Background())
	if c := d.Covered(); c != last {
		t.Errorf("covered %d, want the last sequence %d", c, last)
	}
}

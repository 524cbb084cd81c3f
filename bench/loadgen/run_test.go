package main

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestOpenSchedule: workers taking requests from the open loop's schedule
// get each one exactly once, never before its due time, and stop when all
// are taken or the context ends.
func TestOpenSchedule(t *testing.T) {
	const rate, total, workers = 2000, 200, 8
	start := time.Now().Add(10 * time.Millisecond)
	s := newOpenSchedule(start, rate, total)
	var mu sync.Mutex
	got := map[time.Time]int{}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			timer := time.NewTimer(time.Hour)
			defer timer.Stop()
			for {
				due, ok := s.wait(context.Background(), timer)
				if !ok {
					return
				}
				if now := time.Now(); now.Before(due) {
					t.Errorf("request due at +%v taken at +%v", due.Sub(start), now.Sub(start))
				}
				mu.Lock()
				got[due]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for i := range int64(total) {
		if n := got[s.due(i)]; n != 1 {
			t.Errorf("request %d taken %d times", i, n)
		}
	}
	if len(got) != total {
		t.Errorf("%d distinct requests taken, want %d", len(got), total)
	}

	// A request due in an hour: wait ends with the context.
	s = newOpenSchedule(time.Now().Add(time.Hour), rate, total)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	if _, ok := s.wait(ctx, timer); ok {
		t.Error("wait returned a request due in an hour")
	}
}

package delivery

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestRateUsage: the usage the console shows is the limiter's own count in
// the current UTC minute and day, shared by a key, back to zero in a new
// window, and full after the remote's daily 429.
func TestRateUsage(t *testing.T) {
	clock := NewSkipClock(time.Date(2026, 12, 5, 10, 0, 30, 0, time.UTC))
	l := NewLimits(clock)
	ctx := context.Background()
	if u := l.usage("tok-a", 600, 300000); u.Minute != 0 || u.Day != 0 || u.PerMinute != 600 || u.PerDay != 300000 || len(u.Key) != 8 {
		t.Errorf("unused key: %+v", u)
	}
	for range 3 {
		if _, err := l.wait(ctx, "tok-a", 600, 300000); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.wait(ctx, "tok-b", 600, 300000); err != nil {
		t.Fatal(err)
	}
	a := l.usage("tok-a", 600, 300000)
	if a.Minute != 3 || a.Day != 3 {
		t.Errorf("tok-a after 3 requests: %+v", a)
	}
	if b := l.usage("tok-b", 600, 300000); b.Minute != 1 || b.Key == a.Key {
		t.Errorf("tok-b: %+v (tok-a %+v)", b, a)
	}
	_ = clock.Sleep(ctx, time.Minute) // the next minute, the same day
	if u := l.usage("tok-a", 600, 300000); u.Minute != 0 || u.Day != 3 {
		t.Errorf("a minute later: %+v", u)
	}
	l.exhaustDay("tok-a")
	if u := l.usage("tok-a", 600, 300000); u.Day != u.PerDay {
		t.Errorf("after the daily 429: %+v", u)
	}
	_ = clock.Sleep(ctx, 24*time.Hour)
	if u := l.usage("tok-a", 600, 300000); u.Minute != 0 || u.Day != 0 {
		t.Errorf("the next day: %+v", u)
	}
}

// TestRetrying: a failed attempt makes the runner report that it is
// retrying, since when and the remote's answer; the next accepted request
// clears it.
func TestRetrying(t *testing.T) {
	env := newWebhookEnv(t, 1)
	release := make(chan struct{})
	rcv := &receiver{took: map[string]int{}}
	rcv.script = func(n int, _ []map[string]any) (int, string) {
		switch n {
		case 1:
			return http.StatusServiceUnavailable, "busy"
		case 2:
			<-release // the test looks while the retry is in flight
		}
		return http.StatusOK, "{}"
	}
	srv := httptest.NewServer(rcv)
	t.Cleanup(srv.Close)
	w := &webhook{url: srv.URL, batch: 10, hc: srv.Client()}
	r := env.run(0, w, RunnerConfig{BatchSize: 10}, nil)
	if r.Retrying() != nil {
		t.Fatal("retrying before any request")
	}
	env.send(1)
	eventually(t, 10*time.Second, "the retry", func() bool {
		rt := r.Retrying()
		return rt != nil && rt.Status == http.StatusServiceUnavailable && rt.Message == "busy" && !rt.Since.IsZero()
	})
	close(release)
	eventually(t, 10*time.Second, "the retry's success", func() bool { return r.Retrying() == nil })
}

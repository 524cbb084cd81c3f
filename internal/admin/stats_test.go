package admin

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/internal/delivery"
	"github.com/capstan-gw/capstan/internal/stats"
)

func TestStats(t *testing.T) {
	e := newEnv(t)
	d := e.stats.Destination("linkedin")
	m := d.Mapping("Sign Up")
	for range 4 {
		d.Received()
		m.Matched(true)
	}
	m.Delivered(delivery.IDLiFatID, time.Second)
	m.Delivered(delivery.IDLiFatID|delivery.IDEmail, time.Second)
	m.Delivered(delivery.IDEmail, time.Second)
	m.DeadLettered()
	if err := e.stats.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.stats.Destination("unsaved")

	for _, window := range []string{"", "1h", "24h", "7d"} {
		var rep stats.Report
		decodeAnswer(t, e.do(t, "GET", "/admin/api/stats?window="+window, ""), &rep)
		if want := window; want != "" && rep.Window != want || want == "" && rep.Window != "1h" {
			t.Errorf("window %q: answered %q", window, rep.Window)
		}
		if len(rep.Destinations) != 2 || rep.Destinations[0].Name != "linkedin" {
			t.Fatalf("window %q: destinations %+v", window, rep.Destinations)
		}
		li := rep.Destinations[0]
		if want := (stats.Funnel{Received: 4, Matched: 4, Valid: 4, Delivered: 3, DeadLettered: 1}); li.Funnel != want {
			t.Errorf("window %q: funnel %+v, want %+v", window, li.Funnel, want)
		}
		if want := (stats.Coverage{LiFatID: 1, Email: 1, Both: 1}); li.Coverage != want {
			t.Errorf("window %q: coverage %+v, want %+v", window, li.Coverage, want)
		}
		if li.Latency.Count != 3 || li.Latency.P95 == nil {
			t.Errorf("window %q: latency %+v", window, li.Latency)
		}
	}
	var rep stats.Report
	decodeAnswer(t, e.do(t, "GET", "/admin/api/stats?window=24h&destination=linkedin&mapping=Sign+Up", ""), &rep)
	if len(rep.Destinations) != 1 || len(rep.Destinations[0].Mappings) != 1 || len(rep.Destinations[0].Series) != 96 {
		t.Errorf("one mapping: %+v", rep.Destinations)
	}
	// Without a credential: 401.
	viewer := do(t, e.s, "GET", "/admin/api/stats", "", "")
	wantError(t, viewer, http.StatusUnauthorized, "unauthorized", "admin token")

	for _, tc := range []struct {
		target   string
		status   int
		code     string
		fragment string
	}{
		{"/admin/api/stats?window=2h", 400, "bad_request", `window "2h": use 1h, 24h, 7d`},
		{"/admin/api/stats?mapping=Sign+Up", 400, "bad_request", "give its destination too"},
		{"/admin/api/stats?destination=nope", 404, "not_found", `no destination "nope"`},
		{"/admin/api/stats?destination=linkedin&mapping=Nope", 404, "not_found", `has no mapping "Nope"`},
		{"/admin/api/stats?limit=1", 400, "bad_request", `unknown query parameter "limit"`},
	} {
		wantError(t, e.do(t, "GET", tc.target, ""), tc.status, tc.code, tc.fragment)
	}
}

func TestStatsNotKept(t *testing.T) {
	e := newEnv(t)
	e.s.stats = nil
	wantError(t, e.do(t, "GET", "/admin/api/stats", ""), http.StatusServiceUnavailable, "unavailable", "not kept")
	// With no destination there is nothing to count: an empty report.
	e.s.dests = nil
	var rep stats.Report
	decodeAnswer(t, e.do(t, "GET", "/admin/api/stats?window=7d", ""), &rep)
	if rep.Window != "7d" || rep.StepSeconds != 3600 || rep.Destinations == nil || len(rep.Destinations) != 0 {
		t.Errorf("no destinations: %+v", rep)
	}
}

func TestCountDeadLetters(t *testing.T) {
	e := newEnv(t)
	type count struct {
		Count         uint64            `json:"count"`
		ByDestination map[string]uint64 `json:"byDestination"`
		ByReason      map[string]uint64 `json:"byReason"`
	}
	var c count
	decodeAnswer(t, e.do(t, "GET", "/admin/api/dlq/count", ""), &c)
	if c.Count != 0 || len(c.ByDestination) != 0 {
		t.Errorf("empty DLQ: %+v", c)
	}
	addDeadLetter(t, e.eng, "linkedin", "rejected", "m1")
	addDeadLetter(t, e.eng, "linkedin", "invalid", "m2")
	id := addDeadLetter(t, e.eng, "other", "rejected", "m3")
	decodeAnswer(t, e.do(t, "GET", "/admin/api/dlq/count", ""), &c)
	if c.Count != 3 || c.ByDestination["linkedin"] != 2 || c.ByDestination["other"] != 1 || c.ByReason["rejected"] != 2 || c.ByReason["invalid"] != 1 {
		t.Errorf("count %+v", c)
	}
	c = count{}
	decodeAnswer(t, e.do(t, "GET", "/admin/api/dlq/count?destination=linkedin&reason=rejected", ""), &c)
	if c.Count != 1 || len(c.ByDestination) != 1 {
		t.Errorf("filtered count %+v", c)
	}
	// A replay lowers it.
	if a := e.do(t, "POST", "/admin/api/dlq/replay", `{"ids":[`+strconv.FormatUint(id, 10)+`]}`); a.status != http.StatusOK {
		t.Fatalf("replay: %d %s", a.status, a.body)
	}
	c = count{}
	decodeAnswer(t, e.do(t, "GET", "/admin/api/dlq/count", ""), &c)
	if c.Count != 2 || c.ByDestination["other"] != 0 {
		t.Errorf("after replay: %+v", c)
	}
	wantError(t, e.do(t, "GET", "/admin/api/dlq/count?reason=bogus", ""), 400, "bad_request", `reason "bogus"`)
	// Counted by listing when the DLQ cannot count.
	e.s.dlq = listOnly{e.s.dlq}
	c = count{}
	decodeAnswer(t, e.do(t, "GET", "/admin/api/dlq/count", ""), &c)
	if c.Count != 2 || c.ByReason["rejected"] != 1 || c.ByReason["invalid"] != 1 {
		t.Errorf("counted by listing: %+v", c)
	}
}

// listOnly hides a DeadLetters' Count.
type listOnly struct{ DeadLetters }

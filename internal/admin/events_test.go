package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/internal/stream"
)

// addEvent stores an event in EVENTS through w and returns its sequence.
func addEvent(t testing.TB, w *stream.Writer, source, messageID string) uint64 {
	t.Helper()
	res, err := w.Append(context.Background(), []stream.Event{{
		Source: source, Type: "track", MessageID: messageID,
		Doc: []byte(`{"type":"track","event":"Sign Up","messageId":"` + messageID + `","properties":{"note":"a<b&c"}}`),
	}})
	if err == nil {
		err = res[0].Err
	}
	if err != nil {
		t.Fatal(err)
	}
	return res[0].Seq
}

type eventsPage struct {
	Events []StoredEvent `json:"events"`
	More   bool          `json:"more"`
}

func (p eventsPage) messageIDs(t testing.TB) []string {
	t.Helper()
	var ids []string
	for _, ev := range p.Events {
		var doc struct{ MessageID string }
		if err := json.Unmarshal(ev.Event, &doc); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, doc.MessageID)
	}
	return ids
}

func TestEvents(t *testing.T) {
	e := newEnv(t)
	start := time.Now()
	seq := map[string]uint64{}
	for i := 1; i <= 6; i++ {
		src := "website"
		if i%3 == 0 {
			src = "backend"
		}
		mid := fmt.Sprintf("e%d", i)
		seq[mid] = addEvent(t, e.w, src, mid)
	}

	tests := []struct {
		name, query string
		want        []string
		more        bool
	}{
		{"newest first", "", []string{"e6", "e5", "e4", "e3", "e2", "e1"}, false},
		{"oldest first", "?order=oldest", []string{"e1", "e2", "e3", "e4", "e5", "e6"}, false},
		{"newest page", "?limit=2", []string{"e6", "e5"}, true},
		{"newest next page", fmt.Sprintf("?limit=2&before=%d", seq["e5"]), []string{"e4", "e3"}, true},
		{"newest last page", fmt.Sprintf("?limit=3&before=%d", seq["e3"]), []string{"e2", "e1"}, false},
		{"newest limit exactly", "?limit=6", []string{"e6", "e5", "e4", "e3", "e2", "e1"}, false},
		{"newest one", "?limit=1", []string{"e6"}, true},
		{"oldest page", "?order=oldest&limit=2", []string{"e1", "e2"}, true},
		{"oldest next page", fmt.Sprintf("?order=oldest&limit=2&after=%d", seq["e2"]), []string{"e3", "e4"}, true},
		{"oldest last page", fmt.Sprintf("?order=oldest&limit=2&after=%d", seq["e4"]), []string{"e5", "e6"}, false},
		{"between", fmt.Sprintf("?after=%d&before=%d", seq["e1"], seq["e4"]), []string{"e3", "e2"}, false},
		{"source", "?source=backend", []string{"e6", "e3"}, false},
		{"source oldest", "?source=website&order=oldest&limit=3", []string{"e1", "e2", "e4"}, true},
		{"unknown source", "?source=nobody", nil, false},
		{"since", "?since=" + start.Add(-time.Minute).UTC().Format(time.RFC3339), []string{"e6", "e5", "e4", "e3", "e2", "e1"}, false},
		{"since a duration", "?since=1h&limit=1", []string{"e6"}, true},
		{"since later", "?since=" + start.Add(time.Hour).UTC().Format(time.RFC3339), nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var page eventsPage
			a := e.do(t, "GET", "/admin/api/events"+tt.query, "")
			decodeAnswer(t, a, &page)
			if got := page.messageIDs(t); !slices.Equal(got, tt.want) || page.More != tt.more {
				t.Errorf("got %v more=%v, want %v more=%v", got, page.More, tt.want, tt.more)
			}
			if page.Events == nil {
				t.Error("events is null, want []")
			}
		})
	}

	// Each event comes with its sequence, source and time, as stored.
	var page eventsPage
	a := e.do(t, "GET", "/admin/api/events?limit=1", "")
	decodeAnswer(t, a, &page)
	got := page.Events[0]
	if got.Seq != seq["e6"] || got.Source != "backend" || got.StoredAt.Before(start.Add(-time.Second)) || got.StoredAt.Location() != time.UTC {
		t.Errorf("event: %+v", got)
	}
	if !strings.Contains(string(a.body), `"note":"a<b&c"`) {
		t.Errorf("the event is not shown as kept: %s", a.body)
	}

	refused := []struct{ name, query, fragment string }{
		{"bad order", "?order=random", `order "random": use newest or oldest`},
		{"wildcard source", "?source=>", `source ">": a name holds no`},
		{"dotted source", "?source=a.b", `source "a.b"`},
		{"bad since", "?since=tomorrow", `since "tomorrow"`},
		{"bad after", "?after=-3", `after "-3"`},
		{"bad before", "?before=0", `before "0"`},
		{"empty range", "?after=5:3&before=5:4", "before 5:4 and after 5:3 leave no event between them"},
		{"limit too big", "?limit=5000", `limit "5000": give a whole number from 1 to 1000`},
		{"limit not a number", "?limit=ten", `limit "ten"`},
		{"unknown parameter", "?type=track", `unknown query parameter "type": use source, since, after, before, order, limit`},
		{"repeated parameter", "?source=a&source=b", `query parameter "source" is given 2 times`},
	}
	for _, tt := range refused {
		t.Run("refused/"+tt.name, func(t *testing.T) {
			wantError(t, e.do(t, "GET", "/admin/api/events"+tt.query, ""), 400, "bad_request", tt.fragment)
		})
	}
}

// TestEventsUnavailable: a reader that fails is a 503 that does not show
// its error.
func TestEventsUnavailable(t *testing.T) {
	e := newEnv(t)
	e.eng.Close()
	for _, target := range []string{"/admin/api/events", "/admin/api/dlq", "/admin/api/dlq/3", "/admin/api/identity?userId=u"} {
		a := e.do(t, "GET", target, "")
		wantError(t, a, 503, "unavailable", "see the server log")
		if strings.Contains(strings.ToLower(string(a.body)), "nats") {
			t.Errorf("%s: the answer shows the engine's error: %s", target, a.body)
		}
	}
	wantError(t, e.do(t, "POST", "/admin/api/dlq/replay", `{"all":true}`), 503, "unavailable", "could not replay every dead letter (0 replayed)")
	wantError(t, e.do(t, "DELETE", "/admin/api/identity?userId=u", ""), 503, "unavailable", "could not change the identity graph")
}

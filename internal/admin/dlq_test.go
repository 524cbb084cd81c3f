package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/internal/delivery"
	"github.com/capstan-gw/capstan/internal/stream"
)

// addDeadLetter stores a dead letter as delivery does and returns its id.
func addDeadLetter(t testing.TB, eng *stream.Engine, dest, reason, messageID string) uint64 {
	t.Helper()
	dl := delivery.DeadLetter{
		At: time.Now().UTC(), Destination: dest, Mapping: "Sign Up", Reason: reason, Status: 422,
		Message: "refused", Source: "website", MessageID: messageID,
		Event: json.RawMessage(`{"type":"track","event":"Sign Up","messageId":"` + messageID + `"}`),
	}
	b, err := json.Marshal(dl)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := eng.AppendDeadLetter(ctx, stream.DeadLetter{Destination: dest, Reason: reason, Source: dl.Source, Doc: b}, ""); err != nil {
		t.Fatal(err)
	}
	var last uint64
	if err := eng.ReadDeadLetters(ctx, stream.DeadLetterFilter{}, func(d stream.DeadLetter) error { last = d.Seq; return nil }); err != nil {
		t.Fatal(err)
	}
	return last
}

type dlqPage struct {
	DeadLetters []delivery.DeadLetter `json:"deadLetters"`
	More        bool                  `json:"more"`
}

func (p dlqPage) messageIDs() []string {
	var ids []string
	for _, dl := range p.DeadLetters {
		ids = append(ids, dl.MessageID)
	}
	return ids
}

func TestDeadLetters(t *testing.T) {
	e := newEnv(t)
	ids := map[string]uint64{}
	for i, c := range []struct{ dest, reason string }{
		{"linkedin", "rejected"}, {"linkedin", "invalid"}, {"other", "rejected"}, {"linkedin", "rejected"}, {"other", "expired"},
	} {
		mid := fmt.Sprintf("m%d", i+1)
		ids[mid] = addDeadLetter(t, e.eng, c.dest, c.reason, mid)
	}

	list := []struct {
		name, query string
		want        []string
		more        bool
	}{
		{"everything", "", []string{"m1", "m2", "m3", "m4", "m5"}, false},
		{"destination", "?destination=linkedin", []string{"m1", "m2", "m4"}, false},
		{"reason", "?reason=rejected", []string{"m1", "m3", "m4"}, false},
		{"both", "?destination=other&reason=rejected", []string{"m3"}, false},
		{"limit", "?limit=2", []string{"m1", "m2"}, true},
		{"limit exactly", "?limit=5", []string{"m1", "m2", "m3", "m4", "m5"}, false},
		{"next page", fmt.Sprintf("?limit=2&after=%d", ids["m2"]), []string{"m3", "m4"}, true},
		{"last page", fmt.Sprintf("?limit=2&after=%d", ids["m4"]), []string{"m5"}, false},
		{"since a duration", "?since=1h", []string{"m1", "m2", "m3", "m4", "m5"}, false},
		{"since a time", "?since=2099-01-01T00:00:00Z", nil, false},
		{"unknown destination", "?destination=facebook", nil, false},
	}
	for _, tt := range list {
		t.Run("list/"+tt.name, func(t *testing.T) {
			var page dlqPage
			decodeAnswer(t, e.do(t, "GET", "/admin/api/dlq"+tt.query, ""), &page)
			if got := page.messageIDs(); !slices.Equal(got, tt.want) || page.More != tt.more {
				t.Errorf("got %v more=%v, want %v more=%v", got, page.More, tt.want, tt.more)
			}
			if page.DeadLetters == nil {
				t.Error("deadLetters is null, want []")
			}
		})
	}

	var dl delivery.DeadLetter
	decodeAnswer(t, e.do(t, "GET", fmt.Sprintf("/admin/api/dlq/%d", ids["m3"]), ""), &dl)
	if dl.Seq != ids["m3"] || dl.MessageID != "m3" || dl.Destination != "other" || len(dl.Event) == 0 {
		t.Errorf("show: %+v", dl)
	}

	refused := []struct {
		name, method, target, body string
		status                     int
		code, fragment             string
	}{
		{"bad reason", "GET", "/admin/api/dlq?reason=lost", "", 400, "bad_request", `reason "lost": use invalid, rejected, expired, unusable, event_id_collision`},
		{"wildcard destination", "GET", "/admin/api/dlq?destination=*", "", 400, "bad_request", `destination "*": a name holds no`},
		{"dotted destination", "GET", "/admin/api/dlq?destination=a.b", "", 400, "bad_request", `destination "a.b"`},
		{"bad since", "GET", "/admin/api/dlq?since=yesterday", "", 400, "bad_request", `since "yesterday": give an RFC 3339 time`},
		{"since out of range", "GET", "/admin/api/dlq?since=2999-01-01T00:00:00Z", "", 400, "bad_request", "out of range"},
		{"negative since", "GET", "/admin/api/dlq?since=-1h", "", 400, "bad_request", `since "-1h"`},
		{"zero limit", "GET", "/admin/api/dlq?limit=0", "", 400, "bad_request", `limit "0": give a whole number from 1 to 1000`},
		{"big limit", "GET", "/admin/api/dlq?limit=1001", "", 400, "bad_request", "from 1 to 1000"},
		{"bad after", "GET", "/admin/api/dlq?after=x", "", 400, "bad_request", `after "x": give a positive whole number`},
		{"unknown parameter", "GET", "/admin/api/dlq?id=3", "", 400, "bad_request", `unknown query parameter "id"`},
		{"bad id", "GET", "/admin/api/dlq/abc", "", 400, "bad_request", `dead letter id "abc"`},
		{"id zero", "GET", "/admin/api/dlq/0", "", 400, "bad_request", `dead letter id "0"`},
		{"unknown id", "GET", "/admin/api/dlq/999", "", 404, "not_found", "no dead letter 999"},
		{"replay nothing said", "POST", "/admin/api/dlq/replay", `{}`, 400, "bad_request", "say which dead letters to replay"},
		{"replay empty body", "POST", "/admin/api/dlq/replay", ``, 400, "bad_request", "the request body is empty"},
		{"replay ids and filter", "POST", "/admin/api/dlq/replay", `{"ids":[1],"reason":"invalid"}`, 400, "bad_request", "ids or a filter, not both"},
		{"replay ids and all", "POST", "/admin/api/dlq/replay", `{"ids":[1],"all":true}`, 400, "bad_request", "ids or a filter, not both"},
		{"replay filter and all", "POST", "/admin/api/dlq/replay", `{"reason":"invalid","all":true}`, 400, "bad_request", "a filter or all, not both"},
		{"replay bad reason", "POST", "/admin/api/dlq/replay", `{"reason":"lost"}`, 400, "bad_request", `reason "lost"`},
		{"replay bad since", "POST", "/admin/api/dlq/replay", `{"since":"soon"}`, 400, "bad_request", `since "soon"`},
		{"replay unknown field", "POST", "/admin/api/dlq/replay", `{"id":3}`, 400, "bad_request", `unknown field "id"`},
		{"replay id zero", "POST", "/admin/api/dlq/replay", `{"ids":[0]}`, 400, "bad_request", "0 is not a dead letter id"},
		{"replay negative id", "POST", "/admin/api/dlq/replay", `{"ids":[-1]}`, 400, "bad_request", "the request body must be"},
		{"replay too many", "POST", "/admin/api/dlq/replay", `{"ids":[` + strings.Repeat("1,", maxReplayIDs) + `1]}`, 400, "bad_request", "at most 1000"},
		{"replay too large", "POST", "/admin/api/dlq/replay", `{"ids":[` + strings.Repeat("1,", maxBody) + `1]}`, 413, "too_large", "larger than"},
		{"replay unknown ids", "POST", "/admin/api/dlq/replay", fmt.Sprintf(`{"ids":[%d, 999, 998]}`, ids["m1"]), 404, "not_found", "no dead letter 998, 999; nothing was replayed"},
	}
	for _, tt := range refused {
		t.Run("refused/"+tt.name, func(t *testing.T) {
			wantError(t, e.do(t, tt.method, tt.target, tt.body), tt.status, tt.code, tt.fragment)
		})
	}
	var page dlqPage
	decodeAnswer(t, e.do(t, "GET", "/admin/api/dlq", ""), &page)
	if len(page.DeadLetters) != 5 {
		t.Fatalf("refused replays changed the DLQ: %v", page.messageIDs())
	}

	// Replay by ids, then by filter, then everything.
	replay := func(body string, want int) {
		t.Helper()
		var got struct{ Replayed int }
		decodeAnswer(t, e.do(t, "POST", "/admin/api/dlq/replay", body), &got)
		if got.Replayed != want {
			t.Errorf("replay %s: %d replayed, want %d", body, got.Replayed, want)
		}
	}
	replay(fmt.Sprintf(`{"ids":[%d,%d,%d]}`, ids["m1"], ids["m3"], ids["m1"]), 2)
	replay(`{"destination":"linkedin","reason":"rejected"}`, 1) // m4
	page = dlqPage{}
	decodeAnswer(t, e.do(t, "GET", "/admin/api/dlq", ""), &page)
	if got := page.messageIDs(); !slices.Equal(got, []string{"m2", "m5"}) {
		t.Errorf("left in the DLQ: %v", got)
	}
	wantError(t, e.do(t, "GET", fmt.Sprintf("/admin/api/dlq/%d", ids["m1"]), ""), 404, "not_found", "no dead letter")
	replay(`{"all":true}`, 2)
	replay(`{"all":true}`, 0)

	// The events are back in EVENTS, each for its destination only.
	var back []string
	err := e.eng.ReadEvents(context.Background(), stream.ReadOptions{}, func(s stream.Stored) error {
		back = append(back, s.ReplayFor+":"+string(s.Doc))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != 5 || !strings.HasPrefix(back[0], "linkedin:") || !strings.Contains(back[0], `"messageId":"m1"`) {
		t.Errorf("replayed events: %v", back)
	}
	if a := e.do(t, "GET", "/admin/api/dlq", ""); a.status != http.StatusOK || !strings.Contains(string(a.body), `"deadLetters":[]`) {
		t.Errorf("after replaying all: %d %s", a.status, a.body)
	}
}

package admin

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/internal/audit"
	"github.com/capstan-gw/capstan/internal/event"
	"github.com/capstan-gw/capstan/internal/identity"
	"github.com/capstan-gw/capstan/internal/privacy"
	"github.com/capstan-gw/capstan/internal/stream"
)

// TestPrivacyDelete: POST /admin/api/privacy/delete erases the person and
// answers the counts; the audit log names the admin principal and holds no
// raw id; bad bodies are 400.
func TestPrivacyDelete(t *testing.T) {
	e := newEnv(t)
	observe(t, e.graph, pageA)
	observe(t, e.graph, identAU)
	req := &event.Request{ReceivedAt: time.Now()}
	var evs []stream.Event
	for i, d := range []string{pageA, identAU, `{"type":"track","event":"Order","userId":"someone-else"}`} {
		d = strings.Replace(d, "{", `{"messageId":"m-`+string(rune('0'+i))+`",`, 1)
		ev, derr := event.Normalize([]byte(d), "", req)
		if derr != nil {
			t.Fatal(derr)
		}
		evs = append(evs, stream.Event{Source: "web", Type: string(ev.Type), MessageID: ev.MessageID, Doc: ev.JSON})
	}
	if _, err := e.w.Append(context.Background(), evs); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct{ name, body, fragment string }{
		{"empty", `{}`, "exactly one"},
		{"two ids", `{"userId":"a","email":"b@example.com"}`, "exactly one"},
		{"unknown field", `{"user":"a"}`, "unknown field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, e.do(t, "POST", "/admin/api/privacy/delete", tc.body), 400, "bad_request", tc.fragment)
		})
	}

	a := e.do(t, "POST", "/admin/api/privacy/delete", `{"userId":"`+userU+`"}`)
	var rep privacy.Report
	decodeAnswer(t, a, &rep)
	if rep.IDKind != "userId" || rep.GraphKeysRemoved != 2 || rep.EventsDeleted != 2 || rep.DeadLettersDeleted != 0 || rep.Suppressed != 3 {
		t.Errorf("report %+v", rep)
	}
	if _, err := e.graph.Show(context.Background(), identity.Key{UserID: userU}); err == nil {
		t.Error("the graph still knows the user")
	}
	ev, _ := event.ParseString(`{"type":"track","userId":"` + userU + `"}`)
	if !e.sup.Suppressed(ev) {
		t.Error("the user is not suppressed")
	}

	a = e.do(t, "GET", "/admin/api/audit?limit=10", "")
	var got struct{ Records []audit.Record }
	decodeAnswer(t, a, &got)
	if len(got.Records) != 1 || got.Records[0].By != "admin token" || got.Records[0].Result["eventsDeleted"] != 2 {
		t.Errorf("audit %s", a.body)
	}
	if strings.Contains(string(a.body), userU) {
		t.Errorf("audit answer holds the raw id: %s", a.body)
	}
	wantError(t, e.do(t, "GET", "/admin/api/audit?limit=0", ""), 400, "bad_request", "limit")
	wantError(t, do(t, e.s, "POST", "/admin/api/privacy/delete", "", `{"userId":"x"}`), 401, "unauthorized", "admin token")
}

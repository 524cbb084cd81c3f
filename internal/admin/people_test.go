package admin

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/internal/event"
	"github.com/capstan-gw/capstan/internal/privacy"
	"github.com/capstan-gw/capstan/internal/stream"
)

// TestPeople: GET /admin/api/people finds a person by userId, by
// anonymousId and by the SHA-256 of their email, with their consent from
// the newest stored event; POST /admin/api/privacy/delete takes the email's
// SHA-256 too.
func TestPeople(t *testing.T) {
	e := newEnv(t)
	observe(t, e.graph, pageA)
	observe(t, e.graph, identAU)
	req := &event.Request{ReceivedAt: time.Now()}
	consented := strings.Replace(identAU, `"traits"`, `"context":{"consent":{"categoryPreferences":{"Advertising":true,"Analytics":false}}},"traits"`, 1)
	var evs []stream.Event
	for i, d := range []string{pageA, consented} {
		d = strings.Replace(d, "{", `{"messageId":"p-`+string(rune('0'+i))+`",`, 1)
		ev, derr := event.Normalize([]byte(d), "", req)
		if derr != nil {
			t.Fatal(derr)
		}
		evs = append(evs, stream.Event{Source: "web", Type: string(ev.Type), MessageID: ev.MessageID, Doc: ev.JSON})
	}
	if _, err := e.w.Append(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	emailHash := sha256Hex("john.doe@example.com")

	var got struct{ People []Person }
	decodeAnswer(t, e.do(t, "GET", "/admin/api/people?userId="+userU, ""), &got)
	if len(got.People) != 1 || got.People[0].Kind != "user" || got.People[0].EmailSHA256 != emailHash || len(got.People[0].Links) != 1 {
		t.Fatalf("by userId: %+v", got.People)
	}
	if c := got.People[0].Consent; c["Advertising"] != true || c["Analytics"] != false || got.People[0].ConsentAt == nil {
		t.Errorf("consent %v at %v", c, got.People[0].ConsentAt)
	}
	decodeAnswer(t, e.do(t, "GET", "/admin/api/people?anonymousId="+anonA, ""), &got)
	if len(got.People) != 1 || got.People[0].Kind != "anonymous" || got.People[0].LiFatID != "123456" {
		t.Fatalf("by anonymousId: %+v", got.People)
	}
	decodeAnswer(t, e.do(t, "GET", "/admin/api/people?emailSha256="+emailHash, ""), &got)
	if len(got.People) != 2 {
		t.Fatalf("by email: %d profiles, want the user and the anonymous id: %+v", len(got.People), got.People)
	}
	decodeAnswer(t, e.do(t, "GET", "/admin/api/people?userId=nobody", ""), &got)
	if len(got.People) != 0 {
		t.Errorf("nobody: %+v", got.People)
	}
	for _, q := range []string{"", "?userId=a&anonymousId=b", "?emailSha256=John.Doe@example.com", "?emailSha256=" + strings.ToUpper(emailHash), "?email=x"} {
		if a := e.do(t, "GET", "/admin/api/people"+q, ""); a.status != 400 {
			t.Errorf("%s: %d %s", q, a.status, a.body)
		}
	}

	wantError(t, e.do(t, "POST", "/admin/api/privacy/delete", `{"emailSha256":"not-a-hash"}`), 400, "bad_request", "64 lower-case hex")
	var rep privacy.Report
	decodeAnswer(t, e.do(t, "POST", "/admin/api/privacy/delete", `{"emailSha256":"`+emailHash+`"}`), &rep)
	if rep.IDKind != "email" || rep.IDSHA256 != emailHash || rep.GraphKeysRemoved != 2 || rep.EventsDeleted != 2 {
		t.Errorf("delete by email hash: %+v", rep)
	}
	decodeAnswer(t, e.do(t, "GET", "/admin/api/people?userId="+userU, ""), &got)
	if len(got.People) != 0 {
		t.Errorf("after the deletion: %+v", got.People)
	}
	raw, _ := json.Marshal(e.auditRecords(t))
	if strings.Contains(string(raw), "john.doe") || !strings.Contains(string(raw), emailHash) {
		t.Errorf("audit %s", raw)
	}
}

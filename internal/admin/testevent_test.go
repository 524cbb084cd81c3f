package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/capstan-gw/capstan/internal/config"
)

// testDest is a destination that sends test events and reports rules.
type testDest struct {
	fakeDest
	mu    sync.Mutex
	calls []TestEventRequest
}

func (d *testDest) SendTest(_ context.Context, req TestEventRequest) (any, error) {
	d.mu.Lock()
	d.calls = append(d.calls, req)
	d.mu.Unlock()
	if req.Mapping == "broken" {
		return nil, errors.New("state bucket closed")
	}
	if req.Mapping == "refused" {
		return map[string]any{"request": map[string]any{"method": "POST"}, "status": 400, "answer": map[string]any{"status": 400}, "error": "LinkedIn refused"}, nil
	}
	return map[string]any{"request": map[string]any{"method": "POST"}, "status": 201, "answer": map[string]any{"status": 201}}, nil
}

func (d *testDest) RuleReports(context.Context) (any, error) {
	return []map[string]any{{"mapping": "Sign Up", "status": "receiving"}}, nil
}

func testEventServer(t *testing.T) (*Server, *testDest) {
	t.Helper()
	e := newEnv(t)
	d := &testDest{fakeDest: fakeDest{name: "li"}}
	deps := Deps{Identity: e.graph, DeadLetters: EngineDeadLetters{Engine: e.eng, Writer: e.w}, Events: EngineEvents{Engine: e.eng},
		Preview:      PreviewFunc(func(context.Context, json.RawMessage, string, string) (any, bool, error) { return nil, false, nil }),
		Destinations: []Destination{d, e.dests["linkedin"]}}
	s, err := New(Config{Token: config.Secret(testToken)}, deps, discard)
	if err != nil {
		t.Fatal(err)
	}
	return s, d
}

func TestTestEventRoute(t *testing.T) {
	s, d := testEventServer(t)
	post := func(target, body string) answer { return do(t, s, "POST", target, operator, body) }
	var got struct {
		Request any    `json:"request"`
		Status  int    `json:"status"`
		Answer  any    `json:"answer"`
		Error   string `json:"error"`
	}
	decodeAnswer(t, post("/admin/api/destinations/li/test-event", ""), &got)
	if got.Status != 201 || got.Request == nil || got.Answer == nil || got.Error != "" {
		t.Errorf("empty body: %+v", got)
	}
	got.Error = ""
	decodeAnswer(t, post("/admin/api/destinations/li/test-event", `{"mapping":"refused","event":{"type":"track","event":"X"}}`), &got)
	if got.Status != 400 || got.Error != "LinkedIn refused" {
		t.Errorf("refused: %+v", got)
	}
	decodeAnswer(t, post("/admin/api/destinations/li/test-event", `{"event":null}`), &got)
	d.mu.Lock()
	calls := append([]TestEventRequest(nil), d.calls...)
	d.mu.Unlock()
	if len(calls) != 3 || calls[0].Event != nil || calls[0].By != "admin token" || calls[1].Mapping != "refused" ||
		string(calls[1].Event) != `{"type":"track","event":"X"}` || calls[2].Event != nil {
		t.Errorf("calls %+v", calls)
	}
	wantError(t, post("/admin/api/destinations/li/test-event", `{"mapping":"broken"}`), 503, "unavailable", "send a test event")
	wantError(t, post("/admin/api/destinations/li/test-event", `{"mapping":5}`), 400, "bad_request", `"mapping": "NAME"`)
	wantError(t, post("/admin/api/destinations/li/test-event", `{"events":[]}`), 400, "bad_request", "unknown field")
	wantError(t, post("/admin/api/destinations/li/test-event", `{"event":[{}]}`), 400, "bad_request", "event must be one JSON event object")
	wantError(t, post("/admin/api/destinations/li/test-event", `{} {}`), 400, "bad_request", "more than one JSON value")
	wantError(t, post("/admin/api/destinations/nope/test-event", ``), 404, "not_found", "no such destination")
	wantError(t, post("/admin/api/destinations/linkedin/test-event", ``), 503, "unavailable", "cannot send test events")
	wantError(t, post("/admin/api/destinations/li/test-event?x=1", ``), 400, "bad_request", `unknown query parameter "x"`)
	// Operators only: a viewer is refused before anything is sent.
	rec := httptest.NewRecorder()
	s.serve(rec, httptest.NewRequest("POST", "/admin/api/destinations/li/test-event", strings.NewReader("")), principal{name: "v", role: RoleViewer})
	wantError(t, answer{rec.Code, rec.Header(), rec.Body.Bytes()}, http.StatusForbidden, "forbidden", "operator")
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.calls) != 4 {
		t.Errorf("%d sends, want 4", len(d.calls))
	}
}

func TestRulesRoute(t *testing.T) {
	s, _ := testEventServer(t)
	var got struct {
		Rules []map[string]any `json:"rules"`
	}
	decodeAnswer(t, do(t, s, "GET", "/admin/api/destinations/li/rules", operator, ""), &got)
	if len(got.Rules) != 1 || got.Rules[0]["status"] != "receiving" {
		t.Errorf("%+v", got)
	}
	rec := httptest.NewRecorder()
	s.serve(rec, httptest.NewRequest("GET", "/admin/api/destinations/li/rules", nil), principal{name: "v", role: RoleViewer})
	if rec.Code != 200 {
		t.Errorf("viewer: %d %s", rec.Code, rec.Body)
	}
	wantError(t, do(t, s, "GET", "/admin/api/destinations/linkedin/rules", operator, ""), 503, "unavailable", "no conversion rules")
	wantError(t, do(t, s, "POST", "/admin/api/destinations/li/rules", operator, ""), 405, "method_not_allowed", "use GET")
}

package admin

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestPreview(t *testing.T) {
	e := newEnv(t)
	var got struct {
		Invalid bool `json:"invalid"`
		Preview struct {
			Requests []any           `json:"requests"`
			Events   json.RawMessage `json:"events"`
		} `json:"preview"`
	}
	decodeAnswer(t, e.do(t, "POST", "/admin/api/preview", `{"events":[{"type":"track","event":"Sign Up"}],"source":"website","destination":"linkedin"}`), &got)
	if got.Invalid || got.Preview.Requests == nil || string(got.Preview.Events) != `[{"type":"track","event":"Sign Up"}]` {
		t.Errorf("preview: %+v", got)
	}
	decodeAnswer(t, e.do(t, "POST", "/admin/api/preview", `{"events":{"type":"track","event":"bad"}}`), &got)
	if !got.Invalid {
		t.Errorf("an invalid event: %+v", got)
	}
	want := []previewCall{
		{`[{"type":"track","event":"Sign Up"}]`, "website", "linkedin"},
		{`{"type":"track","event":"bad"}`, "", ""},
	}
	e.mu.Lock()
	calls := append([]previewCall(nil), e.previews...)
	e.mu.Unlock()
	if len(calls) != len(want) || calls[0] != want[0] || calls[1] != want[1] {
		t.Errorf("previewer asked %+v, want %+v", calls, want)
	}

	refused := []struct {
		name, body     string
		status         int
		code, fragment string
	}{
		{"no events", `{"source":"website"}`, 400, "bad_request", "events is required"},
		{"null events", `{"events":null}`, 400, "bad_request", "events is required"},
		{"empty body", ``, 400, "bad_request", "the request body is empty"},
		{"not JSON", `events=1`, 400, "bad_request", `the request body must be {"events": event or [events]`},
		{"unknown field", `{"events":{},"mapping":{}}`, 400, "bad_request", `unknown field "mapping"`},
		{"unknown destination", `{"events":{},"destination":"facebook"}`, 404, "not_found", `no such destination "facebook"`},
		{"events the previewer refuses", `{"events":"unparsable"}`, 400, "bad_request", "events: event 0: not a JSON event"},
		{"too large", `{"events":"` + strings.Repeat("x", maxPreviewBody) + `"}`, 413, "too_large", "larger than 1048576 bytes"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, e.do(t, "POST", "/admin/api/preview", tt.body), tt.status, tt.code, tt.fragment)
		})
	}
}

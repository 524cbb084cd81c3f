package ingest

import (
	"strings"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/internal/event"
	"github.com/capstan-gw/capstan/internal/stream"
)

func TestServerEvent(t *testing.T) {
	req := &event.Request{ReceivedAt: time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)}
	raw := `{"type":"track","event":"Deal Won","userId":42,"messageId":"m-1","timestamp":"2026-08-31",` +
		`"writeKey":"wk","context":{"capstan":{"userHash":"00"},"library":{"name":"x"}}}`
	sev, ev, derr := ServerEvent("crm", []byte(raw), req)
	if derr != nil {
		t.Fatal(derr)
	}
	if sev.Source != "crm" || sev.Type != "track" || sev.MessageID != "m-1" || sev.Trust != stream.TrustServer || ev.UserID != "42" {
		t.Errorf("got %+v", sev)
	}
	doc := string(sev.Doc)
	for _, bad := range []string{"userHash", "writeKey"} {
		if strings.Contains(doc, bad) {
			t.Errorf("stored %s: %s", bad, doc)
		}
	}
	for _, want := range []string{`"receivedAt":"2026-09-01T12:00:00.000Z"`, `"timestamp":"2026-08-31T00:00:00.000Z"`, `"library":{"name":"x"}`} {
		if !strings.Contains(doc, want) {
			t.Errorf("stored document lacks %s: %s", want, doc)
		}
	}
	for _, tt := range []struct{ raw, code string }{
		{`{"type":"track","userId":"u"}`, event.CodeMissingEvent},
		{`{"type":"track","event":"x"}`, event.CodeMissingIdentity},
		{`{"type":"track","event":"x","userId":"u","properties":` + strings.Repeat(`[`, 70) + strings.Repeat(`]`, 70) + `}`, event.CodeEventTooDeep},
	} {
		if _, _, derr := ServerEvent("crm", []byte(tt.raw), req); derr == nil || derr.Code != tt.code {
			t.Errorf("%.40s: got %v, want %s", tt.raw, derr, tt.code)
		}
	}
}

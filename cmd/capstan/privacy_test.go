package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/internal/audit"
	"github.com/capstan-gw/capstan/internal/config"
	"github.com/capstan-gw/capstan/internal/event"
	"github.com/capstan-gw/capstan/internal/privacy"
	"github.com/capstan-gw/capstan/internal/stream"
)

// TestPrivacyCLI runs capstan privacy delete against a running engine (as
// beside capstan serve) and then against the data directory alone.
func TestPrivacyCLI(t *testing.T) {
	cfgPath, eng, stop := seedIdentity(t)
	ctx, cancel := context.WithCancel(context.Background())
	w, err := stream.NewWriter(eng, stream.WriterConfig{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	req := &event.Request{ReceivedAt: time.Now()}
	var evs []stream.Event
	for i, d := range []string{
		`{"type":"track","event":"Order","userId":"user-1"}`,
		`{"type":"page","anonymousId":"anon-1"}`,
		`{"type":"track","event":"Order","userId":"user-2"}`,
	} {
		d = strings.Replace(d, "{", `{"messageId":"m-`+string(rune('0'+i))+`",`, 1)
		ev, derr := event.Normalize([]byte(d), "", req)
		if derr != nil {
			t.Fatal(derr)
		}
		evs = append(evs, stream.Event{Source: "website", Type: string(ev.Type), MessageID: ev.MessageID, Doc: ev.JSON})
	}
	if _, err := w.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	cancel()
	<-done

	if _, errs, code := identityCLI(t, "privacy", "delete", "--config", cfgPath); code != 2 || !strings.Contains(errs, "exactly one") {
		t.Errorf("no id: exit %d: %s", code, errs)
	}
	if _, errs, code := identityCLI(t, "privacy", "delete", "--config", cfgPath, "--user-id", "a", "--email", "b@example.com"); code != 2 {
		t.Errorf("two ids: exit %d: %s", code, errs)
	}

	out, errs, code := identityCLI(t, "privacy", "delete", "--config", cfgPath, "--user-id", "user-1", "--json")
	if code != 0 {
		t.Fatalf("delete: exit %d: %s", code, errs)
	}
	var rep privacy.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if rep.IDKind != "userId" || rep.GraphKeysRemoved != 2 || rep.EventsDeleted != 2 || rep.Suppressed != 3 {
		t.Errorf("report %+v", rep)
	}
	var left []string
	if err := eng.ReadEvents(context.Background(), stream.ReadOptions{}, func(s stream.Stored) error {
		left = append(left, string(s.Doc))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 || !strings.Contains(left[0], "user-2") {
		t.Errorf("events left: %v", left)
	}

	// Without a running capstan: the data directory.
	stop()
	out, errs, code = identityCLI(t, "privacy", "delete", "--config", cfgPath, "--anonymous-id", "anon-2")
	if code != 0 {
		t.Fatalf("delete anon-2: exit %d: %s", code, errs)
	}
	for _, want := range []string{"erased anonymousId sha256:", "identity graph keys removed  2", "events deleted (EVENTS)      1", "ids suppressed               2 (for 365d)"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	eng2, err := stream.Open(context.Background(), engineConfig(cfg), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer eng2.Close()
	recs, err := audit.Read(context.Background(), eng2, time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].By != "cli" || recs[0].IDKind != "anonymousId" || recs[1].IDKind != "userId" {
		t.Errorf("audit records %+v", recs)
	}
}

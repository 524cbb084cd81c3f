package segmentgen

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

type batchBody struct {
	Batch []struct {
		MessageID   string `json:"messageId"`
		AnonymousID string `json:"anonymousId"`
		UserID      string `json:"userId"`
	} `json:"batch"`
}

func stampBatch(t *testing.T, g *Generator, first uint64) batchBody {
	t.Helper()
	tmpl, err := g.Batch(30)
	if err != nil {
		t.Fatal(err)
	}
	var b batchBody
	if err := json.Unmarshal(tmpl.Stamp(nil, first), &b); err != nil {
		t.Fatal(err)
	}
	if len(b.Batch) != 30 || tmpl.Events() != 30 {
		t.Fatalf("%d events, Events() = %d", len(b.Batch), tmpl.Events())
	}
	return b
}

func TestStamp(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	t.Run("returning", func(t *testing.T) {
		g := New(1, "run1", now)
		a, b := stampBatch(t, g, 0), stampBatch(t, New(1, "run1", now), 1000)
		for i := range a.Batch {
			if a.Batch[i].MessageID == b.Batch[i].MessageID {
				t.Errorf("event %d: messageId repeats across stamps", i)
			}
			if a.Batch[i].AnonymousID != b.Batch[i].AnonymousID {
				t.Errorf("event %d: anonymousId changes with the counter", i)
			}
		}
	})
	t.Run("new people", func(t *testing.T) {
		b := stampBatch(t, New(1, "run1", now).NewPeople(), 500)
		seen := map[string]bool{}
		users := 0
		for i, ev := range b.Batch {
			counter := ev.MessageID[len(ev.MessageID)-counterDigits:]
			if !strings.HasSuffix(ev.AnonymousID, counter) || seen[ev.AnonymousID] {
				t.Errorf("event %d: anonymousId %q, messageId %q", i, ev.AnonymousID, ev.MessageID)
			}
			seen[ev.AnonymousID] = true
			if ev.UserID != "" {
				users++
				if !strings.HasSuffix(ev.UserID, counter) {
					t.Errorf("event %d: userId %q does not carry the counter", i, ev.UserID)
				}
			}
		}
		if users == 0 {
			t.Error("no event has a userId")
		}
	})
}

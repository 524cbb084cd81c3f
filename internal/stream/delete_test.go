package stream

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestDeleteEventsAndDeadLetters: matching messages are erased from EVENTS
// and the DLQ, counted, and their data is overwritten on disk (secure
// delete); the others stay.
func TestDeleteEventsAndDeadLetters(t *testing.T) {
	dir := t.TempDir()
	eng, app := openTest(t, Config{DataDir: dir})
	ctx := context.Background()
	var recs []record
	for i := range 6 {
		who := "keep"
		if i%2 == 0 {
			who = "erase-me-marker"
		}
		recs = append(recs, record{Subject: subject("web", "track"), MsgID: fmt.Sprint("web:", i), Data: []byte(fmt.Sprintf(`{"userId":%q,"n":%d}`, who, i))})
	}
	if _, err := app.Append(ctx, recs); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		who := "keep"
		if i == 1 {
			who = "erase-me-marker"
		}
		dl := DeadLetter{Destination: "li", Reason: "rejected", Source: "web", Doc: []byte(fmt.Sprintf(`{"event":{"userId":%q}}`, who))}
		if err := eng.AppendDeadLetter(ctx, dl, fmt.Sprint("dl", i)); err != nil {
			t.Fatal(err)
		}
	}
	erase := []byte("erase-me-marker")
	n, err := eng.DeleteEvents(ctx, func(s Stored) bool { return bytes.Contains(s.Doc, erase) })
	if err != nil || n != 3 {
		t.Fatalf("DeleteEvents: %d, %v; want 3", n, err)
	}
	n, err = eng.DeleteDeadLetters(ctx, func(dl DeadLetter) bool { return bytes.Contains(dl.Doc, erase) })
	if err != nil || n != 1 {
		t.Fatalf("DeleteDeadLetters: %d, %v; want 1", n, err)
	}
	// Again: nothing left to erase.
	if n, err := eng.DeleteEvents(ctx, func(s Stored) bool { return bytes.Contains(s.Doc, erase) }); err != nil || n != 0 {
		t.Errorf("DeleteEvents again: %d, %v; want 0", n, err)
	}
	for _, st := range []string{EventsStream, DLQStream} {
		for _, m := range readAll(t, eng, st) {
			if bytes.Contains(m.Data, erase) {
				t.Errorf("%s still holds %d: %s", st, m.Seq, m.Data)
			}
		}
	}
	if got := len(readAll(t, eng, EventsStream)); got != 3 {
		t.Errorf("EVENTS holds %d events, want 3", got)
	}
	if got := len(readAll(t, eng, DLQStream)); got != 2 {
		t.Errorf("DLQ holds %d dead letters, want 2", got)
	}
	// Secure delete: the data is gone from the store's files too.
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, erase) {
			t.Errorf("%s still holds an erased message", strings.TrimPrefix(path, dir))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestAudit(t *testing.T) {
	eng, _ := openTest(t, Config{DataDir: t.TempDir()})
	ctx := context.Background()
	var got []string
	read := func() {
		got = nil
		if err := eng.ReadAudit(ctx, time.Time{}, func(a AuditEntry) error {
			got = append(got, fmt.Sprintf("%d:%s:%s", a.Seq, a.Action, a.Doc))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	read()
	if len(got) != 0 {
		t.Fatalf("audit before any record: %v", got)
	}
	for i := range 2 {
		if err := eng.AppendAudit(ctx, AuditEntry{Action: "privacy_delete", Doc: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	if err := eng.AppendAudit(ctx, AuditEntry{Action: "a.b"}); err == nil {
		t.Error("audit action a.b stored")
	}
	read()
	if want := "[1:privacy_delete:0 2:privacy_delete:1]"; fmt.Sprint(got) != want {
		t.Errorf("audit: %v, want %s", got, want)
	}
}

// TestDeleteInsideSegment: erasing some events of a segment stores the
// others again as a new segment and erases the old one; a consumer that had
// handled the old segment does not get them again, one that had not does.
func TestDeleteInsideSegment(t *testing.T) {
	eng, w := openWriter(t, Config{DataDir: t.TempDir()})
	ctx := context.Background()
	erase := func(id string) Event {
		ev := track(id)
		ev.Doc = []byte(`{"userId":"erase-me-marker","messageId":"` + id + `"}`)
		return ev
	}
	appendOK(t, w, track("a"), erase("b"), track("c"), erase("d"))
	appendOK(t, w, erase("e"))
	// Consumer "done" handles everything first; "late" has not started.
	done, err := eng.Consumer(ctx, ConsumerConfig{Durable: "done", FetchWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Consumer(ctx, ConsumerConfig{Durable: "late", FetchWait: time.Second}); err != nil {
		t.Fatal(err)
	}
	out, stop := feed(t, done, nil)
	for range 5 {
		if err := receive(t, out).Ack(); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, func() bool { st, err := eng.ConsumerState(ctx, "done"); return err == nil && st.AckFloor == 2 })
	stop()

	n, err := eng.DeleteEvents(ctx, func(s Stored) bool { return bytes.Contains(s.Doc, []byte("erase-me-marker")) })
	if err != nil || n != 3 {
		t.Fatalf("DeleteEvents: %d, %v; want 3", n, err)
	}
	var got []string
	for _, s := range readEvents(t, eng, ReadOptions{}) {
		got = append(got, s.Pos().String()+" "+s.MessageID)
	}
	if fmt.Sprint(got) != "[3:0 a 3:1 c]" {
		t.Errorf("left %v, want a and c in a new segment 3", got)
	}
	for _, m := range readAll(t, eng, EventsStream) {
		frame, err := segmentFrame(m.Header.Get(headerSeg), m.Data)
		if err != nil {
			t.Fatalf("message %d: %v", m.Seq, err)
		}
		if bytes.Contains(frame, []byte("erase-me-marker")) {
			t.Errorf("message %d still holds an erased event", m.Seq)
		}
	}
	// "done" had acknowledged segment 1: the rewrite is not delivered to
	// it. "late" gets a and c once.
	c, err := eng.Consumer(ctx, ConsumerConfig{Durable: "done", FetchWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	out, _ = feed(t, c, nil)
	nothing(t, out, 500*time.Millisecond)
	eventually(t, func() bool { st, err := eng.ConsumerState(ctx, "done"); return err == nil && st.AckFloor == 3 })
	late, err := eng.Consumer(ctx, ConsumerConfig{Durable: "late", FetchWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	lout, _ := feed(t, late, nil)
	var ids []string
	for range 2 {
		d := receive(t, lout)
		ids = append(ids, d.MessageID)
		_ = d.Ack()
	}
	slices.Sort(ids)
	if fmt.Sprint(ids) != "[a c]" {
		t.Errorf("late consumer got %v", ids)
	}
	nothing(t, lout, 300*time.Millisecond)
}

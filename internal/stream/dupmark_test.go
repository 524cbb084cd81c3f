package stream

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

// marks returns "messageId@pos" of the events, with "=first" for those
// marked as duplicates.
func marks(evs []Stored) string {
	var b []string
	for _, s := range evs {
		m := s.MessageID + "@" + s.Pos().String()
		if s.DuplicateOf != 0 {
			m += "=" + s.DuplicateOf.String()
		}
		b = append(b, m)
	}
	return strings.Join(b, " ")
}

// TestMarkDuplicatesCluster: two replicas on one external NATS (real
// nats-server) each store m2 before seeing the other's. Readers mark the
// later copy in stream order as a duplicate of the first, with the verdict
// consumers use: a replica's own reads (ReadEvents, ReadEventRange) from
// its following index, a tool with no index (events tail) by asking a
// replica through the cluster. Without a replica to ask, nothing is marked
// and the read still returns every event.
func TestMarkDuplicatesCluster(t *testing.T) {
	url, _ := startNATS(t, "dupmark", true)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	open := func() *Engine {
		eng, err := Open(ctx, Config{URL: url}, discard)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(eng.Close)
		return eng
	}
	replica := func(name string) (*Engine, *Dedup, *Writer) {
		eng := open()
		d, err := OpenDedup(ctx, eng, DedupConfig{Dir: t.TempDir() + "/" + name, Follow: true}, discard)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = d.Close() })
		w, err := NewWriter(eng, WriterConfig{Dedup: d}, discard)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { _ = w.Run(ctx) })
		return eng, d, w
	}
	ea, da, wa := replica("a")
	_, db, wb := replica("b")
	appendOK(t, wa, track("m1"), track("m2"))
	if got := outcome(appendOK(t, wb, track("m2"), track("m3"))); got != "ss" {
		t.Fatalf("replica b: %s, want both stored (it has not seen a's)", got)
	}
	const want = "m1@1:0 m2@1:1 m2@2:0=1:1 m3@2:1"
	const unmarked = "m1@1:0 m2@1:1 m2@2:0 m3@2:1"

	// A tool with no replica to ask: every event, none marked.
	tool := open()
	if got := marks(readEvents(t, tool, ReadOptions{MarkDuplicates: true})); got != unmarked {
		t.Errorf("tool, no replica answering: %s, want %s", got, unmarked)
	}

	if err := ea.ServeDedup(da); err != nil {
		t.Fatal(err)
	}
	wg.Go(func() { da.Follow(ctx, ea) })
	wg.Go(func() { db.Follow(ctx, ea) })

	// The replica's own reads, from its index.
	if got := marks(readEvents(t, ea, ReadOptions{MarkDuplicates: true})); got != want {
		t.Errorf("replica a, ReadEvents: %s, want %s", got, want)
	}
	var ranged []Stored
	if err := ea.ReadEventRange(ctx, 1, 2, func(s Stored) error { ranged = append(ranged, s); return nil }); err != nil {
		t.Fatal(err)
	}
	if got := marks(ranged); got != want {
		t.Errorf("replica a, ReadEventRange: %s, want %s", got, want)
	}
	// Not asked to mark: nothing marked.
	if got := marks(readEvents(t, ea, ReadOptions{})); got != unmarked {
		t.Errorf("replica a, unmarked read: %s, want %s", got, unmarked)
	}

	// A tool asks a replica (a: the only one serving).
	tool2 := open()
	if got := marks(readEvents(t, tool2, ReadOptions{MarkDuplicates: true})); got != want {
		t.Errorf("tool: %s, want %s", got, want)
	}
	if got := marks(readEvents(t, tool2, ReadOptions{MarkDuplicates: true, FromSeq: 2})); got != "m2@2:0=1:1 m3@2:1" {
		t.Errorf("tool from 2: %s, want m2 marked as a duplicate of 1:1", got)
	}

	// The consumer's verdict is the same: it skips exactly the marked one.
	c, err := ea.Consumer(ctx, ConsumerConfig{Durable: "dupmark", Dedup: da, FetchWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	out, _ := feed(t, c, nil)
	got := receiveAcked(t, out, 3)
	nothing(t, out, 300*time.Millisecond)
	if got != "[m1@1:0 m2@1:1 m3@2:1]" {
		t.Errorf("consumer delivered %v", got)
	}
}

// TestMarkDuplicatesEmbedded: with the embedded engine one process writes
// and a duplicate, in one request or across requests, is never stored, so
// a marking read shows every stored event once and marks none.
func TestMarkDuplicatesEmbedded(t *testing.T) {
	eng, _, w, _ := openDedupWriter(t, t.TempDir())
	appendOK(t, w, track("a"), track("a"), track("b"))
	appendOK(t, w, track("b"), track("c"))
	if got := marks(readEvents(t, eng, ReadOptions{MarkDuplicates: true})); got != "a@1:0 b@1:1 c@2:0" {
		t.Errorf("embedded: %s", got)
	}
}

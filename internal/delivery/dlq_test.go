package delivery

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/internal/stream"
)

// TestReplayDeadLetters: replay stores each dead letter's event again for
// its destination only and removes the dead letter; one that holds no event
// stops the replay after what came before it.
func TestReplayDeadLetters(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	eng, err := stream.Open(ctx, stream.Config{DataDir: t.TempDir()}, log)
	if err != nil {
		t.Fatal(err)
	}
	w, err := stream.NewWriter(eng, stream.WriterConfig{}, log)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; eng.Close() })

	for i, doc := range []string{
		`{"type":"track","event":"Sign Up","messageId":"m0"}`,
		`{"type":"page","messageId":"m1"}`,
		`{"no":"type"}`,
		`{"type":"track","event":"Sign Up","messageId":"m3"}`,
	} {
		dl := &DeadLetter{At: time.Now(), Destination: "li", Mapping: "Sign Up", Reason: ReasonRejected, Message: "refused",
			Source: "web", EventSeq: uint64(i + 1), MessageID: fmt.Sprint("m", i), Event: json.RawMessage(doc)}
		if err := writeDeadLetter(ctx, eng, dl); err != nil {
			t.Fatal(err)
		}
	}
	n, err := ReplayDeadLetters(ctx, eng, w, DLQFilter{Destination: "li"})
	if n != 2 || err == nil || !strings.Contains(err.Error(), "dead letter 3 holds no event to replay") {
		t.Fatalf("replayed %d: %v", n, err)
	}
	var stored []string
	if err := eng.ReadEvents(ctx, stream.ReadOptions{}, func(s stream.Stored) error {
		stored = append(stored, fmt.Sprintf("%s/%s/%s/%s", s.Source, s.Type, s.ReplayFor, s.Doc))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := `[web/track/li/{"type":"track","event":"Sign Up","messageId":"m0"} web/page/li/{"type":"page","messageId":"m1"}]`
	if fmt.Sprint(stored) != want {
		t.Errorf("stored %v\nwant   %s", stored, want)
	}
	left := func() (seqs []uint64) {
		if err := ListDeadLetters(ctx, eng, DLQFilter{}, func(dl *DeadLetter) error {
			seqs = append(seqs, dl.Seq)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return seqs
	}
	if got := left(); fmt.Sprint(got) != "[3 4]" {
		t.Errorf("left in the DLQ: %v, want [3 4]", got)
	}
	n, err = ReplayDeadLetters(ctx, eng, w, DLQFilter{Seq: 4})
	if n != 1 || err != nil {
		t.Errorf("replay of 4: %d %v", n, err)
	}
	if got := left(); fmt.Sprint(got) != "[3]" {
		t.Errorf("left in the DLQ: %v, want [3]", got)
	}
}

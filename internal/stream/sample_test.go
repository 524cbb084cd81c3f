package stream

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// TestReadEventRange: a range reads what ReadEvents reads, passes over
// deleted sequences and stops at its end, refuses bad ranges, and sets up
// no consumer on the server.
func TestReadEventRange(t *testing.T) {
	eng, w := openWriter(t, Config{DataDir: t.TempDir()})
	ctx := context.Background()
	for i := range 8 {
		appendOK(t, w, Event{Source: "web", Type: "track", MessageID: fmt.Sprint("m", i), RequestID: fmt.Sprint("r", i),
			Doc: []byte(fmt.Sprintf(`{"type":"track","messageId":"m%d"}`, i))})
	}
	rng := func(from, upTo uint64) ([]Stored, error) {
		var out []Stored
		err := eng.ReadEventRange(ctx, from, upTo, func(s Stored) error { out = append(out, s); return nil })
		return out, err
	}
	seqs := func(ss []Stored) string {
		var b strings.Builder
		for _, s := range ss {
			fmt.Fprintf(&b, "%d ", s.Seq)
		}
		return b.String()
	}

	// Every field as ReadEvents decodes it.
	got, err := rng(1, 8)
	if err != nil {
		t.Fatal(err)
	}
	s, err := eng.js.Stream(ctx, EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.CachedInfo().State.Consumers; n != 0 {
		t.Errorf("after ReadEventRange: %d consumers, want none", n)
	}
	if want := readEvents(t, eng, ReadOptions{}); !reflect.DeepEqual(utc(got), utc(want)) {
		t.Errorf("range 1-8:\n%+v\nReadEvents:\n%+v", got, want)
	}

	if n, err := eng.DeleteEvents(ctx, func(s Stored) bool { return s.Seq == 3 || s.Seq == 6 }); err != nil || n != 2 {
		t.Fatalf("delete: %d, %v", n, err)
	}
	for _, tc := range []struct {
		from, upTo uint64
		want       string
	}{
		{2, 4, "2 4 "}, // 3 deleted
		{4, 6, "4 5 "}, // 6 deleted, 7 is past the end
		{6, 6, ""},     // only a deleted one
		{8, 8, "8 "},   // the last
		{9, 20, ""},    // past the stream's end
		{1, 2, "1 2 "}, // the first
		{5, 100, "5 7 8 "},
	} {
		got, err := rng(tc.from, tc.upTo)
		if err != nil {
			t.Errorf("%d-%d: %v", tc.from, tc.upTo, err)
		} else if seqs(got) != tc.want {
			t.Errorf("%d-%d: %q, want %q", tc.from, tc.upTo, seqs(got), tc.want)
		}
	}

	// fn's error stops the read.
	stop := errors.New("stop")
	n := 0
	if err := eng.ReadEventRange(ctx, 1, 8, func(Stored) error { n++; return stop }); err != stop || n != 1 {
		t.Errorf("read %d, error %v", n, err)
	}

	for _, tc := range []struct {
		from, upTo uint64
		want       string
	}{
		{0, 5, "start at 1, got 0"},
		{5, 4, "5 to 4 is empty"},
		{1, MaxEventRange + 1, fmt.Sprintf("is %d events, at most %d", MaxEventRange+1, MaxEventRange)},
	} {
		if _, err := rng(tc.from, tc.upTo); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%d-%d: error %v, want %q", tc.from, tc.upTo, err, tc.want)
		}
	}
}

// utc returns ss with their StoredAt in UTC (the reads differ in the
// time's location only).
func utc(ss []Stored) []Stored {
	out := make([]Stored, len(ss))
	for i, s := range ss {
		s.StoredAt = s.StoredAt.UTC()
		out[i] = s
	}
	return out
}

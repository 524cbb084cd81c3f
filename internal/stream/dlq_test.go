package stream

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

func TestDeadLetters(t *testing.T) {
	eng, _ := openTest(t, Config{DataDir: t.TempDir()})
	ctx := context.Background()
	for i, dl := range []DeadLetter{
		{Destination: "li", Reason: "rejected", Source: "web", Doc: []byte(`{"n":1}`)},
		{Destination: "li", Reason: "invalid", Source: "app", Doc: []byte(`{"n":2}`)},
		{Destination: "other", Reason: "rejected", Source: "web", Doc: []byte(`{"n":3}`)},
		{Destination: "li", Reason: "rejected", Source: "web", Doc: []byte(`{"n":1}`)}, // the first again
	} {
		id := fmt.Sprint("id", i%3)
		if err := eng.AppendDeadLetter(ctx, dl, id); err != nil {
			t.Fatal(err)
		}
	}
	if err := eng.AppendDeadLetter(ctx, DeadLetter{Destination: "li", Reason: "a.b"}, ""); err == nil {
		t.Error("dead letter with reason a.b stored")
	}
	// On the wire: subject dlq.<destination>.<reason>, the source header and
	// the de-duplication id.
	msgs := readAll(t, eng, DLQStream)
	if len(msgs) != 3 {
		t.Fatalf("stored %d dead letters, want 3 (one duplicate)", len(msgs))
	}
	if m := msgs[1]; m.Subject != "dlq.li.invalid" || m.Header.Get(headerSource) != "app" || m.Header.Get(nats.MsgIdHdr) != "id1" || string(m.Data) != `{"n":2}` {
		t.Errorf("stored %s %v %s", m.Subject, m.Header, m.Data)
	}

	list := func(f DeadLetterFilter) string {
		var s string
		err := eng.ReadDeadLetters(ctx, f, func(dl DeadLetter) error {
			s += fmt.Sprintf("%d:%s/%s/%s/%s ", dl.Seq, dl.Destination, dl.Reason, dl.Source, dl.Doc)
			if dl.StoredAt.IsZero() {
				t.Errorf("dead letter %d: no time", dl.Seq)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for _, tc := range []struct {
		name string
		f    DeadLetterFilter
		want string
	}{
		{"all", DeadLetterFilter{}, `1:li/rejected/web/{"n":1} 2:li/invalid/app/{"n":2} 3:other/rejected/web/{"n":3} `},
		{"destination", DeadLetterFilter{Destination: "li"}, `1:li/rejected/web/{"n":1} 2:li/invalid/app/{"n":2} `},
		{"reason", DeadLetterFilter{Reason: "rejected"}, `1:li/rejected/web/{"n":1} 3:other/rejected/web/{"n":3} `},
		{"future", DeadLetterFilter{Since: time.Now().Add(time.Hour)}, ``},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := list(tc.f); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}

	counts, err := eng.DeadLetterCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[[2]string]uint64{{"li", "rejected"}: 1, {"li", "invalid"}: 1, {"other", "rejected"}: 1}; fmt.Sprint(counts) != fmt.Sprint(want) {
		t.Errorf("counts %v, want %v", counts, want)
	}
	dl, err := eng.DeadLetterAt(ctx, 3)
	if err != nil || dl.Seq != 3 || dl.Destination != "other" || dl.Reason != "rejected" || dl.Source != "web" || string(dl.Doc) != `{"n":3}` {
		t.Errorf("dead letter 3: %+v %v", dl, err)
	}
	if _, err := eng.DeadLetterAt(ctx, 9); !errors.Is(err, ErrNotFound) {
		t.Errorf("dead letter 9: %v, want ErrNotFound", err)
	}
	// Removing counts what is gone, also what was gone before.
	if n, err := eng.RemoveDeadLetters(ctx, []uint64{1}); n != 1 || err != nil {
		t.Errorf("removed %d: %v", n, err)
	}
	if n, err := eng.RemoveDeadLetters(ctx, []uint64{1, 3}); n != 2 || err != nil {
		t.Errorf("removed %d: %v", n, err)
	}
	if got := list(DeadLetterFilter{}); got != `2:li/invalid/app/{"n":2} ` {
		t.Errorf("left %s", got)
	}
	if counts, err := eng.DeadLetterCounts(ctx); err != nil || fmt.Sprint(counts) != fmt.Sprint(map[[2]string]uint64{{"li", "invalid"}: 1}) {
		t.Errorf("counts after removal %v, %v", counts, err)
	}
}

// TestDLQLimits: the DLQ stream is bounded in age and bytes (1 GiB and 30
// days by default) and drops its oldest dead letters when full, which the
// collector counts.
func TestDLQLimits(t *testing.T) {
	ctx := context.Background()
	t.Run("defaults", func(t *testing.T) {
		eng, _ := openTest(t, Config{DataDir: t.TempDir()})
		s, err := eng.js.Stream(ctx, DLQStream)
		if err != nil {
			t.Fatal(err)
		}
		cfg := s.CachedInfo().Config
		if cfg.MaxBytes != 1<<30 || cfg.MaxAge != 30*24*time.Hour || cfg.Discard != jetstream.DiscardOld {
			t.Errorf("DLQ stream: max_bytes %d, max_age %s, discard %s; want 1 GiB, 720h, old", cfg.MaxBytes, cfg.MaxAge, cfg.Discard)
		}
	})
	t.Run("full", func(t *testing.T) {
		const maxBytes = 8 << 10
		eng, _ := openTest(t, Config{DataDir: t.TempDir(), DLQMaxBytes: maxBytes, DLQRetention: time.Hour})
		doc := []byte(`{"pad":"` + strings.Repeat("x", 500) + `"}`)
		const n = 50
		for i := range n {
			if err := eng.AppendDeadLetter(ctx, DeadLetter{Destination: "li", Reason: "rejected", Source: "web", Doc: doc}, fmt.Sprint("id", i)); err != nil {
				t.Fatalf("dead letter %d: %v", i, err)
			}
		}
		st, err := eng.DLQState(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.MaxBytes != maxBytes || st.MaxAge != time.Hour || st.Bytes > maxBytes || st.Messages == 0 || st.Messages >= n || st.Removed != n-st.Messages {
			t.Fatalf("DLQ state %+v after %d dead letters of %d bytes, limit %d", st, n, len(doc), maxBytes)
		}
		// The newest are kept.
		msgs := readAll(t, eng, DLQStream)
		if got := msgs[len(msgs)-1].Header.Get(nats.MsgIdHdr); got != fmt.Sprint("id", n-1) {
			t.Errorf("newest dead letter kept is %s", got)
		}
		reg := prometheus.NewRegistry()
		reg.MustRegister(eng.DLQCollector())
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, mf := range mfs {
			m := mf.GetMetric()[0]
			got[mf.GetName()] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
		want := map[string]float64{"capstan_dlq_messages": float64(st.Messages), "capstan_dlq_bytes": float64(st.Bytes), "capstan_dlq_removed_total": float64(st.Removed)}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("metrics %v, want %v", got, want)
		}
	})
}

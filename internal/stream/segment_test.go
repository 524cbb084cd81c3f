package stream

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/nats-io/nats.go"

	"github.com/capstan-gw/capstan/internal/stream/dedup"
)

func TestPos(t *testing.T) {
	p := MakePos(123, 4)
	if p.Seq() != 123 || p.Index() != 4 || p.String() != "123:4" || uint64(p) != 123<<16|4 {
		t.Fatalf("MakePos(123, 4) = %d %s", uint64(p), p)
	}
	for in, want := range map[string]Pos{"123:4": p, "123": MakePos(123, 0), "7:0": MakePos(7, 0), "1:65535": MakePos(1, 65535)} {
		if got, err := ParsePos(in); err != nil || got != want {
			t.Errorf("ParsePos(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0", "x", "12:", "12:x", "12:65536", "-1", "1:2:3", fmt.Sprint(uint64(1) << 48)} {
		if _, err := ParsePos(bad); err == nil {
			t.Errorf("ParsePos(%q): no error", bad)
		}
	}
	if MakePos(2, 0) <= MakePos(1, 65535) {
		t.Error("positions do not order as the stream")
	}
}

func TestSegmentFrame(t *testing.T) {
	evs := []*Event{
		{Source: "web", Type: "track", MessageID: "m1", Doc: []byte(`{"n":1}`), RequestID: "r", UserAgent: "ua\r\n", LiFatID: "l", Trust: TrustVerified},
		{Source: "web", Type: "page", DedupID: "replay:li:3", ReplayFor: "li", Doc: []byte(`{}`)},
		{Source: "web", Type: "identify", MessageID: "m\n3", Doc: bytes.Repeat([]byte("x"), 300)},
		// Header values as the event before, then others (cleanHeader).
		{Source: "web", Type: "track", MessageID: "m4", Doc: []byte(`{}`), UserAgent: "ua\r\n", RequestID: "r", LiFatID: "l"},
		{Source: "web", Type: "track", MessageID: "m5", Doc: []byte(`{}`), UserAgent: "ua\r\n", RequestID: "r", LiFatID: "l"},
		{Source: "web", Type: "track", MessageID: "m6", Doc: []byte(`{}`), UserAgent: "u\x7fa", RequestID: "r2\n"},
	}
	frame := encodeSegment(evs)
	got, err := decodeSegment(frame)
	if err != nil || len(got) != len(evs) {
		t.Fatalf("decode: %d events, %v", len(got), err)
	}
	for i, ev := range evs {
		s := got[i].stored(9, i, "events.web.seg", "web", time.Time{})
		want := Stored{Seq: 9, Index: i, Subject: "events.web.seg", Source: "web", Type: ev.Type, MessageID: ev.MessageID, DedupID: ev.DedupID,
			Doc: ev.Doc, RequestID: headerValue(ev.RequestID), UserAgent: headerValue(ev.UserAgent), LiFatID: ev.LiFatID, ReplayFor: ev.ReplayFor, Trust: ev.Trust}
		if s.DocString() != string(ev.Doc) {
			t.Errorf("event %d: DocString %q, want %q", i, s.DocString(), ev.Doc)
		}
		s.docText = ""
		if fmt.Sprint(s) != fmt.Sprint(want) {
			t.Errorf("event %d: %+v, want %+v", i, s, want)
		}
	}
	// An event's strings and its document's text are one allocation.
	if n := testing.AllocsPerRun(100, func() { _ = got[0].stored(9, 0, "events.web.seg", "web", time.Time{}) }); n != 1 {
		t.Errorf("stored allocates %v times, want 1", n)
	}
	// Every cut of the frame, and damaged bytes, give errors.
	for n := range len(frame) {
		if _, err := decodeSegment(frame[:n]); !errors.Is(err, errBadSegment) {
			t.Fatalf("frame cut at %d: %v", n, err)
		}
	}
	for _, bad := range [][]byte{
		append(append([]byte{}, frame...), 0),                              // trailing byte
		append([]byte{0x03, 0x01}, frame[1:]...),                           // unknown flags
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, // overlong count
		{0x00},
	} {
		if _, err := decodeSegment(bad); !errors.Is(err, errBadSegment) {
			t.Errorf("frame %x: %v", bad, err)
		}
	}
}

// TestDecoderReuse: a msgDecoder reused across messages (as a consumer's
// fetch loop does) reads each as a fresh decode would, fills every field of
// a Stored that held another event, and keeps no reference to the frames
// of earlier messages in its index; the events it filled stay as read
// while it decodes (decompresses into its array) the next messages.
func TestDecoderReuse(t *testing.T) {
	big := make([]*Event, 5)
	for i := range big {
		big[i] = &Event{Source: "web", Type: "track", MessageID: fmt.Sprint("b", i), Doc: []byte(`{"big":true}`), RequestID: "r", UserAgent: "ua", LiFatID: "l", ReplayFor: "li", Trust: TrustServer}
	}
	small := []*Event{{Source: "web", Type: "page", DedupID: "replay:li:3", Doc: []byte(`{}`)}}
	other := make([]*Event, 6)
	for i := range other {
		other[i] = &Event{Source: "web", Type: "screen", MessageID: fmt.Sprint("other-", i), Doc: []byte(`{"other":"yes, other bytes"}`), UserAgent: "another agent"}
	}
	segHdr := nats.Header{headerSeg: []string{segVersion}, headerSource: []string{"web"}}
	segHdrS2 := nats.Header{headerSeg: []string{segVersionS2}, headerSource: []string{"web"}}
	old := &Event{Source: "app", Type: "identify", MessageID: "o1", Doc: []byte(`{"old":1}`), Trust: TrustVerified}
	msgs := []struct {
		seq  uint64
		subj string
		h    nats.Header
		data []byte
	}{
		{1, "events.web.seg", segHdr, encodeSegment(big)},
		{2, "events.web.seg", segHdr, encodeSegment(small)},
		{3, "events.app.identify", header(old), old.Doc},
		{4, "events.web.seg", segHdr, encodeSegment(big[:2])},
		{5, "events.web.seg", segHdr, encodeSegment(big)},
		{6, "events.web.seg", segHdr, encodeSegment(big)[:40]}, // damaged
		{7, "events.web.seg", segHdr, encodeSegment(small)},
		{8, "events.web.seg", segHdrS2, s2.Encode(nil, encodeSegment(big))},
		{9, "events.web.seg", segHdrS2, s2.Encode(nil, encodeSegment(small))},
		{10, "events.web.seg", segHdrS2, s2.Encode(nil, encodeSegment(big))[:30]}, // damaged
		{11, "events.web.seg", segHdrS2, s2.Encode(nil, encodeSegment(big)[:40])}, // a damaged frame, compressed
		{12, "events.web.seg", segHdr, encodeSegment(big[:3])},
		{13, "events.web.seg", segHdrS2, s2.Encode(nil, encodeSegment(other))},
	}
	msgs[2].h.Set(nats.MsgIdHdr, dedupIDOf(old.Source, old.MessageID))
	var dec msgDecoder
	// Every field of the target set, to see that event overwrites each.
	dirty := Stored{Seq: 99, Index: 9, Subject: "x", Source: "x", Type: "x", MessageID: "x", DedupID: "x", StoredAt: time.Unix(1, 0),
		Doc: []byte("x"), RequestID: "x", UserAgent: "x", LiFatID: "x", ReplayFor: "x", Trust: "x", DuplicateOf: 7, docText: "x"}
	if v := reflect.ValueOf(dirty); slices.ContainsFunc(reflect.VisibleFields(v.Type()), func(f reflect.StructField) bool { return v.FieldByIndex(f.Index).IsZero() }) {
		t.Fatal("the dirty Stored leaves a field zero: set it")
	}
	at := time.Unix(1700000000, 0)
	var kept, keptWant []Stored
	for _, m := range msgs {
		var want []Stored
		werr := decodeMessage(m.seq, m.subj, m.h, m.data, at, func(s Stored) error { want = append(want, s); return nil })
		n, err := dec.decode(m.seq, m.subj, m.h, m.data, at)
		// The decoder refers to no frame but the one it decoded last.
		for i, se := range dec.evs[len(dec.evs):cap(dec.evs)] {
			if se.rec != nil {
				t.Errorf("message %d: index entry %d beyond its events still refers to a frame", m.seq, len(dec.evs)+i)
			}
		}
		if werr != nil {
			if !errors.Is(err, errBadSegment) || len(dec.evs) != 0 {
				t.Errorf("message %d: %v, %d entries; want %v and none", m.seq, err, len(dec.evs), werr)
			}
			continue
		}
		if err != nil || n != len(want) {
			t.Fatalf("message %d: %d events, %v; want %d", m.seq, n, err, len(want))
		}
		for i := range n {
			got := dirty
			dec.event(i, &got)
			if !reflect.DeepEqual(got, want[i]) {
				t.Errorf("message %d event %d: %+v, want %+v", m.seq, i, got, want[i])
			}
			kept, keptWant = append(kept, got), append(keptWant, want[i])
		}
		// eachKey gives the events' key fields as event does.
		var keys []string
		dec.eachKey(func(i int, source, messageID, dedupID string) {
			keys = append(keys, fmt.Sprint(i, source, messageID, dedupID))
		})
		for i, w := range want {
			if i >= len(keys) || keys[i] != fmt.Sprint(i, w.Source, w.MessageID, w.DedupID) {
				t.Errorf("message %d: eachKey gave %q, want the key fields of %+v", m.seq, keys, want)
				break
			}
		}
		if len(keys) != len(want) {
			t.Errorf("message %d: eachKey gave %d events, want %d", m.seq, len(keys), len(want))
		}
	}
	for i := range kept {
		if !reflect.DeepEqual(kept[i], keptWant[i]) || kept[i].DocString() != string(keptWant[i].Doc) {
			t.Errorf("event %s changed after later messages were decoded: %+v, want %+v", kept[i].Pos(), kept[i], keptWant[i])
		}
	}
}

// TestCompressFrame: frames that shrink are compressed (version 2) and
// decompress to themselves; short or incompressible ones stay plain; a
// damaged compressed frame gives errBadSegment, and one claiming more than
// maxFrameBytes is refused before anything is allocated for it.
func TestCompressFrame(t *testing.T) {
	evs := make([]*Event, 100)
	for i := range evs {
		evs[i] = &Event{Source: "web", Type: "track", MessageID: fmt.Sprint("m", i), Trust: TrustServer,
			Doc: []byte(fmt.Sprintf(`{"type":"track","event":"Order Completed","messageId":"m%d","properties":{"revenue":%d}}`, i, i*7))}
	}
	frame := encodeSegment(evs)
	data, v := compressFrame(nil, frame)
	if v != segVersionS2 || len(data) >= len(frame)/2 {
		t.Fatalf("a frame of %d bytes: version %s, %d bytes; want 2, less than half", len(frame), v, len(data))
	}
	// Into a pooled array with room: no allocation.
	dst := make([]byte, 0, 2*len(frame))
	if n := testing.AllocsPerRun(20, func() { data, _ = compressFrame(dst, frame) }); n != 0 || &data[0] != &dst[:1][0] {
		t.Errorf("compressFrame into an array with room: %v allocations, its array used: %v", n, &data[0] == &dst[:1][0])
	}
	back, err := segmentFrame(segVersionS2, data)
	if err != nil || !bytes.Equal(back, frame) {
		t.Fatalf("decompressed: %v, equal %v", err, bytes.Equal(back, frame))
	}
	if got, err := segmentFrame(segVersion, frame); err != nil || &got[0] != &frame[0] {
		t.Errorf("a plain frame is not used as it is: %v", err)
	}

	short := encodeSegment(evs[:1])
	if got, v := compressFrame(nil, short); v != segVersion || &got[0] != &short[0] {
		t.Errorf("a %d-byte frame: version %s", len(short), v)
	}
	noise := make([]byte, 4096)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range noise {
		noise[i] = byte(r.Uint32())
	}
	if got, v := compressFrame(nil, noise); v != segVersion || &got[0] != &noise[0] {
		t.Errorf("incompressible bytes: version %s", v)
	}

	for name, bad := range map[string][]byte{
		"empty":      {},
		"cut":        data[:len(data)/2],
		"one byte":   data[:1],
		"trailing":   append(slices.Clone(data), 0),
		"overlong":   binary.AppendUvarint(nil, maxFrameBytes+1),
		"huge claim": binary.AppendUvarint(nil, 1<<40),
		"bit flip":   func() []byte { b := slices.Clone(data); b[len(b)/2] ^= 0x40; return b }(),
	} {
		if name == "bit flip" {
			// A flipped literal byte decompresses; the frame check or the
			// reader catches what it breaks. Only no panic is required.
			_, _ = segmentFrame(segVersionS2, bad)
			continue
		}
		if _, err := segmentFrame(segVersionS2, bad); !errors.Is(err, errBadSegment) {
			t.Errorf("%s: %v, want errBadSegment", name, err)
		}
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, _ = segmentFrame(segVersionS2, binary.AppendUvarint([]byte{}, maxFrameBytes+1))
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
		t.Errorf("an oversized claimed length allocated %d bytes", n)
	}
	if _, err := segmentFrame("3", data); !errors.Is(err, errBadSegment) || !strings.Contains(err.Error(), "newer capstan") {
		t.Errorf("version 3: %v", err)
	}
}

// FuzzSegmentFrame: whatever a compressed segment holds, reading it never
// panics and refuses with errBadSegment; what reads compresses back to
// data that reads the same.
func FuzzSegmentFrame(f *testing.F) {
	frame := encodeSegment([]*Event{{Type: "track", MessageID: "m", Doc: bytes.Repeat([]byte(`{"a":"b"}`), 40)}})
	c, _ := compressFrame(nil, frame)
	f.Add(c)
	f.Add(s2.EncodeSnappy(nil, frame))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		frame, err := segmentFrame(segVersionS2, data)
		if err != nil {
			if !errors.Is(err, errBadSegment) {
				t.Fatalf("error %v does not wrap errBadSegment", err)
			}
			return
		}
		if _, err := decodeSegment(frame); err != nil && !errors.Is(err, errBadSegment) {
			t.Fatalf("frame error %v does not wrap errBadSegment", err)
		}
		again, v := compressFrame(nil, frame)
		if back, err := segmentFrame(v, again); err != nil || !bytes.Equal(back, frame) {
			t.Fatalf("compressed again (version %s): %v", v, err)
		}
	})
}

func FuzzDecodeSegment(f *testing.F) {
	f.Add(encodeSegment([]*Event{{Type: "track", MessageID: "m", Doc: []byte(`{}`)}}))
	f.Add(encodeSegment([]*Event{{Type: "track", Doc: []byte(`{}`)}, {Type: "page", DedupID: "d", Doc: []byte(`[]`)}}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		evs, err := decodeSegment(data)
		if err != nil {
			if !errors.Is(err, errBadSegment) {
				t.Fatalf("error %v does not wrap errBadSegment", err)
			}
			return
		}
		// What decodes encodes back to the same frame.
		in := make([]*Event, len(evs))
		for i, se := range evs {
			s := se.stored(1, i, "", "", time.Time{})
			if s.DocString() != string(s.Doc) {
				t.Fatalf("event %d: DocString %q, Doc %q", i, s.DocString(), s.Doc)
			}
			in[i] = &Event{Type: s.Type, MessageID: s.MessageID, RequestID: s.RequestID, UserAgent: s.UserAgent, LiFatID: s.LiFatID,
				ReplayFor: s.ReplayFor, Trust: s.Trust, DedupID: s.DedupID, Doc: s.Doc}
		}
		if again := encodeSegment(in); !bytes.Equal(again, data) && headersClean(in) {
			t.Fatalf("re-encoded %x, decoded from %x", again, data)
		}
	})
}

// headersClean reports whether the facts survive headerValue unchanged.
func headersClean(evs []*Event) bool {
	for _, ev := range evs {
		for _, v := range []string{ev.RequestID, ev.UserAgent, ev.LiFatID, ev.ReplayFor, ev.Trust} {
			if headerValue(v) != v {
				return false
			}
		}
	}
	return true
}

// openDedupWriter opens an engine in dir with a de-duplication index and a
// running Writer using it; stop closes all three (a clean shutdown).
func openDedupWriter(t *testing.T, dir string) (eng *Engine, d *Dedup, w *Writer, stop func()) {
	t.Helper()
	return openDedupWriterLog(t, dir, discard)
}

// openDedupWriterLog is openDedupWriter with the index logging to log.
func openDedupWriterLog(t *testing.T, dir string, log *slog.Logger) (eng *Engine, d *Dedup, w *Writer, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	eng, err := Open(ctx, Config{DataDir: dir}, discard)
	if err != nil {
		t.Fatal(err)
	}
	d, err = OpenDedup(ctx, eng, DedupConfig{Dir: dir + "/dedup", Window: time.Hour}, log)
	if err != nil {
		t.Fatal(err)
	}
	w, err = NewWriter(eng, WriterConfig{Dedup: d}, discard)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done; _ = d.Close(); eng.Close() }) }
	t.Cleanup(stop)
	return eng, d, w, stop
}

func track(id string) Event {
	return Event{Source: "web", Type: "track", MessageID: id, Doc: []byte(`{"messageId":"` + id + `"}`)}
}

// outcome prints results as s (stored), d (duplicate) or e (error).
func outcome(res []Result) string {
	var b []byte
	for _, r := range res {
		switch {
		case r.Err != nil:
			b = append(b, 'e')
		case r.Duplicate:
			b = append(b, 'd')
		case r.Seq != 0:
			b = append(b, 's')
		default:
			b = append(b, '?')
		}
	}
	return string(b)
}

func storedIDs(t *testing.T, eng *Engine) string {
	t.Helper()
	var ids []string
	for _, s := range readEvents(t, eng, ReadOptions{}) {
		ids = append(ids, s.MessageID)
	}
	return fmt.Sprint(ids)
}

// TestWriterDuplicates: an event whose (source, messageId) is stored is a
// duplicate, within one request, across requests, from concurrent requests
// and after a restart; a retry that overlaps a stored batch only in part
// stores each event once.
func TestWriterDuplicates(t *testing.T) {
	dir := t.TempDir()
	eng, d, w, stop := openDedupWriter(t, dir)
	if got := outcome(appendOK(t, w, track("a"), track("b"), track("a"))); got != "ssd" {
		t.Errorf("within a request: %s", got)
	}
	other := track("a")
	other.Source = "app"
	if got := outcome(appendOK(t, w, track("b"), track("c"), other)); got != "dss" {
		t.Errorf("across requests: %s", got)
	}
	// Concurrent requests with the same events: each stored once.
	var wg sync.WaitGroup
	results := make([][]Result, 8)
	for i := range results {
		wg.Go(func() { results[i] = appendOK(t, w, track("x"), track("y"), track("z")) })
	}
	wg.Wait()
	stored := 0
	for _, res := range results {
		for _, r := range res {
			if !r.Duplicate {
				stored++
			}
		}
	}
	if stored != 3 {
		t.Errorf("concurrent requests stored %d events, want 3", stored)
	}
	last, err := eng.LastEventSeq(context.Background())
	if err != nil || d.Covered() != last {
		t.Errorf("covered %d, last sequence %d (%v)", d.Covered(), last, err)
	}
	want := "[a b c a x y z]"
	if got := storedIDs(t, eng); got != want {
		t.Errorf("stored %s, want %s", got, want)
	}
	stop()

	// After a restart: the index knows what was stored.
	eng, _, w, _ = openDedupWriter(t, dir)
	if got := outcome(appendOK(t, w, track("c"), track("d"), track("x"), track("e"))); got != "dsds" {
		t.Errorf("partly overlapping retry after a restart: %s", got)
	}
	if got, want := storedIDs(t, eng), "[a b c a x y z d e]"; got != want {
		t.Errorf("stored %s, want %s", got, want)
	}
}

// TestDedupCatchUp: events stored but not recorded in the index (a crash
// between the commit and the recording) are recorded at the next start
// from the position the index covers, so a client's retry that overlaps
// them in part stores each event once.
func TestDedupCatchUp(t *testing.T) {
	dir := t.TempDir()
	eng, d, w, _ := openDedupWriter(t, dir)
	appendOK(t, w, track("a"), track("b"))
	covered := d.Covered()
	if covered == 0 {
		t.Fatal("nothing covered after a commit")
	}
	// The crash: a commit that reaches the stream but not the index.
	bare, err := NewWriter(eng, WriterConfig{}, discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = bare.Run(ctx); close(done) }()
	appendOK(t, bare, track("c"), track("d"), track("e"))
	cancel()
	<-done
	if d.Covered() != covered {
		t.Fatalf("covered moved to %d without the index", d.Covered())
	}
	// The start: catch-up reads only what follows the covered position.
	n, err := d.catchUp(context.Background(), eng, time.Hour)
	if err != nil || n != 3 {
		t.Fatalf("catch-up read %d events (%v), want the 3 not recorded", n, err)
	}
	if got := outcome(appendOK(t, w, track("b"), track("d"), track("f"), track("e"))); got != "ddsd" {
		t.Errorf("retry overlapping the crashed commit: %s", got)
	}
	if got, want := storedIDs(t, eng), "[a b c d e f]"; got != want {
		t.Errorf("stored %s, want %s", got, want)
	}
}

// TestDedupRestart: after a restart the index (its filters in memory
// rebuilt from the store, the events it missed caught up from the stream)
// still knows every stored event: retries of them are duplicates.
func TestDedupRestart(t *testing.T) {
	dir := t.TempDir()
	eng, _, w, stop := openDedupWriter(t, dir)
	appendOK(t, w, track("a"), track("b"))
	// A commit that reaches the stream but not the index (a crash).
	bare, err := NewWriter(eng, WriterConfig{}, discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = bare.Run(ctx); close(done) }()
	appendOK(t, bare, track("c"), track("d"))
	cancel()
	<-done
	stop()

	eng, _, w, _ = openDedupWriter(t, dir)
	if got := outcome(appendOK(t, w, track("a"), track("c"), track("e"), track("b"), track("d"))); got != "ddsdd" {
		t.Errorf("retries after the restart: %s, want ddsdd", got)
	}
	if got, want := storedIDs(t, eng), "[a b c d e]"; got != want {
		t.Errorf("stored %s, want %s", got, want)
	}
}

// TestCoveredWithCommitsInFlight: with several commits in flight, covered
// never passes a sequence whose events are not in the index, and reaches
// the last one once all are done.
func TestCoveredWithCommitsInFlight(t *testing.T) {
	eng, d, w, _ := openDedupWriter(t, t.TempDir())
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			appendOK(t, w, track(fmt.Sprint("c", i)))
			// Every event up to covered is known to the index.
			covered := d.Covered()
			err := eng.ReadEvents(context.Background(), ReadOptions{}, func(s Stored) error {
				if s.Seq > covered {
					return errStop
				}
				k, _ := d.key(s.Source, s.MessageID, s.DedupID)
				found, err := d.x.Check(keysOf(k))
				if err != nil || found[0] == 0 {
					return fmt.Errorf("event %s at or below covered %d is not in the index", s.Pos(), covered)
				}
				return nil
			})
			if err != nil && !errors.Is(err, errStop) {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	last, _ := eng.LastEventSeq(context.Background())
	if d.Covered() != last {
		t.Errorf("covered %d, want the last sequence %d", d.Covered(), last)
	}
}

var errStop = errors.New("stop")

func keysOf(k ...dedup.Key) []dedup.Key { return k }

// TestAttachedToolUsesTheRunningIndex: a tool attached to a running
// capstan's engine (capstan import) looks its events up in that capstan's
// index and records there what it stored.
func TestAttachedToolUsesTheRunningIndex(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	eng, err := Open(ctx, Config{DataDir: dir, Listen: "127.0.0.1:0"}, discard)
	if err != nil {
		t.Fatal(err)
	}
	d, err := OpenDedup(ctx, eng, DedupConfig{Dir: dir + "/dedup"}, discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.ServeDedup(d); err != nil {
		t.Fatal(err)
	}
	w, err := NewWriter(eng, WriterConfig{Dedup: d}, discard)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; _ = d.Close(); eng.Close() })
	appendOK(t, w, track("a"), track("b"))

	cli, err := Attach(context.Background(), Config{DataDir: dir}, discard)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	td, err := AttachDedup(context.Background(), cli)
	if err != nil || td == nil {
		t.Fatalf("AttachDedup: %v, %v", td, err)
	}
	tw, err := NewWriter(cli, WriterConfig{Dedup: td}, discard)
	if err != nil {
		t.Fatal(err)
	}
	tctx, tcancel := context.WithCancel(context.Background())
	tdone := make(chan struct{})
	go func() { _ = tw.Run(tctx); close(tdone) }()
	if got := outcome(appendOK(t, tw, track("b"), track("c"))); got != "ds" {
		t.Errorf("tool: %s, want b a duplicate and c stored", got)
	}
	tcancel()
	<-tdone
	if got := outcome(appendOK(t, w, track("c"), track("d"))); got != "ds" {
		t.Errorf("after the tool: %s, want c a duplicate", got)
	}
	if got, want := storedIDs(t, eng), "[a b c d]"; got != want {
		t.Errorf("stored %s, want %s", got, want)
	}
	// Not attached: no remote index.
	if td, err := AttachDedup(context.Background(), eng); td != nil || err != nil {
		t.Errorf("AttachDedup of the engine's own process: %v, %v", td, err)
	}
	// Metrics: the running index counts what both writers added; the
	// tool's Dedup has no index of its own and reports nothing.
	if got := collected(t, d.Collector())["capstan_dedup_added_keys_total"]; got != 4 {
		t.Errorf("capstan_dedup_added_keys_total = %v, want 4 (a, b, c, d)", got)
	}
	if got := collected(t, td.Collector()); len(got) != 0 {
		t.Errorf("a tool's index metrics: %v, want none", got)
	}
}

// TestFollowerFirstInStreamOrder is cluster mode in one process: two
// writers with indexes of their own (two replicas) both store an event the
// other's index has not seen yet. The follower records every event of the
// stream in its index; a consumer checking against it delivers the first
// occurrence in stream order only, and the writer's fast path then knows
// the other replica's events too.
func TestFollowerFirstInStreamOrder(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	eng, err := Open(ctx, Config{DataDir: dir}, discard)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait(); eng.Close() })
	replica := func(name string) (*Dedup, *Writer) {
		d, err := OpenDedup(ctx, eng, DedupConfig{Dir: dir + "/" + name}, discard)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = d.Close() })
		w, err := NewWriter(eng, WriterConfig{Dedup: d}, discard)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { _ = w.Run(ctx) })
		return d, w
	}
	da, wa := replica("a")
	_, wb := replica("b")
	appendOK(t, wa, track("m1"), track("m2"))
	if got := outcome(appendOK(t, wb, track("m2"), track("m3"))); got != "ss" {
		t.Fatalf("replica b: %s, want both stored (it has not seen a's)", got)
	}
	wg.Go(func() { da.Follow(ctx, eng) })
	eventually(t, func() bool { return da.Covered() == 2 })

	c, err := eng.Consumer(ctx, ConsumerConfig{Durable: "cluster", Dedup: da, FetchWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	out, _ := feed(t, c, nil)
	if got := receiveAcked(t, out, 3); got != "[m1@1:0 m2@1:1 m3@2:1]" {
		t.Errorf("delivered %v, want m2 once, at its first position", got)
	}
	nothing(t, out, 300*time.Millisecond)
	eventually(t, func() bool { st, err := eng.ConsumerState(ctx, "cluster"); return err == nil && st.AckFloor == 2 })
	// Replica a's fast path now knows b's m3.
	if got := outcome(appendOK(t, wa, track("m3"), track("m4"))); got != "ds" {
		t.Errorf("replica a after following: %s, want m3 a duplicate", got)
	}
	eventually(t, func() bool { return da.Covered() == 3 })
	// A replica started now: caught up to the last message, it follows on
	// from the next one.
	dc, err := OpenDedup(ctx, eng, DedupConfig{Dir: dir + "/c", Follow: true}, discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dc.Close() })
	if dc.Covered() != 3 {
		t.Fatalf("new replica caught up to %d, want 3", dc.Covered())
	}
	wg.Go(func() { dc.Follow(ctx, eng) })
	appendOK(t, wa, track("m5"))
	eventually(t, func() bool { return dc.Covered() == 4 })
}

// receiveAcked receives n deliveries from out, acknowledges each and
// returns them as "[messageId@pos …]" sorted: two fetches in flight
// deliver out of stream order.
func receiveAcked(t *testing.T, out <-chan *Delivery, n int) string {
	t.Helper()
	got := make([]string, 0, n)
	for range n {
		d := receive(t, out)
		got = append(got, d.MessageID+"@"+d.Pos().String())
		if err := d.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(got)
	return fmt.Sprint(got)
}

// TestSegmentID: segmentID hashes the source and each id with its length,
// as releases before it did (a client's retry across an upgrade keeps its
// segment id), whatever the ids' lengths against its buffer; and it
// allocates a few times per segment, not once per event.
func TestSegmentID(t *testing.T) {
	ref := func(source string, ids []string) string {
		h := sha256.New()
		h.Write([]byte(source))
		var l [binary.MaxVarintLen64]byte
		for _, id := range ids {
			h.Write(l[:binary.PutUvarint(l[:], uint64(len(id)))])
			h.Write([]byte(id))
		}
		return "seg:" + source + ":" + hex.EncodeToString(h.Sum(nil)[:16])
	}
	ids := func(n, size int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("%0*d", size, i)
		}
		return out
	}
	for _, c := range []struct {
		name string
		ids  []string
	}{
		{"one", []string{"m1"}},
		{"empty id", []string{"", "m2"}},
		{"1000 uuid-sized", ids(1000, 40)},
		{"around the buffer", ids(300, segIDBuf/7)},
		{"longer than the buffer", append(ids(3, 10), strings.Repeat("x", 3*segIDBuf), "y")},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got, want := segmentID("web", c.ids), ref("web", c.ids); got != want {
				t.Errorf("segmentID = %s, want %s", got, want)
			}
		})
	}
	many := ids(1000, 40)
	if n := testing.AllocsPerRun(20, func() { segmentID("web", many) }); n > 10 {
		t.Errorf("segmentID of 1000 ids: %.0f allocations, want at most 10", n)
	}
}

// decodeSegment is decodeSegmentInto into a new array.
func decodeSegment(data []byte) ([]segEvent, error) { return decodeSegmentInto(nil, data) }

// stored returns the event as read (fill).
func (se *segEvent) stored(seq uint64, idx int, subj, src string, at time.Time) Stored {
	var s Stored
	se.fill(&s, seq, idx, subj, src, at)
	return s
}

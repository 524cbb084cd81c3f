package privacy

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/internal/audit"
	"github.com/capstan-gw/capstan/internal/event"
	"github.com/capstan-gw/capstan/internal/identity"
	"github.com/capstan-gw/capstan/internal/linkedin"
	"github.com/capstan-gw/capstan/internal/stream"
)

var discard = slog.New(slog.DiscardHandler)

// hashEmail is the rule capstan serve configures.
var hashEmail = linkedin.HashEmail

// env is a real embedded engine with a writer, the identity graph,
// suppressions and a Deleter.
type env struct {
	t     *testing.T
	dir   string
	eng   *stream.Engine
	w     *stream.Writer
	graph *identity.Graph
	sup   *Suppressions
	del   *Deleter
	n     int
	trust string // of the events store stores; "": server
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir()}
	e.open()
	return e
}

func (e *env) open() {
	t := e.t
	ctx, cancel := context.WithCancel(context.Background())
	eng, err := stream.Open(ctx, stream.Config{DataDir: e.dir, Listen: "none"}, discard)
	if err != nil {
		t.Fatal(err)
	}
	w, err := stream.NewWriter(eng, stream.WriterConfig{}, discard)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	g, err := identity.Open(ctx, eng.JetStream(), identity.Config{HashEmail: hashEmail}, discard)
	if err != nil {
		t.Fatal(err)
	}
	sup, err := OpenSuppressions(ctx, eng, SuppressionConfig{HashEmail: hashEmail})
	if err != nil {
		t.Fatal(err)
	}
	if err := sup.Load(ctx); err != nil {
		t.Fatal(err)
	}
	supDone := make(chan struct{})
	go func() { _ = sup.Run(ctx); close(supDone) }()
	del, err := NewDeleter(eng, g, sup, hashEmail, discard)
	if err != nil {
		t.Fatal(err)
	}
	e.eng, e.w, e.graph, e.sup, e.del = eng, w, g, sup, del
	t.Cleanup(func() { cancel(); <-done; <-supDone; eng.Close() })
}

// store stores events (JSON objects without messageId) and teaches the
// graph from them, as delivery would.
func (e *env) store(docs ...string) {
	e.t.Helper()
	ctx := context.Background()
	req := &event.Request{ReceivedAt: time.Now()}
	var evs []stream.Event
	for _, d := range docs {
		e.n++
		d = strings.Replace(d, "{", fmt.Sprintf(`{"messageId":"m-%d",`, e.n), 1)
		ev, derr := event.Normalize([]byte(d), "", req)
		if derr != nil {
			e.t.Fatal(derr)
		}
		evs = append(evs, stream.Event{Source: "web", Type: string(ev.Type), MessageID: ev.MessageID, Doc: ev.JSON, Trust: cmp.Or(e.trust, stream.TrustServer)})
		v, err := event.Parse(ev.JSON)
		if err != nil {
			e.t.Fatal(err)
		}
		if err := e.graph.Observe(ctx, v, identity.Capture(v)); err != nil {
			e.t.Fatal(err)
		}
	}
	res, err := e.w.Append(ctx, evs)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil {
			e.t.Fatal(r.Err)
		}
	}
}

// deadLetter stores a dead letter about the event doc.
func (e *env) deadLetter(doc string) {
	e.t.Helper()
	e.n++
	b, _ := json.Marshal(map[string]any{"destination": "li", "reason": "rejected", "source": "web", "event": json.RawMessage(doc)})
	if err := e.eng.AppendDeadLetter(context.Background(), stream.DeadLetter{Destination: "li", Reason: "rejected", Source: "web", Doc: b}, fmt.Sprint("dl-", e.n)); err != nil {
		e.t.Fatal(err)
	}
}

// events returns the userId (or anonymousId, or "-") of every stored event.
// events returns whose the stored events are, sorted: a deletion inside a
// segment stores the others again at the end of the stream.
func (e *env) events() []string {
	e.t.Helper()
	var out []string
	err := e.eng.ReadEvents(context.Background(), stream.ReadOptions{}, func(s stream.Stored) error {
		out = append(out, who(e.t, s.Doc))
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func (e *env) deadLetters() []string {
	e.t.Helper()
	var out []string
	err := e.eng.ReadDeadLetters(context.Background(), stream.DeadLetterFilter{}, func(dl stream.DeadLetter) error {
		var d struct{ Event json.RawMessage }
		if err := json.Unmarshal(dl.Doc, &d); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, who(e.t, d.Event))
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

func who(t *testing.T, doc []byte) string {
	v, err := event.Parse(doc)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"userId", "anonymousId"} {
		if s, ok := v.Get(k).Str(); ok {
			return s
		}
	}
	return "-"
}

func (e *env) suppressed(doc string) bool {
	e.t.Helper()
	v, err := event.ParseString(doc)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.sup.Suppressed(v)
}

func (e *env) known(k identity.Key) bool {
	e.t.Helper()
	_, err := e.graph.Show(context.Background(), k)
	if err != nil && !errors.Is(err, identity.ErrNotFound) {
		e.t.Fatal(err)
	}
	return err == nil
}

// TestDeleteUser: a privacy deletion of a userId erases the person from the
// graph (linked anonymous id too), their events (by userId, linked
// anonymousId and email) and dead letters, suppresses their ids, and
// leaves other people alone; the audit record holds no raw id.
func TestDeleteUser(t *testing.T) {
	e := newEnv(t)
	e.store(
		`{"type":"page","anonymousId":"anon-1"}`,
		`{"type":"identify","anonymousId":"anon-1","userId":"alice","traits":{"email":"Alice@Example.com"}}`,
		`{"type":"track","event":"Order","userId":"alice"}`,
		`{"type":"track","event":"Order","anonymousId":"anon-9","properties":{"email":" alice@example.com "}}`,
		`{"type":"identify","anonymousId":"anon-2","userId":"bob","traits":{"email":"bob@example.com"}}`,
		`{"type":"track","event":"Order","userId":"bob"}`,
	)
	e.deadLetter(`{"type":"track","event":"Order","userId":"alice"}`)
	e.deadLetter(`{"type":"track","event":"Order","anonymousId":"anon-1"}`)
	e.deadLetter(`{"type":"track","event":"Order","userId":"bob"}`)

	rep, err := e.del.Delete(context.Background(), Request{UserID: "alice", By: "cli"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.IDKind != KindUserID || rep.IDSHA256 != sha("alice") || rep.GraphKeysRemoved != 2 || rep.EventsDeleted != 4 || rep.DeadLettersDeleted != 2 || rep.Suppressed != 3 {
		t.Errorf("report %+v", rep)
	}
	if got, want := fmt.Sprint(e.events()), "[bob bob]"; got != want {
		t.Errorf("events left %s, want %s", got, want)
	}
	if got, want := fmt.Sprint(e.deadLetters()), "[bob]"; got != want {
		t.Errorf("dead letters left %s, want %s", got, want)
	}
	if e.known(identity.Key{UserID: "alice"}) || e.known(identity.Key{AnonymousID: "anon-1"}) {
		t.Error("the graph still knows alice")
	}
	if !e.known(identity.Key{UserID: "bob"}) {
		t.Error("the graph forgot bob")
	}
	for _, doc := range []string{
		`{"type":"track","userId":"alice"}`,
		`{"type":"track","anonymousId":"anon-1"}`,
		`{"type":"track","anonymousId":"new","traits":{"email":"ALICE@example.com"}}`,
		`{"type":"alias","previousId":"alice","userId":"alice-2"}`,
	} {
		if !e.suppressed(doc) {
			t.Errorf("not suppressed: %s", doc)
		}
	}
	for _, doc := range []string{`{"type":"track","userId":"bob"}`, `{"type":"track","anonymousId":"alice"}`} {
		if e.suppressed(doc) {
			t.Errorf("suppressed: %s", doc)
		}
	}

	recs, err := audit.Read(context.Background(), e.eng, time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 {
		t.Fatalf("%d audit records, want 1", len(recs))
	}
	r := recs[0]
	if r.By != "cli" || r.Action != audit.ActionPrivacyDelete || r.IDKind != KindUserID || r.IDSHA256 != sha("alice") ||
		r.Result["eventsDeleted"] != 4 || r.Result["deadLettersDeleted"] != 2 || r.Result["graphKeysRemoved"] != 2 || r.At.IsZero() {
		t.Errorf("audit record %+v", r)
	}
	b, _ := json.Marshal(r)
	if strings.Contains(strings.ToLower(string(b)), "alice") {
		t.Errorf("audit record holds the raw id: %s", b)
	}

	// The suppression survives a restart.
	e.eng.Close()
	e.open()
	if !e.suppressed(`{"type":"track","userId":"alice"}`) {
		t.Error("alice not suppressed after a restart")
	}
}

// TestDeleteEmail: a deletion by email alone erases the events carrying it
// and those of the ids those events name, and removes those ids from the
// graph; an unverified browser event does not add its userId.
func TestDeleteEmail(t *testing.T) {
	e := newEnv(t)
	e.store(
		`{"type":"identify","userId":"carol","traits":{"email":"carol@example.com"}}`,
		`{"type":"track","event":"Order","userId":"carol"}`,
		`{"type":"track","event":"Order","anonymousId":"anon-c","context":{"traits":{"email":"CAROL@example.com"}}}`,
		`{"type":"track","event":"Order","userId":"dave","properties":{"email":"dave@example.com"}}`,
	)
	e.store(`{"type":"identify","userId":"erin","traits":{"email":"erin@example.com"}}`)
	// Forged with a browser source's public write key: erin is not carol.
	e.trust = stream.TrustUnverified
	e.store(`{"type":"track","event":"Order","userId":"erin","properties":{"email":"carol@example.com"}}`)
	e.deadLetter(`{"type":"track","event":"Order","userId":"carol"}`)
	rep, err := e.del.Delete(context.Background(), Request{Email: " Carol@Example.com", By: "admin token"})
	if err != nil {
		t.Fatal(err)
	}
	h, _ := hashEmail("carol@example.com")
	if rep.IDKind != KindEmail || rep.IDSHA256 != h || rep.GraphKeysRemoved != 2 || rep.EventsDeleted != 4 || rep.DeadLettersDeleted != 1 {
		t.Errorf("report %+v", rep)
	}
	if got, want := fmt.Sprint(e.events()), "[dave erin]"; got != want {
		t.Errorf("events left %s, want %s", got, want)
	}
	if e.known(identity.Key{UserID: "carol"}) {
		t.Error("the graph still knows carol")
	}
	if !e.known(identity.Key{UserID: "erin"}) || e.suppressed(`{"type":"track","userId":"erin"}`) {
		t.Error("a forged browser event made erin part of carol's deletion")
	}
	if !e.suppressed(`{"type":"track","userId":"carol"}`) || !e.suppressed(`{"type":"track","traits":{"email":"carol@example.com"}}`) {
		t.Error("carol not suppressed")
	}
	recs, err := audit.Read(context.Background(), e.eng, time.Time{}, 10)
	if err != nil || len(recs) != 1 || recs[0].By != "admin token" || recs[0].IDKind != KindEmail {
		t.Fatalf("audit %+v, %v", recs, err)
	}
	if b, _ := json.Marshal(recs[0]); strings.Contains(strings.ToLower(string(b)), "carol") {
		t.Errorf("audit record holds the raw email: %s", b)
	}
}

// TestDeleteUnknownAndBad: a person capstan never saw is deleted with zero
// counts (and audited); a request naming no id or two is refused.
func TestDeleteUnknownAndBad(t *testing.T) {
	e := newEnv(t)
	rep, err := e.del.Delete(context.Background(), Request{AnonymousID: "nobody", By: "cli"})
	if err != nil || rep.GraphKeysRemoved+rep.EventsDeleted+rep.DeadLettersDeleted != 0 || rep.Suppressed != 1 {
		t.Errorf("unknown: %+v, %v", rep, err)
	}
	for _, r := range []Request{{}, {UserID: "a", Email: "b@c"}, {UserID: "  "}} {
		if _, err := e.del.Delete(context.Background(), r); !errors.Is(err, ErrBadRequest) {
			t.Errorf("%+v: %v, want ErrBadRequest", r, err)
		}
	}
	recs, err := audit.Read(context.Background(), e.eng, time.Time{}, 0)
	if err != nil || len(recs) != 1 {
		t.Errorf("audit %+v, %v; want the one deletion", recs, err)
	}
}

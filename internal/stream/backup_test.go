package stream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// backupOf fills a serving engine (events, a consumer with acks, a KV key),
// backs it up through an attached client and returns the backup directory.
func backupOf(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	eng, app := openTest(t, Config{DataDir: dir, Listen: "127.0.0.1:0"})
	var recs []record
	for i := range 20 {
		recs = append(recs, rec("events.web.track", fmt.Sprintf("m%d", i)))
	}
	if _, err := app.Append(ctx, recs); err != nil {
		t.Fatal(err)
	}
	cons, err := eng.JetStream().CreateOrUpdateConsumer(ctx, EventsStream, jetstream.ConsumerConfig{Durable: "dlv", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.FetchNoWait(5)
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
	}
	kv, err := eng.KV(ctx, StateKV, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "token.li", []byte("secret")); err != nil {
		t.Fatal(err)
	}

	cli, err := Attach(ctx, Config{DataDir: dir}, discard)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	out := filepath.Join(t.TempDir(), "backup")
	m, err := cli.Backup(ctx, out, "v1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range m.Streams {
		names = append(names, s.Name)
		if s.Name == EventsStream && (s.Messages != 20 || s.LastSeq != 20 || s.Consumers != 1) {
			t.Errorf("manifest EVENTS: %+v", s)
		}
	}
	if got := strings.Join(names, ","); got != "KV_state,EVENTS,DLQ" {
		t.Errorf("streams in backup: %s", got)
	}
	return out
}

func TestBackupRestore(t *testing.T) {
	ctx := context.Background()
	backup := backupOf(t)
	target := filepath.Join(t.TempDir(), "data")
	if _, err := Restore(ctx, Config{DataDir: target}, backup, discard); err != nil {
		t.Fatal(err)
	}
	eng, err := Open(ctx, Config{DataDir: target}, discard)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	if n := len(readAll(t, eng, EventsStream)); n != 20 {
		t.Errorf("restored %d events, want 20", n)
	}
	cons, err := eng.JetStream().Consumer(ctx, EventsStream, "dlv")
	if err != nil {
		t.Fatalf("consumer not restored: %v", err)
	}
	if floor := cons.CachedInfo().AckFloor.Stream; floor != 5 {
		t.Errorf("consumer ack floor %d, want 5", floor)
	}
	kv, err := eng.JetStream().KeyValue(ctx, StateKV)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := kv.Get(ctx, "token.li"); err != nil || string(v.Value()) != "secret" {
		t.Errorf("state key: %v", err)
	}
}

func TestRestoreRefusals(t *testing.T) {
	ctx := context.Background()
	backup := backupOf(t)
	copyBackup := func(t *testing.T, edit func(dir string)) string {
		dir := t.TempDir()
		entries, _ := os.ReadDir(backup)
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(backup, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		edit(dir)
		return dir
	}
	tests := []struct {
		name    string
		backup  func(dir string)
		target  func(dir string)
		wantErr error
		want    string
	}{
		{
			name:    "data directory not empty",
			backup:  func(string) {},
			target:  func(dir string) { _ = os.WriteFile(filepath.Join(dir, "keep"), []byte("x"), 0o600) },
			wantErr: ErrDataDirNotEmpty, want: "keep",
		},
		{
			name: "newer version",
			backup: func(dir string) {
				p := filepath.Join(dir, ManifestFile)
				b, _ := os.ReadFile(p)
				var m map[string]any
				_ = json.Unmarshal(b, &m)
				m["format"] = BackupFormat + 1
				m["capstan"] = "v9.0.0"
				b, _ = json.Marshal(m)
				_ = os.WriteFile(p, b, 0o600)
			},
			target:  func(string) {},
			wantErr: ErrBackupTooNew, want: "v9.0.0",
		},
		{
			name: "checksum mismatch",
			backup: func(dir string) {
				f, _ := os.OpenFile(filepath.Join(dir, "EVENTS.snapshot"), os.O_APPEND|os.O_WRONLY, 0)
				_, _ = f.Write([]byte("x"))
				f.Close()
			},
			target:  func(string) {},
			wantErr: ErrBackupDamaged, want: "checksum mismatch in EVENTS.snapshot",
		},
		{
			name:    "missing file",
			backup:  func(dir string) { _ = os.Remove(filepath.Join(dir, "DLQ.json")) },
			target:  func(string) {},
			wantErr: ErrBackupDamaged, want: "DLQ.json",
		},
		{
			name:    "no manifest",
			backup:  func(dir string) { _ = os.Remove(filepath.Join(dir, ManifestFile)) },
			target:  func(string) {},
			wantErr: ErrBackupDamaged, want: ManifestFile,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := copyBackup(t, tt.backup)
			target := t.TempDir()
			tt.target(target)
			before, _ := os.ReadDir(target)
			_, err := Restore(ctx, Config{DataDir: target}, src, discard)
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want %v containing %q", err, tt.wantErr, tt.want)
			}
			after, _ := os.ReadDir(target)
			if len(after) != len(before) {
				t.Errorf("restore wrote into the data directory: %v", after)
			}
		})
	}
}

func TestBackupRefusesNonEmptyDir(t *testing.T) {
	eng, _ := openTest(t, Config{DataDir: t.TempDir()})
	out := t.TempDir()
	_ = os.WriteFile(filepath.Join(out, "x"), nil, 0o600)
	if _, err := eng.Backup(context.Background(), out, "dev"); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("got %v", err)
	}
}

func TestRestoreRefusedCreatesNothing(t *testing.T) {
	target := filepath.Join(t.TempDir(), "data")
	_, err := Restore(context.Background(), Config{DataDir: target}, t.TempDir(), discard)
	if !errors.Is(err, ErrBackupDamaged) {
		t.Fatalf("got %v, want ErrBackupDamaged", err)
	}
	if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused restore created the data directory: %v", err)
	}
}

func TestRestoreRefusesCluster(t *testing.T) {
	_, err := Restore(context.Background(), Config{URL: "nats://127.0.0.1:1"}, t.TempDir(), discard)
	if err == nil || !strings.Contains(err.Error(), "embedded engine only") {
		t.Errorf("got %v", err)
	}
}

// TestBackupOrder writes between the snapshots of a backup as capstan does
// while it serves, and checks that the restored state is one capstan can
// resume from: an import's resume point is never ahead of the events
// restored (its rows would be skipped, not in the stream), an event the
// restored consumer has acknowledged has its identity update in the
// backup, and no conversion whose sent-conversion record was written
// before the backup's last snapshot began is read again without that
// record (it would be sent again).
//
// Between two snapshots, an import stores one event and then its resume
// point in the state bucket; delivery acknowledges the event it marked at
// the previous step, reads the next, updates the identity graph and writes
// its sent-conversion record, leaving the acknowledgement for the next
// step, as a request's acceptance precedes its events' acknowledgements.
func TestBackupOrder(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	eng, app := openTest(t, Config{DataDir: dir, Listen: "127.0.0.1:0"})
	for i := range 30 {
		if _, err := app.Append(ctx, []record{rec("events.web.track", fmt.Sprintf("d%d", i))}); err != nil {
			t.Fatal(err)
		}
	}
	js := eng.JetStream()
	cons, err := js.CreateOrUpdateConsumer(ctx, EventsStream, jetstream.ConsumerConfig{
		Durable: "dlv", AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: "events.web.>",
	})
	if err != nil {
		t.Fatal(err)
	}
	kvs := map[string]jetstream.KeyValue{}
	for _, b := range []string{StateKV, IdentityKV, SuppressionKV, EventIDsKV, AcceptedKV} {
		if kvs[b], err = eng.KV(ctx, b, 0); err != nil {
			t.Fatal(err)
		}
	}

	cli, err := Attach(ctx, Config{DataDir: dir}, discard)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	var (
		imported int
		pending  jetstream.Msg
		marked   = map[uint64]string{} // stream sequence -> the snapshot it was marked after
		acked    = map[uint64]bool{}
		order    []string
	)
	cli.afterSnapshot = func(name string) {
		order = append(order, name)
		imported++
		if _, err := app.Append(ctx, []record{rec("events.imp.track", fmt.Sprintf("imp-%d", imported))}); err != nil {
			t.Error(err)
		}
		if _, err := kvs[StateKV].Put(ctx, "import.resume", fmt.Appendf(nil, "%d", imported)); err != nil {
			t.Error(err)
		}
		if pending != nil {
			if err := pending.DoubleAck(ctx); err != nil {
				t.Error(err)
			}
			md, _ := pending.Metadata()
			acked[md.Sequence.Stream] = true
		}
		batch, err := cons.FetchNoWait(1)
		if err != nil {
			t.Error(err)
			return
		}
		for m := range batch.Messages() {
			md, _ := m.Metadata()
			key := fmt.Sprintf("s%d", md.Sequence.Stream)
			if _, err := kvs[IdentityKV].Put(ctx, key, []byte("profile")); err != nil {
				t.Error(err)
			}
			if _, err := kvs[EventIDsKV].Put(ctx, key, []byte("A")); err != nil {
				t.Error(err)
			}
			marked[md.Sequence.Stream] = name
			pending = m
		}
	}
	out := filepath.Join(t.TempDir(), "backup")
	if _, err := cli.Backup(ctx, out, "dev"); err != nil {
		t.Fatal(err)
	}
	if t.Failed() {
		return
	}
	t.Logf("snapshot order: %v", order)

	target := filepath.Join(t.TempDir(), "data")
	if _, err := Restore(ctx, Config{DataDir: target}, out, discard); err != nil {
		t.Fatal(err)
	}
	r, err := Open(ctx, Config{DataDir: target}, discard)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rkv := func(bucket, key string) bool {
		kv, err := r.JetStream().KeyValue(ctx, bucket)
		if err != nil {
			t.Fatalf("bucket %s: %v", bucket, err)
		}
		_, err = kv.Get(ctx, key)
		return err == nil
	}

	// The import's resume point is not ahead of the restored events.
	stored := map[string]bool{}
	for _, m := range readAll(t, r, EventsStream) {
		if m.Subject == "events.imp.track" {
			stored[m.Header.Get("X-Test")] = true
		}
	}
	kv, err := r.JetStream().KeyValue(ctx, StateKV)
	if err != nil {
		t.Fatal(err)
	}
	resume := 0
	if e, err := kv.Get(ctx, "import.resume"); err == nil {
		resume, _ = strconv.Atoi(string(e.Value()))
	}
	for i := 1; i <= resume; i++ {
		if !stored[fmt.Sprintf("imp-%d", i)] {
			t.Errorf("the restored import resume point is row %d, but row %d is not in the restored stream: resuming would skip it", resume, i)
		}
	}

	// Delivery: what the restored consumer acknowledged has its graph
	// update; what it reads again has its sent-conversion record if that
	// was written before the last snapshot began.
	c, err := r.JetStream().Consumer(ctx, EventsStream, "dlv")
	if err != nil {
		t.Fatal(err)
	}
	floor := c.CachedInfo().AckFloor.Stream
	last := order[len(order)-1]
	for seq, after := range marked {
		key := fmt.Sprintf("s%d", seq)
		if seq <= floor && !rkv(IdentityKV, key) {
			t.Errorf("event %d is acknowledged in the restored stream, but its identity update (made after the %s snapshot) is not in the backup", seq, after)
		}
		if seq > floor && after != last && !rkv(EventIDsKV, key) {
			t.Errorf("event %d's conversion was recorded as sent after the %s snapshot, before the backup's last one, but the restored stream reads it again without the record: it would be sent again", seq, after)
		}
	}
	if len(marked) < 3 {
		t.Errorf("the test did too little: %d events marked", len(marked))
	}
}

// TestBackupLocalParts: a local part is written after its stream, listed
// with checksums (format 2), checked and restored into the data directory;
// a part with nothing to back up is left out.
func TestBackupLocalParts(t *testing.T) {
	ctx := context.Background()
	eng, _ := openTest(t, Config{DataDir: t.TempDir()})
	var order []string
	eng.afterSnapshot = func(s string) { order = append(order, s) }
	part := LocalPart{Name: "local", After: EventsStream, Write: func(_ context.Context, dir string) error {
		order = append(order, "local")
		if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o700); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, "sub", "f"), []byte("profile"), 0o600)
	}}
	none := LocalPart{Name: "none", After: EventsStream, Write: func(context.Context, string) error { return ErrNoLocalPart }}
	out := filepath.Join(t.TempDir(), "backup")
	m, err := eng.Backup(ctx, out, "v1", part, none)
	if err != nil {
		t.Fatal(err)
	}
	if m.Format != 2 || len(m.Local) != 1 || len(m.Local[0].Files) != 1 {
		t.Fatalf("manifest %+v", m)
	}
	if i := strings.Index(strings.Join(order, " "), EventsStream+" local"); i < 0 {
		t.Errorf("order %v: the part not right after %s", order, EventsStream)
	}
	if _, err := os.Stat(filepath.Join(out, "none")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the empty part left a directory: %v", err)
	}
	target := filepath.Join(t.TempDir(), "data")
	if _, err := Restore(ctx, Config{DataDir: target}, out, discard); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(target, "local", "sub", "f")); err != nil || string(b) != "profile" {
		t.Errorf("restored part: %q, %v", b, err)
	}
	if err := os.WriteFile(filepath.Join(out, "local", "sub", "f"), []byte("tampered"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadManifest(out); !errors.Is(err, ErrBackupDamaged) {
		t.Errorf("tampered part: %v", err)
	}
}

package stream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
	if got := strings.Join(names, ","); got != "EVENTS,DLQ,KV_state" {
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

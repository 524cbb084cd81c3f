package identity

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestMigrateBucketBatches: a bucket larger than a batch moves whole; a
// profile the store has already is kept as it is; the progress is logged
// (here after every batch), without a key or a profile in the log; a
// second run finds no bucket.
func TestMigrateBucketBatches(t *testing.T) {
	defer func(d time.Duration) { migrateProgress = d }(migrateProgress)
	migrateProgress = 0
	const n = 2*migrateBatch + 500
	ctx := context.Background()
	js := openJS(t)
	fillIdentityBucket(t, js, n)
	l := openLocal(t)
	mine := benchProfileKey(7)
	if _, err := l.put(ctx, mine, []byte(`{"v":1}`), 0, time.Now()); err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	got, err := MigrateBucket(ctx, js, "", l, slog.New(slog.NewTextHandler(&logged, nil)))
	if err != nil || got != n-1 {
		t.Fatalf("migrated %d (%v), want %d", got, err, n-1)
	}
	if s, err := l.get(ctx, mine); err != nil || string(s.data) != `{"v":1}` || s.rev != 1 {
		t.Errorf("the store's own profile after migration: %q rev %d (%v)", s.data, s.rev, err)
	}
	last := benchProfileKey(n - 1)
	if s, err := l.get(ctx, last); err != nil || !s.exists || s.rev != 1 || time.Since(s.at) > time.Minute {
		t.Errorf("the last profile after migration: %+v (%v)", s, err)
	}
	out := logged.String()
	if c := strings.Count(out, "moving the KV bucket\" "); c != 2 {
		t.Errorf("%d progress lines, want 2 (one per full batch):\n%s", c, out)
	}
	if !strings.Contains(out, "copied=2000 already_there=1") || !strings.Contains(out, "profiles=2499 already_there=1") {
		t.Errorf("log without the counts:\n%s", out)
	}
	if strings.Contains(out, last[2:18]) || strings.Contains(out, "AQEDAH") {
		t.Errorf("a key or a profile in the log:\n%s", out)
	}
	if got, err := MigrateBucket(ctx, js, "", l, nil); got != 0 || err != nil {
		t.Errorf("second migration: %d, %v", got, err)
	}
}

package delivery

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/internal/stream"
)

// BenchmarkMigrateGuardBucket moves a guard bucket of CAPSTAN_MIGRATE_KEYS
// claims (100,000 by default; the upgrade note's figure is measured with
// 1,000,000) into a local store: one migration per iteration (run with
// -benchtime=1x), reported in µs per key. The bucket is filled outside the
// timer, with asynchronous publishes as the jetstream guard store writes.
func BenchmarkMigrateGuardBucket(b *testing.B) {
	n := 100_000
	if s := os.Getenv("CAPSTAN_MIGRATE_KEYS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n <= 0 {
			b.Fatalf("CAPSTAN_MIGRATE_KEYS=%q: want a positive number", s)
		}
	}
	ctx := context.Background()
	var took time.Duration
	for range b.N {
		b.StopTimer()
		eng, err := stream.Open(ctx, stream.Config{DataDir: b.TempDir()}, slog.New(slog.DiscardHandler))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := eng.KV(ctx, GuardKV, GuardTTL); err != nil {
			b.Fatal(err)
		}
		js := eng.JetStream()
		for i := range n {
			if _, err := js.PublishAsync(guardSubject("li", "r1", "order-"+strconv.Itoa(i)), []byte("claim")); err != nil {
				b.Fatal(err)
			}
			if i%1000 == 999 {
				<-js.PublishAsyncComplete()
			}
		}
		<-js.PublishAsyncComplete()
		l, err := OpenGuardLocal(GuardLocalConfig{Dir: filepath.Join(b.TempDir(), "eventids")})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		got, err := MigrateGuardBucket(ctx, js, l, nil)
		took += time.Since(start)
		b.StopTimer()
		_ = l.Close()
		eng.Close()
		if err != nil || got != n {
			b.Fatalf("migrated %d (%v), want %d", got, err, n)
		}
	}
	b.ReportMetric(float64(took.Microseconds())/float64(b.N*n), "µs/key")
	b.ReportMetric(float64(b.N*n)/took.Seconds(), "keys/s")
}

package identity

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/capstan-gw/capstan/internal/stream"
)

// migrateBenchKeys is the number of profiles BenchmarkMigrateBucket moves:
// CAPSTAN_MIGRATE_KEYS, 100,000 by default (the upgrade note's figure is
// measured with 1,000,000).
func migrateBenchKeys(b *testing.B) int {
	n := 100_000
	if s := os.Getenv("CAPSTAN_MIGRATE_KEYS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n <= 0 {
			b.Fatalf("CAPSTAN_MIGRATE_KEYS=%q: want a positive number", s)
		}
	}
	return n
}

// benchProfileKey is the key of profile i: a user key, a SHA-256 as the
// graph's keys are (in no order).
func benchProfileKey(i int) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(i))
	sum := sha256.Sum256(b[:])
	return userPrefix + hex.EncodeToString(sum[:])
}

// fillIdentityBucket writes n profiles of the size a user profile has into
// the identity bucket, as the jetstream store does (one message per key on
// the bucket's subject), with asynchronous publishes.
func fillIdentityBucket(b testing.TB, js jetstream.JetStream, n int) {
	b.Helper()
	ctx := context.Background()
	if _, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: stream.IdentityKV, History: 1, Storage: jetstream.FileStorage}); err != nil {
		b.Fatal(err)
	}
	data := []byte(`{"v":1,"li":"AQEDAHTvX8WHkpcoAAABjWJ0Kq8AAAGNhoCurk0AbHq1mg","em":"2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae","up":1733400000000,"ln":["a.9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"]}`)
	for i := range n {
		if _, err := js.PublishAsync("$KV."+stream.IdentityKV+"."+benchProfileKey(i), data); err != nil {
			b.Fatal(err)
		}
		if i%1000 == 999 {
			<-js.PublishAsyncComplete()
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		b.Fatal("bucket fill: publishes not acknowledged")
	}
}

// BenchmarkMigrateBucket moves a bucket of CAPSTAN_MIGRATE_KEYS profiles
// into a local store: one migration per iteration (run with -benchtime=1x),
// reported in µs per profile. The bucket is filled outside the timer.
func BenchmarkMigrateBucket(b *testing.B) {
	n := migrateBenchKeys(b)
	ctx := context.Background()
	var took time.Duration
	for range b.N {
		b.StopTimer()
		js := openJS(b)
		fillIdentityBucket(b, js, n)
		l := openLocal(b)
		b.StartTimer()
		start := time.Now()
		got, err := MigrateBucket(ctx, js, "", l, nil)
		took += time.Since(start)
		if err != nil || got != n {
			b.Fatalf("migrated %d (%v), want %d", got, err, n)
		}
	}
	b.ReportMetric(float64(took.Microseconds())/float64(b.N*n), "µs/key")
	b.ReportMetric(float64(b.N*n)/took.Seconds(), "keys/s")
}

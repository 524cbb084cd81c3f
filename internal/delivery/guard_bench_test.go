package delivery

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/internal/stream"
)

// BenchmarkClaimMemory is the live heap a new eventId's claim leaves, on
// the KV bucket (the engine's file store keeps an index entry per key) and
// on the local store (bounded cache): b.N claims in batches of 1000, as
// the guard makes them. Run with a fixed count, e.g. -benchtime 200000x.
func BenchmarkClaimMemory(b *testing.B) {
	for _, store := range []string{"jetstream", "local"} {
		b.Run(store, func(b *testing.B) { benchClaimMemory(b, store) })
	}
}

func benchClaimMemory(b *testing.B, store string) {
	ctx := context.Background()
	eng, err := stream.Open(ctx, stream.Config{DataDir: b.TempDir()}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	var local *GuardLocal
	if store == "local" {
		if local, err = OpenGuardLocal(GuardLocalConfig{Dir: b.TempDir()}); err != nil {
			b.Fatal(err)
		}
		defer local.Close()
	}
	g, err := openGuard(ctx, eng, keyedStub{}, "", local)
	if err != nil {
		b.Fatal(err)
	}
	heap := func() uint64 {
		var ms runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	const chunk = 1000
	b.ResetTimer()
	for i := 0; i < b.N; {
		cg := newClaimGroup()
		checks := make([]*guardCheck, 0, chunk)
		for ; len(checks) < chunk && i < b.N; i++ {
			id := fmt.Sprintf("order-%d", i)
			subj := guardSubject("li", "rule", id)
			checks = append(checks, &guardCheck{subject: subj, key: subj[len(guardSubjectPrefix):], content: sha256.Sum256([]byte(id))})
		}
		g.check(ctx, cg, checks)
		for _, c := range checks {
			if c.err != nil || !c.mine {
				b.Fatalf("claim: %v (mine %v)", c.err, c.mine)
			}
		}
	}
	b.StopTimer()
	time.Sleep(time.Second) // the engine's asynchronous flushes
	after := heap()
	b.ReportMetric(float64(int64(after)-int64(before))/float64(b.N), "heap-B/claim")
	b.ReportMetric(float64(after)/(1<<20), "heap-MB")
}

// keyedStub makes a Format Keyed for openGuard (its methods are not used).
type keyedStub struct{ Format }

func (keyedStub) EventKey(Payload) (string, string, [32]byte, bool) { return "", "", [32]byte{}, false }

func (keyedStub) Rekey(p Payload, _ [32]byte) (Payload, string, error) { return p, "", nil }

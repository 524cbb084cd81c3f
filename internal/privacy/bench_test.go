package privacy

import (
	"fmt"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/internal/event"
)

// BenchmarkSuppressed is the check delivery makes of every event once any
// person has been suppressed: an event with userId, anonymousId and an
// email, against lists of n suppressed ids, none of them its own.
func BenchmarkSuppressed(b *testing.B) {
	ev, err := event.ParseString(`{"type":"track","event":"Order","userId":"user_12345","anonymousId":"3f0b0c3e-9c1d-4f1e-a1e7-6f2f9b1d2c44","context":{"traits":{"email":"john.doe@example.com"}}}`)
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{0, 1, 100000} {
		b.Run(fmt.Sprint("suppressed=", n), func(b *testing.B) {
			s := &Suppressions{cfg: SuppressionConfig{TTL: time.Hour, HashEmail: hashEmail, Now: time.Now}, until: map[hkey]time.Time{}}
			for i := range n {
				h, _ := parseKey(userPrefix + sha(fmt.Sprint("u", i)))
				s.until[h] = time.Now().Add(time.Hour)
			}
			b.ReportAllocs()
			for b.Loop() {
				if s.Suppressed(ev) {
					b.Fatal("suppressed")
				}
			}
		})
	}
}

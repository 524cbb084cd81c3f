package delivery

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/capstan-gw/capstan/internal/stream"
)

// LedgerKV is the key-value bucket of accepted counts: per destination,
// rule and UTC day of the conversion, how many conversions the remote
// accepted (and how many eventId collisions were found).
const LedgerKV = stream.AcceptedKV

// LedgerTTL is how long a day's count is kept after its last change: the
// 90 days a conversion may be sent late, plus reporting's 14.
const LedgerTTL = 104 * 24 * time.Hour

// DayLayout is the layout of Tally.Day.
const DayLayout = "2006-01-02"

// Tally is one destination's count for one rule and UTC day.
type Tally struct {
	Destination string `json:"destination"`
	// Rule is the destination's id of the rule the conversions fed
	// (Route.Rule).
	Rule string `json:"rule"`
	// Day is the UTC day the conversions happened (YYYY-MM-DD): the day
	// LinkedIn's reporting files them under (spec §21.9).
	Day string `json:"day"`
	// Accepted counts conversions the remote accepted (2xx).
	Accepted int64 `json:"accepted"`
	// Collisions counts eventId collisions: sent under a derived eventId
	// (suffix, also in Accepted) or dead-lettered (dead_letter).
	Collisions int64 `json:"collisions,omitempty"`
	// FirstSent and LastSent are when the first and the latest of them were
	// accepted (Unix ms).
	FirstSent int64 `json:"first_sent,omitempty"`
	LastSent  int64 `json:"last_sent,omitempty"`
}

// Ledger keeps accepted counts durably in the engine, updated when the
// remote accepts a request; reconciliation (capstan reconcile) compares them
// with what the remote reports. Safe for concurrent use.
type Ledger struct {
	kv  jetstream.KeyValue
	now func() time.Time
	mu  sync.Mutex // serialises read-modify-write of this process
}

// OpenLedger opens (creating when missing) the ledger's bucket.
func OpenLedger(ctx context.Context, eng *stream.Engine) (*Ledger, error) {
	kv, err := eng.KV(ctx, LedgerKV, LedgerTTL)
	if err != nil {
		return nil, err
	}
	return &Ledger{kv: kv, now: time.Now}, nil
}

func ledgerDest(dest string) string {
	sum := sha256.Sum256([]byte(dest))
	return hex.EncodeToString(sum[:8])
}

func ledgerKey(dest, rule, day string) string {
	sum := sha256.Sum256([]byte(rule))
	return "a." + ledgerDest(dest) + "." + hex.EncodeToString(sum[:8]) + "." + day
}

// dayOf is the UTC day of t (now when t is zero).
func dayOf(t, now time.Time) string {
	if t.IsZero() {
		t = now
	}
	return t.UTC().Format(DayLayout)
}

// Add adds tallies (Rule, Day, Accepted, Collisions; LastSent when they
// were accepted, zero: now) to dest's counts. A failure is returned; the counts are then short (the
// reconciliation shows a higher ratio), never the delivery.
func (l *Ledger) Add(ctx context.Context, dest string, ts []Tally) error {
	sum := map[[2]string]Tally{}
	var order [][2]string
	for _, t := range ts {
		k := [2]string{t.Rule, t.Day}
		old, ok := sum[k]
		if !ok {
			order = append(order, k)
		}
		old.Accepted += t.Accepted
		old.Collisions += t.Collisions
		old.LastSent = max(old.LastSent, t.LastSent)
		sum[k] = old
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now().UnixMilli()
	var errs []error
	for _, k := range order {
		add := sum[k]
		key := ledgerKey(dest, k[0], k[1])
		var err error
		for attempt := range ledgerAttempts {
			if attempt > 0 {
				// A conflict: another writer, or a read served by a
				// follower that had not caught up (an R3 bucket reads
				// from any replica). Back off before reading again.
				t := time.NewTimer(time.Duration(rand.Int64N(int64(5*time.Millisecond) << min(attempt, 6))))
				select {
				case <-ctx.Done():
					t.Stop()
					return errors.Join(append(errs, ctx.Err())...)
				case <-t.C:
				}
			}
			var cur Tally
			var rev uint64
			e, gerr := l.kv.Get(ctx, key)
			switch {
			case gerr == nil:
				if jerr := json.Unmarshal(e.Value(), &cur); jerr != nil {
					cur = Tally{} // unreadable: start again rather than stop counting
				}
				rev = e.Revision()
			case !errors.Is(gerr, jetstream.ErrKeyNotFound):
				err = gerr
			}
			if err != nil {
				break
			}
			cur.Destination, cur.Rule, cur.Day = dest, k[0], k[1]
			cur.Accepted += add.Accepted
			cur.Collisions += add.Collisions
			if add.Accepted > 0 {
				at := now
				if add.LastSent > 0 {
					at = add.LastSent
				}
				if cur.FirstSent == 0 {
					cur.FirstSent = at
				}
				cur.LastSent = max(cur.LastSent, at)
			}
			b, _ := json.Marshal(cur)
			if rev == 0 {
				_, err = l.kv.Create(ctx, key, b)
			} else {
				_, err = l.kv.Update(ctx, key, b, rev)
			}
			if err == nil || !(errors.Is(err, jetstream.ErrKeyExists) || isWrongSequence(err)) {
				break
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("accepted count of rule %s on %s: %w", k[0], k[1], err))
		}
	}
	return errors.Join(errs...)
}

// ledgerAttempts bounds the compare-and-set attempts of one count.
const ledgerAttempts = 10

// isWrongSequence reports whether err is a KV update's revision conflict
// (another writer changed the key since it was read): code 10071 on a
// single-replica bucket, 10164 on a replicated one.
func isWrongSequence(err error) bool {
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// Tallies returns dest's counts for days from since (a UTC day, inclusive)
// on, sorted by rule and day.
func (l *Ledger) Tallies(ctx context.Context, dest string, since time.Time) ([]Tally, error) {
	from := since.UTC().Format(DayLayout)
	lister, err := l.kv.ListKeysFiltered(ctx, "a."+ledgerDest(dest)+".>")
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return nil, nil
		}
		return nil, fmt.Errorf("list accepted counts: %w", err)
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	var out []Tally
	for _, k := range keys {
		if len(k) < len(DayLayout) || k[len(k)-len(DayLayout):] < from {
			continue
		}
		e, err := l.kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read accepted count %s: %w", k, err)
		}
		var t Tally
		if json.Unmarshal(e.Value(), &t) != nil || t.Day < from {
			continue
		}
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b Tally) int {
		if a.Rule != b.Rule {
			if a.Rule < b.Rule {
				return -1
			}
			return 1
		}
		if a.Day < b.Day {
			return -1
		}
		if a.Day > b.Day {
			return 1
		}
		return 0
	})
	return out, nil
}

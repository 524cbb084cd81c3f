package privacy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/capstan-gw/capstan/internal/audit"
	"github.com/capstan-gw/capstan/internal/event"
	"github.com/capstan-gw/capstan/internal/identity"
	"github.com/capstan-gw/capstan/internal/stream"
)

// ErrBadRequest means a Request names no id or more than one.
var ErrBadRequest = errors.New("give exactly one of userId, anonymousId and email")

// maxFound bounds the ids an email-only deletion takes from the events that
// carry the email.
const maxFound = 1000

// Request names the person to delete: exactly one of UserID, AnonymousID
// and Email.
type Request struct {
	UserID      string
	AnonymousID string
	Email       string
	// EmailSHA256 names the person by the SHA-256 (lower-case hex) of
	// their normalised email instead, as the console sends it (it hashes
	// the email in the browser).
	EmailSHA256 string
	// By is who asks, for the audit record: "cli" or the admin principal.
	By string
}

// Report is what a deletion did.
type Report struct {
	// IDKind is the kind of id the request named (Kind*); IDSHA256 the
	// SHA-256 of that id, as the audit record holds it.
	IDKind   string `json:"idKind"`
	IDSHA256 string `json:"idSha256"`
	// GraphKeysRemoved counts the identity graph's profiles removed.
	GraphKeysRemoved int `json:"graphKeysRemoved"`
	// EventsDeleted and DeadLettersDeleted count the erased messages of
	// EVENTS and DLQ.
	EventsDeleted      int `json:"eventsDeleted"`
	DeadLettersDeleted int `json:"deadLettersDeleted"`
	// Suppressed counts the ids suppressed (0 with privacy.suppress off).
	Suppressed int `json:"suppressed"`
	// Seconds is how long the deletion took, most of it reading EVENTS.
	Seconds float64 `json:"seconds"`
}

// Deleter carries out privacy deletions.
type Deleter struct {
	eng       *stream.Engine
	graph     *identity.Graph
	sup       *Suppressions
	hashEmail func(string) (string, bool)
	log       *slog.Logger
}

// NewDeleter returns a Deleter. sup nil means suppression is off; hashEmail
// is required; log may be nil.
func NewDeleter(eng *stream.Engine, graph *identity.Graph, sup *Suppressions, hashEmail func(string) (string, bool), log *slog.Logger) (*Deleter, error) {
	if eng == nil || graph == nil || hashEmail == nil {
		return nil, errors.New("privacy: engine, identity graph and email hash are required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Deleter{eng: eng, graph: graph, sup: sup, hashEmail: hashEmail, log: log.With("component", "privacy")}, nil
}

// Delete erases the person req names: identity graph, events, dead letters;
// suppresses their ids; and records the deletion in the audit log, also
// when it fails part way (with what was done). It is safe to repeat: a
// person capstan knows nothing about is deleted with zero counts.
func (d *Deleter) Delete(ctx context.Context, req Request) (Report, error) {
	start := time.Now()
	rep, err := d.delete(ctx, req)
	rep.Seconds = time.Since(start).Seconds()
	if errors.Is(err, ErrBadRequest) {
		return rep, err
	}
	rec := audit.Record{
		At: start.UTC(), By: req.By, Action: audit.ActionPrivacyDelete,
		IDKind: rep.IDKind, IDSHA256: rep.IDSHA256,
		Result: map[string]int{
			"graphKeysRemoved":   rep.GraphKeysRemoved,
			"eventsDeleted":      rep.EventsDeleted,
			"deadLettersDeleted": rep.DeadLettersDeleted,
			"suppressed":         rep.Suppressed,
		},
	}
	if err != nil {
		rec.Error = err.Error()
	}
	// The audit record is written even when ctx ended: the deletion may
	// have done part of its work.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if aerr := audit.Append(actx, d.eng, rec); aerr != nil {
		return rep, errors.Join(err, aerr)
	}
	d.log.Info("privacy deletion", "by", req.By, "id_kind", rep.IDKind, "graph_keys_removed", rep.GraphKeysRemoved,
		"events_deleted", rep.EventsDeleted, "dead_letters_deleted", rep.DeadLettersDeleted, "suppressed", rep.Suppressed)
	return rep, err
}

func (d *Deleter) delete(ctx context.Context, req Request) (Report, error) {
	var rep Report
	keys := set{}
	var graphKeys []identity.Key
	uid, aid, email := strings.TrimSpace(req.UserID), strings.TrimSpace(req.AnonymousID), strings.TrimSpace(req.Email)
	emailHash := strings.TrimSpace(req.EmailSHA256)
	if emailHash != "" && !IsSHA256(emailHash) {
		return rep, ErrBadRequest
	}
	n := 0
	for _, s := range []string{uid, aid, email, emailHash} {
		if s != "" {
			n++
		}
	}
	if n != 1 {
		return rep, ErrBadRequest
	}
	switch {
	case uid != "":
		rep.IDKind, rep.IDSHA256 = KindUserID, sha(uid)
		keys[identity.UserKey(uid)] = true
		graphKeys = append(graphKeys, identity.Key{UserID: uid})
	case aid != "":
		rep.IDKind, rep.IDSHA256 = KindAnonymousID, sha(aid)
		keys[identity.AnonymousKey(aid)] = true
		graphKeys = append(graphKeys, identity.Key{AnonymousID: aid})
	case emailHash != "":
		rep.IDKind, rep.IDSHA256 = KindEmail, emailHash
		keys[emailPrefix+emailHash] = true
	default:
		h, ok := d.hashEmail(email)
		if !ok {
			return rep, ErrBadRequest
		}
		rep.IDKind, rep.IDSHA256 = KindEmail, h
		keys[emailPrefix+h] = true
	}
	// Suppress first, so that events delivered while the deletion runs
	// neither reach a destination nor teach the graph again.
	if err := d.suppress(ctx, keys, &rep); err != nil {
		return rep, err
	}
	if rep.IDKind == KindEmail {
		// The graph has no index by email: the events that carry it name
		// the ids to delete.
		found, err := d.idsWithEmail(ctx, keys)
		if err != nil {
			return rep, err
		}
		for _, k := range found {
			if k.UserID != "" {
				keys[identity.UserKey(k.UserID)] = true
			} else {
				keys[identity.AnonymousKey(k.AnonymousID)] = true
			}
		}
		graphKeys = append(graphKeys, found...)
	}
	for _, k := range graphKeys {
		if err := d.deleteGraph(ctx, k, keys, &rep); err != nil {
			return rep, err
		}
	}
	if err := d.suppress(ctx, keys, &rep); err != nil {
		return rep, err
	}
	var err error
	rep.EventsDeleted, err = d.eng.DeleteEvents(ctx, func(s stream.Stored) bool {
		return keys.matchesDoc(s.Doc, d.hashEmail)
	})
	if err != nil {
		return rep, err
	}
	rep.DeadLettersDeleted, err = d.eng.DeleteDeadLetters(ctx, func(dl stream.DeadLetter) bool {
		var doc struct {
			Event json.RawMessage `json:"event"`
		}
		if json.Unmarshal(dl.Doc, &doc) != nil {
			return false
		}
		return keys.matchesDoc(doc.Event, d.hashEmail)
	})
	return rep, err
}

// suppress stores the keys not suppressed yet; a no-op with suppression off.
func (d *Deleter) suppress(ctx context.Context, keys set, rep *Report) error {
	if d.sup == nil {
		return nil
	}
	var add []string
	for k := range keys {
		add = append(add, k)
	}
	n, err := d.sup.Add(ctx, add)
	rep.Suppressed = max(rep.Suppressed, n)
	return err
}

// deleteGraph removes k and its linked profiles from the graph, adding to
// keys the profiles removed and the emails they held.
func (d *Deleter) deleteGraph(ctx context.Context, k identity.Key, keys set, rep *Report) error {
	p, err := d.graph.Show(ctx, k)
	if errors.Is(err, identity.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read identity graph: %w", err)
	}
	removed, err := d.graph.Delete(ctx, k)
	if err != nil && !errors.Is(err, identity.ErrNotFound) {
		return fmt.Errorf("delete from identity graph: %w", err)
	}
	rep.GraphKeysRemoved += len(removed)
	gone := set{}
	for _, r := range removed {
		keys[r] = true
		gone[r] = true
	}
	for _, q := range append([]identity.Profile{p}, p.Linked...) {
		if !gone[q.Key] {
			continue
		}
		for _, h := range emailsOf(q) {
			keys[emailPrefix+h] = true
		}
	}
	return nil
}

func emailsOf(p identity.Profile) []string {
	var out []string
	if p.EmailSHA256 != "" {
		out = append(out, p.EmailSHA256)
	}
	for _, u := range p.Unverified {
		if u.EmailSHA256 != "" {
			out = append(out, u.EmailSHA256)
		}
	}
	return out
}

// idsWithEmail returns the userIds and anonymousIds of the stored events
// that carry an email of keys, at most maxFound: of an unverified browser
// event (stream.TrustUnverified) only the anonymousId.
func (d *Deleter) idsWithEmail(ctx context.Context, keys set) ([]identity.Key, error) {
	seen := map[identity.Key]bool{}
	var out []identity.Key
	err := d.eng.ReadEvents(ctx, stream.ReadOptions{}, func(s stream.Stored) error {
		if len(out) >= maxFound {
			return nil
		}
		ev, err := event.Parse(s.Doc)
		if err != nil || !keys.matches(ev, d.hashEmail) {
			return nil
		}
		ks := []identity.Key{{AnonymousID: str(ev, "anonymousId")}}
		if s.Trust != stream.TrustUnverified {
			// Anyone can send a browser source's events: an unverified
			// one could tie someone else's userId to the email.
			ks = append(ks, identity.Key{UserID: str(ev, "userId")})
		}
		for _, k := range ks {
			if (k.UserID != "" || k.AnonymousID != "") && !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("find the ids of an email: %w", err)
	}
	return out, nil
}

// FindEmail returns the userIds and anonymousIds of the stored events that
// carry the email whose normalised SHA-256 is emailSHA256 (lower-case
// hex), as a deletion by email finds them: it reads every stored event.
func (d *Deleter) FindEmail(ctx context.Context, emailSHA256 string) ([]identity.Key, error) {
	if !IsSHA256(emailSHA256) {
		return nil, ErrBadRequest
	}
	return d.idsWithEmail(ctx, set{emailPrefix + emailSHA256: true})
}

// IsSHA256 reports whether s is a SHA-256 in lower-case hex.
func IsSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func str(ev event.Value, name string) string {
	s, _ := ev.Get(name).Str()
	return s
}

package ingest

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"

	"github.com/capstan-gw/capstan/internal/event"
	"github.com/capstan-gw/capstan/internal/stream"
)

// Identity trust (config.Source.Trust, identity_verification).
//
// Every stored event carries a trust (stream.Event.Trust), decided here from
// the source's configuration and the request, never from the event's body:
//
//   - a server source's event is stream.TrustServer;
//   - a browser source's event is stream.TrustVerified when its userId comes
//     with context.capstan.userHash, the lower-case hex HMAC-SHA256 of the
//     userId (as sent; a number as its decimal text) with the source's
//     identity_verification.secret, compared in constant time; otherwise
//     stream.TrustUnverified. An alias is never verified: the hash vouches
//     for the userId, not for the previousId it would take over.
//
// A source with trust unset and no allowed_origins is a server's, but its
// requests that carry an Origin header (browsers send one with every POST)
// are a browser's. The identity graph lets an unverified event's links
// enrich only its own source's conversions.
//
// The userHash is removed from every stored document, whatever the source:
// it is a credential for its userId and has no use after this check.

// userHashKey is the key of the userHash under context.capstan.
const userHashKey = "userHash"

// browserTrust reports whether the source's events in a request with (or
// without) an Origin header are a browser's.
func (s *source) browserTrust(hasOrigin bool) bool {
	return s.cfg.BrowserTrust() || s.cfg.Trust == "" && hasOrigin
}

// trust returns the stream trust of an event of type typ with userId user
// and the given userHash ("" for none), sent by a browser or not.
func (s *source) trust(browser bool, typ event.Type, user, hash string) string {
	switch {
	case !browser:
		return stream.TrustServer
	case s.secret != nil && typ != event.Alias && user != "" && hash != "" && validUserHash(s.secret, user, hash):
		return stream.TrustVerified
	}
	return stream.TrustUnverified
}

// validUserHash reports whether hash is the hex HMAC-SHA256 of user with
// secret. The comparison takes the same time whatever the hash holds.
func validUserHash(secret []byte, user, hash string) bool {
	got, err := hex.DecodeString(hash)
	if err != nil || len(got) != sha256.Size {
		return false
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(user))
	return hmac.Equal(got, m.Sum(nil))
}

// eventUserHash is takeUserHash of ev's stored document, which it need not
// search when normalising found no member capstan in the context
// (ev.NoCapstan): its two scans of every document were 1.25% of capstan's
// CPU on batches.
func eventUserHash(ev *event.Event) (hash string, doc []byte, present bool) {
	if ev.NoCapstan {
		return "", ev.JSON, false
	}
	return takeUserHash(ev.JSON)
}

// takeUserHash returns context.capstan.userHash of the stored document doc
// ("" when absent or not a string) and doc without it (and without
// context.capstan when nothing else is left in it). present reports whether
// the document held a userHash at all.
func takeUserHash(doc []byte) (hash string, out []byte, present bool) {
	if !hasUserHashKey(doc) {
		return "", doc, false
	}
	v, err := event.Parse(doc)
	if err != nil {
		return "", doc, false
	}
	ctx := v.Get("context")
	cs := ctx.Get("capstan")
	h := cs.Get(userHashKey)
	if h.IsUndefined() {
		return "", doc, false
	}
	if s, ok := h.Str(); ok {
		hash = s
	}
	cs = without(cs, userHashKey, event.Value{})
	if cs.Len() == 0 {
		cs = event.Value{} // undefined: left out
	}
	ctx = without(ctx, "capstan", cs)
	return hash, without(v, "context", ctx).AppendJSON(make([]byte, 0, len(doc))), true
}

// userHashLit is what takeUserHash looks for first, and userHashAt the
// index in it of the byte it anchors the search on: 'H', rare in events,
// where the quote that bytes.Contains would anchor on is everywhere (it
// cost 4% of ingest's CPU per event).
const (
	userHashLit = `"` + userHashKey + `"`
	userHashAt  = 5
)

// hasUserHashKey reports whether doc may hold a userHash key: it holds
// userHashLit, or a \u escape, which may spell the key (stored documents
// keep keys as the client wrote them, and "user\u0048ash" is the same
// key). The escape sends a few documents through takeUserHash's parse for
// nothing (clients that escape every non-ASCII character), so that no
// userHash is ever stored.
func hasUserHashKey(doc []byte) bool {
	return hasUserHashLit(doc) || bytes.Contains(doc, []byte(`\u`))
}

// hasUserHashLit is bytes.Contains(doc, userHashLit).
func hasUserHashLit(doc []byte) bool {
	for i := userHashAt; i < len(doc); i++ {
		j := bytes.IndexByte(doc[i:], userHashLit[userHashAt])
		if j < 0 {
			return false
		}
		i += j
		if start := i - userHashAt; start+len(userHashLit) <= len(doc) && string(doc[start:start+len(userHashLit)]) == userHashLit {
			return true
		}
	}
	return false
}

// without returns the object obj with key's value replaced by repl; an
// undefined repl removes the key.
func without(obj event.Value, key string, repl event.Value) event.Value {
	ms := make([]event.Member, 0, obj.Len())
	for i := range obj.Len() {
		m := obj.At(i)
		if m.Key == key {
			if repl.IsUndefined() {
				continue
			}
			m.Value = repl
		}
		ms = append(ms, m)
	}
	return event.ObjectOfDistinct(ms)
}

package stream

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// The storage format of EVENTS before segments (segment.go), still read.
//
// One event is one message on subject events.<source>.<type> whose data is
// the normalised JSON document; its Nats-Msg-Id is <source>:<messageId>, or
// an explicit id for events stored again on purpose (a DLQ replay). The
// facts of the request that carried it travel as headers, set only when
// they have a value. Releases since segments write no such message (the
// encoder below serves tests of the mixed read); segments carry the same
// facts in their frame and keep headerSource.
const (
	headerSource    = "Capstan-Source"     // the source name
	headerRequestID = "Capstan-Request-Id" // the HTTP request that carried it
	headerUserAgent = "Capstan-User-Agent" // the sending client's User-Agent
	headerLiFatID   = "Capstan-Li-Fat-Id"  // li_fat_id from the capstan_lfi cookie of the request
	headerReplayFor = "Capstan-Replay-For" // a DLQ replay: the one destination that processes it
	headerTrust     = "Capstan-Trust"      // how far the event's identity links are trusted (Trust*)
)

// Trust of a stored event (Event.Trust): how far the identity graph may
// believe the links the event makes between its userId and other ids,
// email or li_fat_id. Ingest decides it from the source's configuration and
// the request; it is never read from the event's body.
const (
	// TrustServer: a server source's event; its links serve every source.
	TrustServer = "server"
	// TrustVerified: a browser source's event whose userId the site's back
	// end signed (identity verification); its links serve every source.
	TrustVerified = "verified"
	// TrustUnverified: any other event of a browser source; its links serve
	// only its own source's conversions.
	TrustUnverified = "unverified"
)

// maxHeaderValue bounds a stored header value, in bytes.
const maxHeaderValue = 512

// Event is one normalised event to store, with the facts of the request
// that carried it. Producers (HTTP ingest, DLQ replay, import) hand events
// to a Writer, which alone decides how they are stored.
type Event struct {
	// Source is the name of the source that sent the event.
	Source string
	// Type is the event type (track, page, identify, group, alias, screen).
	Type string
	// MessageID is the event's messageId. Events of one source with the
	// same MessageID are stored once within the de-duplication window.
	MessageID string
	// Doc is the normalised JSON document, stored as it is.
	Doc []byte

	// RequestID identifies the request that carried the event; "" for none.
	RequestID string
	// UserAgent is the sending client's User-Agent; "" for none. It is
	// stored without control characters and cut to 512 bytes.
	UserAgent string
	// LiFatID is the li_fat_id of the request's capstan_lfi cookie; "" for
	// none.
	LiFatID string
	// ReplayFor, for an event replayed from the DLQ, is the one destination
	// that processes it; "" for every destination.
	ReplayFor string
	// Trust is one of the Trust* constants; "" for none (events stored
	// before capstan knew it read back with Trust "").
	Trust string
	// DedupID, when set, replaces Source and MessageID as the event's
	// de-duplication key: for events stored again on purpose (a DLQ replay
	// uses "replay:<destination>:<dead letter seq>").
	DedupID string
}

// Stored is one event as stored, with its position in the stream.
type Stored struct {
	// Seq is the stream sequence of the message that holds the event: a
	// segment holds several events, so Seq alone identifies an event only
	// with Index (Pos).
	Seq uint64
	// Index is the event's index in its segment; 0 for an event stored as
	// a message of its own by an older release.
	Index int
	// Subject is the stream subject (events.<source>.seg for a segment,
	// events.<source>.<type> for an older release's message).
	Subject string
	// Source and Type are the event's source name and type.
	Source, Type string
	// MessageID is the event's messageId ("" for events stored again on
	// purpose with a DedupID). For events of older releases it is read
	// from the message's de-duplication id.
	MessageID string
	// DedupID is the de-duplication id that replaced (Source, MessageID),
	// if any (Event.DedupID).
	DedupID string
	// StoredAt is when the stream stored the event.
	StoredAt time.Time
	// Doc is the stored JSON document, exactly as kept. Readers do not
	// modify it: an event read from a segment shares its bytes with its
	// strings (DocString).
	Doc []byte

	// RequestID, UserAgent, LiFatID, ReplayFor and Trust are the facts
	// stored with the event (see Event); "" when absent.
	RequestID, UserAgent, LiFatID, ReplayFor, Trust string

	// DuplicateOf, set by readers that mark duplicates
	// (ReadOptions.MarkDuplicates, ReadEventRange), is the position of the
	// earlier event with the same (source, messageId) that consumers
	// deliver instead of this one (cluster mode: first in stream order
	// wins); 0 when this one is not a duplicate or no verdict was had.
	DuplicateOf Pos

	// docText is Doc as a string when the reader holds one (segments:
	// segEvent.fill), "" otherwise; see DocString.
	docText string
}

// DocString returns Doc as a string, for event.ParseString: without a
// copy when the reader already made one (an event of a segment, whose
// strings and Doc share one copy of its bytes), else a copy of Doc.
func (s *Stored) DocString() string {
	if s.docText != "" {
		return s.docText
	}
	return string(s.Doc)
}

// Pos returns the event's position (Seq and Index packed).
func (s *Stored) Pos() Pos { return MakePos(s.Seq, s.Index) }

// subject returns the stream subject of an event: events.<source>.<type>.
func subject(source, typ string) string { return EventsSubject + "." + source + "." + typ }

// dedupID returns the de-duplication id (Nats-Msg-Id) of (source,
// messageID). Ids that cannot travel in a NATS header (control characters)
// are hashed.
func dedupIDOf(source, messageID string) string {
	return source + ":" + dedupSuffix(messageID)
}

// dedupSuffix is dedupIDOf(source, messageID) after its "source:": the
// messageId itself unless it holds control characters.
func dedupSuffix(messageID string) string {
	if hasControl(messageID) {
		sum := sha256.Sum256([]byte(messageID))
		return "sha256:" + hex.EncodeToString(sum[:])
	}
	return messageID
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return true
		}
	}
	return false
}

// validToken reports whether s can be one token of a subject.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f || c == '.' || c == '*' || c == '>' {
			return false
		}
	}
	return true
}

// headerValue makes s safe to store as a header value: no control
// characters, at most maxHeaderValue bytes.
func headerValue(s string) string {
	if len(s) > maxHeaderValue {
		s = s[:maxHeaderValue]
	}
	if !hasControl(s) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

// checkEvent reports why ev cannot be stored, or nil.
func checkEvent(ev *Event) error {
	var errs []error
	if !validToken(ev.Source) {
		errs = append(errs, fmt.Errorf("source %q is not a valid subject token", ev.Source))
	}
	if !validToken(ev.Type) {
		errs = append(errs, fmt.Errorf("event type %q is not a valid subject token", ev.Type))
	}
	if hasControl(ev.DedupID) {
		errs = append(errs, fmt.Errorf("de-duplication id %q holds control characters", ev.DedupID))
	}
	return errors.Join(errs...)
}

// encoder builds the records of events. Events that follow one another
// with the same source and type, or the same request facts, share one
// subject string and one header map (records treat headers as read-only):
// the events of one request cost one of each.
type encoder struct {
	src, typ, subj string
	facts          *Event // whose facts hdr holds
	hdr            nats.Header
}

func (c *encoder) record(ev *Event) record {
	if c.subj == "" || ev.Source != c.src || ev.Type != c.typ {
		c.src, c.typ, c.subj = ev.Source, ev.Type, subject(ev.Source, ev.Type)
	}
	if c.facts == nil || !sameFacts(ev, c.facts) {
		c.facts, c.hdr = ev, header(ev)
	}
	id := ev.DedupID
	if id == "" && ev.MessageID != "" {
		id = dedupIDOf(ev.Source, ev.MessageID)
	}
	return record{Subject: c.subj, MsgID: id, Header: c.hdr, Data: ev.Doc}
}

func sameFacts(a, b *Event) bool {
	return a.Source == b.Source && a.RequestID == b.RequestID && a.UserAgent == b.UserAgent &&
		a.LiFatID == b.LiFatID && a.ReplayFor == b.ReplayFor && a.Trust == b.Trust
}

// header returns the headers that carry ev's source and request facts.
func header(ev *Event) nats.Header {
	h := make(nats.Header, 6)
	h.Set(headerSource, ev.Source)
	for _, f := range [...]struct{ key, value string }{
		{headerRequestID, ev.RequestID},
		{headerUserAgent, ev.UserAgent},
		{headerLiFatID, ev.LiFatID},
		{headerReplayFor, ev.ReplayFor},
		{headerTrust, ev.Trust},
	} {
		if f.value != "" {
			h.Set(f.key, headerValue(f.value))
		}
	}
	return h
}

// decodeStored reads a stored event message.
func decodeStored(seq uint64, subj string, h nats.Header, data []byte, at time.Time) Stored {
	s := Stored{
		Seq: seq, Subject: subj, StoredAt: at, Doc: data,
		Source:    h.Get(headerSource),
		RequestID: h.Get(headerRequestID),
		UserAgent: h.Get(headerUserAgent),
		LiFatID:   h.Get(headerLiFatID),
		ReplayFor: h.Get(headerReplayFor),
		Trust:     h.Get(headerTrust),
	}
	rest := strings.TrimPrefix(subj, EventsSubject+".")
	if i := strings.LastIndexByte(rest, '.'); i >= 0 {
		s.Type = rest[i+1:]
		if s.Source == "" {
			s.Source = rest[:i]
		}
	}
	if id := h.Get(nats.MsgIdHdr); id != "" {
		if m, ok := strings.CutPrefix(id, s.Source+":"); ok {
			s.MessageID = m
		} else {
			s.DedupID = id
		}
	}
	return s
}

// keyOf returns what an event's de-duplication key hashes: its source and
// the part of its de-duplication id after it, or "" and its DedupID; ok is
// false for an event without either (it is never de-duplicated). Events of
// older releases and segments give the same for the same event.
func keyOf(source, messageID, dedupID string) (src, id string, ok bool) {
	switch {
	case dedupID != "":
		return "", dedupID, true
	case messageID != "":
		return source, dedupSuffix(messageID), true // allocates nothing for most ids
	}
	return "", "", false
}

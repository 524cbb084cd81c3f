package event

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits of segment-ingest.md §1.3, measured on decompressed bytes.
const (
	MaxRequestBytes = 512000 // a whole POST body
	MaxEventBytes   = 32768  // a single-event body, or one batch item's raw JSON
	MaxBatchItems   = 2500   // items in batch[]
	MaxMetricsBytes = 65536  // a /v1/m body
	MaxMessageIDLen = 100    // characters
)

// Type is a Segment event type.
type Type string

// The six event types.
const (
	Track    Type = "track"
	Page     Type = "page"
	Screen   Type = "screen"
	Identify Type = "identify"
	Group    Type = "group"
	Alias    Type = "alias"
)

// ParseType returns the type named s (ASCII case-insensitive).
func ParseType(s string) (Type, bool) {
	switch t := Type(strings.ToLower(s)); t {
	case Track, Page, Screen, Identify, Group, Alias:
		return t, true
	}
	return "", false
}

// Drop codes of §2.5 and §1.3: why one event was not stored.
const (
	CodeInvalidEvent     = "invalid_event"
	CodeEventTooLarge    = "event_too_large"
	CodeMissingType      = "missing_type"
	CodeInvalidType      = "invalid_type"
	CodeInvalidID        = "invalid_id"
	CodeMissingIdentity  = "missing_identity"
	CodeMissingPrevious  = "missing_previous_id"
	CodeMissingEvent     = "missing_event"
	CodeMissingGroupID   = "missing_group_id"
	CodeInvalidField     = "invalid_field"
	CodeInvalidMessageID = "invalid_message_id"
)

// DropError says why one event was dropped. It is reported in the 200
// response body; it never fails the request.
type DropError struct {
	Code    string
	Message string
}

func (e *DropError) Error() string { return e.Code + ": " + e.Message }

func drop(code, format string, args ...any) *DropError {
	return &DropError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Envelope is what a batch request shares with its items (§1.6).
type Envelope struct {
	SentAt       time.Time // zero when absent or unparsable
	Context      []byte    // raw JSON object, or nil
	Integrations []byte    // raw JSON object, or nil
}

// Request is the per-request input of Normalize.
type Request struct {
	// ReceivedAt is capstan's clock when the request's headers were read.
	ReceivedAt time.Time
	// ClientIP fills context.ip when the event has none ("" to leave it out).
	ClientIP string
	// Envelope holds batch-level values (zero for single-event endpoints).
	Envelope Envelope
}

// Event is one validated, normalised event ready to be stored.
type Event struct {
	Type        Type
	MessageID   string
	UserID      string // "" when absent
	AnonymousID string // "" when absent
	// Generated reports that capstan made up MessageID (the event had none).
	Generated bool
	// JSON is the stored document (§2.8).
	JSON []byte
}

// Normalize validates one event (rules of §2.5 in order) and builds its
// stored form. forced is the type of a single-event endpoint ("" for batch
// items, whose own type is checked). raw must be valid JSON.
func Normalize(raw []byte, forced Type, req *Request) (*Event, *DropError) {
	obj, ok := parseObject(raw)
	if !ok {
		return nil, drop(CodeInvalidEvent, "event must be a JSON object")
	}
	ev := &Event{Type: forced}
	if forced == "" {
		tv := obj.get("type")
		if tv == nil || kind(tv) == 'n' {
			return nil, drop(CodeMissingType, "type is required")
		}
		if kind(tv) != 's' {
			return nil, drop(CodeInvalidType, "type must be a string")
		}
		t, ok := ParseType(decodeString(tv))
		if !ok {
			return nil, drop(CodeInvalidType, "type %q is not one of track, page, screen, identify, group, alias", truncate(decodeString(tv), 40))
		}
		ev.Type = t
	}
	obj.set("type", quote(string(ev.Type)))

	// Rule 4: ids.
	var previousID, groupID string
	for _, f := range [...]struct {
		key string
		dst *string
	}{{"userId", &ev.UserID}, {"anonymousId", &ev.AnonymousID}, {"previousId", &previousID}, {"groupId", &groupID}} {
		v := obj.get(f.key)
		switch kind(v) {
		case 0, 'n':
		case 's':
			*f.dst = decodeString(v)
		case 'd':
			s, ok := decimal(v)
			if !ok {
				return nil, drop(CodeInvalidID, "%s must be a string", f.key)
			}
			*f.dst = s
			obj.set(f.key, quote(s))
		default:
			return nil, drop(CodeInvalidID, "%s must be a string", f.key)
		}
	}

	// Rules 5 to 7.
	switch {
	case ev.Type == Alias && ev.UserID == "":
		return nil, drop(CodeMissingIdentity, "alias requires userId")
	case ev.Type == Alias && previousID == "":
		return nil, drop(CodeMissingPrevious, "alias requires previousId")
	case ev.UserID == "" && ev.AnonymousID == "":
		return nil, drop(CodeMissingIdentity, "userId or anonymousId is required")
	case ev.Type == Track:
		if e := obj.get("event"); kind(e) != 's' || len(e) <= 2 {
			return nil, drop(CodeMissingEvent, "track requires a non-empty event name")
		}
	case ev.Type == Group && groupID == "":
		return nil, drop(CodeMissingGroupID, "group requires groupId")
	}

	// Rule 8: object fields; null becomes absent.
	for _, k := range [...]string{"properties", "traits", "context", "integrations"} {
		switch v := obj.get(k); kind(v) {
		case 0, 'o':
		case 'n':
			obj.del(k)
		default:
			return nil, drop(CodeInvalidField, "%s must be an object", k)
		}
	}

	// Rule 9: messageId.
	switch v := obj.get("messageId"); kind(v) {
	case 0, 'n':
		ev.MessageID, ev.Generated = newUUID(), true
	case 's':
		ev.MessageID = decodeString(v)
		if ev.MessageID == "" {
			ev.MessageID, ev.Generated = newUUID(), true
		}
	case 'd':
		s, ok := decimal(v)
		if !ok {
			return nil, drop(CodeInvalidMessageID, "messageId must be a string")
		}
		ev.MessageID = s
		obj.set("messageId", quote(s))
	default:
		return nil, drop(CodeInvalidMessageID, "messageId must be a string")
	}
	if n := utf8.RuneCountInString(ev.MessageID); n > MaxMessageIDLen {
		return nil, drop(CodeInvalidMessageID, "messageId is %d characters long; the limit is %d", n, MaxMessageIDLen)
	}
	if ev.Generated {
		obj.del("messageId")
	}

	// Envelope merge (§1.6) and context.ip (§2.8).
	env := &req.Envelope
	if env.Context != nil {
		if c := obj.get("context"); c != nil {
			obj.set("context", mergeDeep(env.Context, c))
		} else {
			obj.set("context", env.Context)
		}
	}
	if env.Integrations != nil {
		if in := obj.get("integrations"); in != nil {
			obj.set("integrations", mergeShallow(env.Integrations, in))
		} else {
			obj.set("integrations", env.Integrations)
		}
	}
	if req.ClientIP != "" {
		if c := obj.get("context"); c == nil {
			obj.set("context", append(append([]byte(`{"ip":`), quote(req.ClientIP)...), '}'))
		} else if co, _ := parseObject(c); co.get("ip") == nil {
			co.set("ip", quote(req.ClientIP))
			obj.set("context", co.appendJSON(nil))
		}
	}

	// Timestamps (§2.6); writeKey is removed (§2.8).
	received := req.ReceivedAt.UTC()
	original, ok := parseTimeValue(obj.get("originalTimestamp"))
	if !ok {
		original, ok = parseTimeValue(obj.get("timestamp"))
	}
	if !ok {
		original = received
	}
	sentAt, hasSent := parseTimeValue(obj.get("sentAt"))
	if !hasSent && !env.SentAt.IsZero() {
		sentAt, hasSent = env.SentAt, true
	}
	ts := original
	if hasSent {
		ts = received.Add(-sentAt.Sub(original))
	}
	for _, k := range [...]string{"writeKey", "timestamp", "originalTimestamp", "sentAt", "receivedAt"} {
		obj.del(k)
	}
	if ev.Generated {
		obj.set("messageId", quote(ev.MessageID))
	}
	obj.set("originalTimestamp", quoteTime(original))
	if hasSent {
		obj.set("sentAt", quoteTime(sentAt))
	}
	obj.set("receivedAt", quoteTime(received))
	obj.set("timestamp", quoteTime(ts))

	ev.JSON = obj.appendJSON(make([]byte, 0, len(raw)+160))
	return ev, nil
}

// decimal returns the decimal text of a JSON number that is an integer
// ("42", "4.2e1"), or the number as written otherwise.
func decimal(v []byte) (string, bool) {
	var n json.Number
	if err := json.Unmarshal(v, &n); err != nil {
		return "", false
	}
	if i, err := n.Int64(); err == nil {
		return strconv.FormatInt(i, 10), true
	}
	if f, err := n.Float64(); err == nil && f == float64(int64(f)) {
		return strconv.FormatInt(int64(f), 10), true
	}
	return n.String(), true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// TimeLayout is how capstan stores instants: UTC, milliseconds (§2.6).
const TimeLayout = "2006-01-02T15:04:05.000Z"

func quoteTime(t time.Time) []byte {
	b := make([]byte, 0, 26)
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, TimeLayout)
	return append(b, '"')
}

// parseTimeValue parses a raw JSON string holding an ISO-8601 instant.
// Numbers and other kinds count as absent (§2.6, §8 Q4).
func parseTimeValue(v []byte) (time.Time, bool) {
	if kind(v) != 's' {
		return time.Time{}, false
	}
	return ParseTime(decodeString(v))
}

// ParseTime parses the ISO-8601 subset of §2.6: RFC 3339 with any number of
// fractional digits and a Z or ±hh:mm offset, a date-time without zone (UTC)
// or a date alone (midnight UTC).
func ParseTime(s string) (time.Time, bool) {
	if len(s) < 10 || len(s) > 40 {
		return time.Time{}, false
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05Z0700", "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:])
	return string(out[:])
}

// NewID returns a random UUID (for request ids and generated messageIds).
func NewID() string { return newUUID() }

// Headers capstan sets on every stored event message. Downstream stages read
// them instead of parsing the event again.
const (
	HeaderSource    = "Capstan-Source"     // the source name
	HeaderMessageID = "Capstan-Message-Id" // the event's messageId
	HeaderRequestID = "Capstan-Request-Id" // the HTTP request that carried it
	HeaderUserAgent = "Capstan-User-Agent" // the sending client's User-Agent
	HeaderLiFatID   = "Capstan-Li-Fat-Id"  // li_fat_id from the capstan_lfi cookie of the request
)

// Subject returns the stream subject of an event: events.<source>.<type>.
func Subject(source string, t Type) string { return "events." + source + "." + string(t) }

// DedupID returns the JetStream de-duplication id of (source, messageId).
// Ids that cannot travel in a NATS header (control characters) are hashed.
func DedupID(source, messageID string) string {
	for i := 0; i < len(messageID); i++ {
		if c := messageID[i]; c < 0x20 || c == 0x7f {
			sum := sha256.Sum256([]byte(messageID))
			return source + ":sha256:" + hex.EncodeToString(sum[:])
		}
	}
	return source + ":" + messageID
}

package importer

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/capstan-gw/capstan/internal/event"
)

// Reasons a row is invalid, as the summary counts them.
const (
	ReasonQuoting    = "bad CSV quoting"
	ReasonFieldCount = "wrong number of fields"
	ReasonTimestamp  = "unparseable timestamp"
	ReasonNumber     = "unparseable number"
	ReasonCurrency   = "invalid currency"
	ReasonEmail      = "invalid email"
	ReasonIdentifier = "no identifier"
	ReasonEventName  = "no event name"
	ReasonTooOld     = "older than 90 days"
	ReasonFuture     = "in the future"
	ReasonJSON       = "invalid JSON"
	ReasonEvent      = "invalid event"
	ReasonTooLarge   = "too large"
)

// MaxAge is LinkedIn's look-back for conversions (linkedin-capi.md §8.2,
// §10.2 B2: now − 90 days ≤ conversionHappenedAt): older conversions are
// refused, so import reports them instead of storing them.
const MaxAge = 90 * 24 * time.Hour

// MaxFuture is how far in the future LinkedIn accepts a conversion (§8.2).
const MaxFuture = 5 * time.Minute

// rowError says why one row is invalid.
type rowError struct {
	field  string // the field or column at fault ("row" for the whole row)
	reason string // one of the Reason* constants
	detail string // the precise explanation
}

// idPrefix starts the messageIds that import makes from a row's content.
const idPrefix = "import-"

// contentID returns the messageId of a row that has none: "import-" and
// 32 hex digits of the SHA-256 of the source name and the row's content
// (column names and values), so the same row of the same source always
// gets the same id, whichever file or run it comes in.
func contentID(source string, parts ...string) string {
	h := sha256.New()
	h.Write([]byte(source))
	for _, p := range parts {
		h.Write([]byte{0})
		h.Write([]byte(p))
	}
	var sum [sha256.Size]byte
	return idPrefix + hex.EncodeToString(h.Sum(sum[:0])[:16])
}

// rowID is contentID of a CSV row: the source, then each column's name and
// value, without building the list.
func (r *run) rowID(l *layout, rec []string) string {
	if r.hash == nil {
		r.hash = sha256.New()
	}
	h := r.hash
	h.Reset()
	h.Write([]byte(r.opt.Source))
	for i, c := range l.cols {
		if i < len(rec) {
			h.Write([]byte{0})
			h.Write([]byte(c.name))
			h.Write([]byte{0})
			h.Write([]byte(strings.TrimSpace(rec[i])))
		}
	}
	var sum [sha256.Size]byte
	return idPrefix + hex.EncodeToString(h.Sum(sum[:0])[:16])
}

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte { return event.StringValue(s).AppendJSON(b) }

// csvRow builds the track event of one CSV row, as raw JSON for
// ingest.ServerEvent. A row is a conversion: its timestamp must be in
// LinkedIn's window (checkAge). Where each field lands is documented on the Field constants.
func (r *run) csvRow(l *layout, rec []string) ([]byte, *rowError) {
	val := func(f Field) string {
		if i := l.pos[f]; i >= 0 && i < len(rec) {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	var ts time.Time
	if s := val(FieldTimestamp); s != "" {
		t, err := ParseTimestamp(s)
		if err != nil {
			return nil, &rowError{l.cols[l.pos[FieldTimestamp]].name, ReasonTimestamp, fmt.Sprintf("%q: %v", s, err)}
		}
		if rerr := r.checkAge(l.cols[l.pos[FieldTimestamp]].name, t); rerr != nil {
			return nil, rerr
		}
		ts = t
	}
	var revenue string
	if s := val(FieldRevenue); s != "" {
		n, err := number(s)
		if err != nil {
			return nil, &rowError{l.cols[l.pos[FieldRevenue]].name, ReasonNumber, fmt.Sprintf("%q: %v", s, err)}
		}
		revenue = n
	}
	currency := val(FieldCurrency)
	if currency != "" {
		if !isCurrency(currency) {
			return nil, &rowError{l.cols[l.pos[FieldCurrency]].name, ReasonCurrency, fmt.Sprintf("%q is not an ISO 4217 code (three letters, like USD)", currency)}
		}
		currency = strings.ToUpper(currency)
	}
	email := val(FieldEmail)
	if email != "" && !isEmail(email) {
		return nil, &rowError{l.cols[l.pos[FieldEmail]].name, ReasonEmail, "not an email address"}
	}
	name := val(FieldEvent)
	if name == "" {
		name = r.opt.Event
	}
	if name == "" {
		field := "event"
		if i := l.pos[FieldEvent]; i >= 0 {
			field = l.cols[i].name
		}
		return nil, &rowError{field, ReasonEventName, "empty, and no --event names a default"}
	}
	userID, anonID, lfi := val(FieldUserID), val(FieldAnonymousID), val(FieldLiFatID)
	if userID == "" && anonID == "" {
		// Segment events need a userId or an anonymousId. A row that
		// identifies its person only by email or click id gets an
		// anonymousId derived from them, stable across imports.
		switch {
		case email != "":
			anonID = contentID(r.opt.Source, "email", strings.ToLower(email))
		case lfi != "":
			anonID = contentID(r.opt.Source, "li_fat_id", lfi)
		default:
			return nil, &rowError{"row", ReasonIdentifier, "no userId, anonymousId, email or li_fat_id"}
		}
	}
	msgID := val(FieldMessageID)
	if msgID == "" {
		msgID = r.rowID(l, rec)
	}

	b := r.buf[:0]
	b = append(b, `{"type":"track","event":`...)
	b = appendString(b, name)
	b = append(b, `,"messageId":`...)
	b = appendString(b, msgID)
	if userID != "" {
		b = appendString(append(b, `,"userId":`...), userID)
	}
	if anonID != "" {
		b = appendString(append(b, `,"anonymousId":`...), anonID)
	}
	if !ts.IsZero() {
		b = append(b, `,"timestamp":"`...)
		b = ts.AppendFormat(b, event.TimeLayout)
		b = append(b, '"')
	}

	// properties: revenue, currency, li_fat_id, then the other columns.
	n := 0
	sep := func(key string) {
		if n == 0 {
			b = append(b, `,"properties":{`...)
		} else {
			b = append(b, ',')
		}
		n++
		b = append(appendString(b, key), ':')
	}
	if revenue != "" {
		sep("revenue")
		b = append(b, revenue...)
	}
	if currency != "" {
		sep("currency")
		b = appendString(b, currency)
	}
	if lfi != "" {
		sep("li_fat_id")
		b = appendString(b, lfi)
	}
	for i, c := range l.cols {
		if c.prop == "" || i >= len(rec) {
			continue
		}
		if v := strings.TrimSpace(rec[i]); v != "" {
			sep(c.prop)
			b = appendString(b, v)
		}
	}
	if n > 0 {
		b = append(b, '}')
	}

	// traits: email, firstName, lastName, title, company.name,
	// address.country, then traits.NAME columns.
	n = 0
	sep = func(key string) {
		if n == 0 {
			b = append(b, `,"traits":{`...)
		} else {
			b = append(b, ',')
		}
		n++
		b = append(appendString(b, key), ':')
	}
	for _, t := range [...]struct {
		f   Field
		key string
	}{{FieldEmail, "email"}, {FieldFirstName, "firstName"}, {FieldLastName, "lastName"}, {FieldTitle, "title"}} {
		if v := val(t.f); v != "" {
			sep(t.key)
			b = appendString(b, v)
		}
	}
	if v := val(FieldCompany); v != "" {
		sep("company")
		b = appendString(append(b, `{"name":`...), v)
		b = append(b, '}')
	}
	if v := val(FieldCountry); v != "" {
		sep("address")
		b = appendString(append(b, `{"country":`...), v)
		b = append(b, '}')
	}
	for i, c := range l.cols {
		if c.trait == "" || i >= len(rec) {
			continue
		}
		if v := strings.TrimSpace(rec[i]); v != "" {
			sep(c.trait)
			b = appendString(b, v)
		}
	}
	if n > 0 {
		b = append(b, '}')
	}
	b = append(b, r.context...)
	b = append(b, '}')
	r.buf = b
	return b, nil
}

// number returns s as a JSON number: a decimal number, optionally with an
// exponent, not negative (LinkedIn refuses negative conversion values).
func number(s string) (string, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return "", fmt.Errorf("not a number (write 1234.50: digits, one '.' and no currency sign or thousands separator)")
	}
	if f < 0 {
		return "", fmt.Errorf("negative; LinkedIn takes conversion values of 0 or more")
	}
	if validJSONNumber(s) {
		return s, nil
	}
	return strconv.FormatFloat(f, 'f', -1, 64), nil
}

// validJSONNumber reports whether s is a JSON number literal.
func validJSONNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if i == len(s) || s[i] < '0' || s[i] > '9' {
			return false
		}
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i == len(s) || s[i] < '0' || s[i] > '9' {
			return false
		}
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	return i == len(s)
}

// isCurrency reports whether s is three ASCII letters.
func isCurrency(s string) bool {
	if len(s) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		c := s[i] | 0x20
		if c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

// isEmail reports whether s looks like an email address: one '@' with text
// on both sides, a dot in the domain, no spaces.
func isEmail(s string) bool {
	at := strings.IndexByte(s, '@')
	if at <= 0 || at != strings.LastIndexByte(s, '@') || strings.ContainsAny(s, " \t") {
		return false
	}
	dom := s[at+1:]
	return strings.Contains(dom, ".") && !strings.HasPrefix(dom, ".") && !strings.HasSuffix(dom, ".")
}

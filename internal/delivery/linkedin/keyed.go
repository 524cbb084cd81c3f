package linkedin

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"unicode/utf8"

	"github.com/capstan-gw/capstan/internal/delivery"
)

// MaxEventIDLength is the longest eventId capstan derives: 64 characters,
// the third-party figure the spec keeps for LinkedIn's limit (§8.2,
// sandbox switch enforce_field_lengths).
const MaxEventIDLength = 64

// suffixHex is the length of a derived eventId's content hash.
const suffixHex = 8

// EventKey returns a conversion's rule URN and eventId, and a hash of its
// content as sent (rule, eventId, time, value, currency and every
// identifier): the eventId collision guard's key (spec §16, §23). A
// conversion without eventId has none.
func (f *Format) EventKey(p delivery.Payload) (scope, id string, content [32]byte, ok bool) {
	c, isConv := p.Value.(*conversion)
	if !isConv || c.EventID == "" {
		return "", "", content, false
	}
	// The conversion as sent: AppendJSON writes what json.Marshal does
	// (HTML-safe, compact; TestEventKeyHashesTheMarshalledConversion), the
	// content hash of claims already stored, without reflection.
	var buf [1024]byte
	return c.Conversion.Conversion, c.EventID, sha256.Sum256(c.Conversion.AppendJSON(buf[:0])), true
}

// Rekey returns p with the eventId "<eventId>-<8 hex of content>": the same
// content always gets the same one. When that would exceed
// MaxEventIDLength characters, the eventId is cut to fit (content hashes the
// whole original, so different ids stay apart).
func (f *Format) Rekey(p delivery.Payload, content [32]byte) (delivery.Payload, string, error) {
	c, ok := p.Value.(*conversion)
	if !ok || c.EventID == "" {
		return p, "", fmt.Errorf("not a LinkedIn conversion with an eventId: %T", p.Value)
	}
	base := c.EventID
	if n := utf8.RuneCountInString(base); n > MaxEventIDLength-1-suffixHex {
		runes := []rune(base)
		base = string(runes[:MaxEventIDLength-1-suffixHex])
	}
	derived := base + "-" + hex.EncodeToString(content[:suffixHex/2])
	cp := *c
	cp.EventID = derived
	p.Value = &cp
	return p, derived, nil
}

var _ delivery.Keyed = (*Format)(nil)

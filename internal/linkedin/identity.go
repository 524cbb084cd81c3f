package linkedin

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"unicode"
)

// IDType is the idType of a user identifier (§8.3).
type IDType string

// The identifier types capstan produces, in the order they appear in
// user.userIds (§20.1). Capstan always spells Acxiom "ACXIOM_ID", never
// Segment's "AXCIOM_ID" (§8.3, §19 Q8).
const (
	IDSHA256Email  IDType = "SHA256_EMAIL"
	IDLinkedInUUID IDType = "LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID"
	IDAcxiom       IDType = "ACXIOM_ID"
	IDOracleMoat   IDType = "ORACLE_MOAT_ID"
)

// trimSpace removes leading and trailing white space: Unicode White_Space
// (unicode.IsSpace) plus U+FEFF, which JavaScript's \s also matches. This is
// the "Unicode \s" trim of §15.1 and §15.3; it removes a superset of both
// JavaScript's and Go's sets, so no invisible padding reaches LinkedIn.
func trimSpace(s string) string {
	// Fast path: nothing to trim, the usual case.
	if s == "" || (!isSpaceByte(s[0]) && !isSpaceByte(s[len(s)-1]) && s[0] < 0x80 && s[len(s)-1] < 0x80) {
		return s
	}
	return strings.TrimFunc(s, isTrimSpace)
}

func isSpaceByte(c byte) bool {
	return c == ' ' || (c >= '\t' && c <= '\r')
}

func isTrimSpace(r rune) bool { return unicode.IsSpace(r) || r == '\uFEFF' }

// isSHA256Hex reports whether s is 64 hexadecimal digits (either case).
func isSHA256Hex(s string) bool {
	if len(s) != sha256.Size*2 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// HashEmail returns the SHA256_EMAIL idValue for a mapped email by the
// capstan rule of §15.1, and false when there is no email (empty after
// trimming):
//
//  1. trim leading and trailing white space;
//  2. a value of exactly 64 hex digits is already hashed and is returned
//     unchanged, its case preserved (the spec's test vector keeps upper case;
//     LinkedIn accepts both cases, §10.2 B4);
//  3. otherwise lower-case (Unicode simple case mapping) and return the
//     lower-case hex SHA-256 of the UTF-8 bytes.
//
// Nothing else is normalised: no Gmail dot or +tag removal, inner white
// space kept. The result never contains the plaintext address.
func HashEmail(email string) (string, bool) {
	s := trimSpace(email)
	if s == "" {
		return "", false
	}
	if isSHA256Hex(s) {
		return s, true
	}
	var sum [sha256.Size]byte
	var low [128]byte
	if len(s) <= len(low) && isASCII(s) {
		// What strings.ToLower does to ASCII, without allocating.
		for i := 0; i < len(s); i++ {
			c := s[i]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			low[i] = c
		}
		sum = sha256.Sum256(low[:len(s)])
	} else {
		sum = sha256.Sum256([]byte(strings.ToLower(s)))
	}
	var out [2 * sha256.Size]byte
	hex.Encode(out[:], sum[:])
	return string(out[:]), true
}

// isASCII reports whether s holds only ASCII bytes.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// NormalizeRawID returns a raw identifier (li_fat_id, Acxiom, Oracle MOAT)
// as LinkedIn wants it (§15.2, §15.3): trimmed, otherwise untouched — never
// hashed, never case-folded, never checked for format — and false when
// nothing is left.
func NormalizeRawID(id string) (string, bool) {
	s := trimSpace(id)
	return s, s != ""
}

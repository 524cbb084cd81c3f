package linkedin

import (
	"strconv"
	"unicode/utf8"
)

// AppendJSON appends the JSON encoding of c to dst and returns the extended
// buffer. The bytes are exactly those encoding/json would produce for the
// struct (same key order, same escaping, including HTML-safe escapes and
// U+FFFD for invalid UTF-8), except that a nil User.UserIDs is written as
// [] instead of null. It is the batch encoder's hot path: no reflection and
// no allocation beyond growing dst.
func (c *Conversion) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"conversion":`...)
	dst = appendString(dst, c.Conversion)
	dst = append(dst, `,"conversionHappenedAt":`...)
	dst = strconv.AppendInt(dst, c.ConversionHappenedAt, 10)
	if v := c.ConversionValue; v != nil {
		dst = append(dst, `,"conversionValue":{"currencyCode":`...)
		dst = appendString(dst, v.CurrencyCode)
		dst = append(dst, `,"amount":`...)
		dst = appendString(dst, v.Amount)
		dst = append(dst, '}')
	}
	if c.EventID != "" {
		dst = append(dst, `,"eventId":`...)
		dst = appendString(dst, c.EventID)
	}
	dst = append(dst, `,"user":{"userIds":[`...)
	for i, id := range c.User.UserIDs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"idType":`...)
		dst = appendString(dst, string(id.IDType))
		dst = append(dst, `,"idValue":`...)
		dst = appendString(dst, id.IDValue)
		dst = append(dst, '}')
	}
	dst = append(dst, ']')
	if ui := c.User.UserInfo; ui != nil {
		dst = append(dst, `,"userInfo":{"firstName":`...)
		dst = appendString(dst, ui.FirstName)
		dst = append(dst, `,"lastName":`...)
		dst = appendString(dst, ui.LastName)
		if ui.CompanyName != "" {
			dst = append(dst, `,"companyName":`...)
			dst = appendString(dst, ui.CompanyName)
		}
		if ui.Title != "" {
			dst = append(dst, `,"title":`...)
			dst = appendString(dst, ui.Title)
		}
		if ui.CountryCode != "" {
			dst = append(dst, `,"countryCode":`...)
			dst = appendString(dst, ui.CountryCode)
		}
		dst = append(dst, '}')
	}
	if len(c.User.ExternalIDs) > 0 {
		dst = append(dst, `,"externalIds":[`...)
		for i, id := range c.User.ExternalIDs {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, id)
		}
		dst = append(dst, ']')
	}
	return append(dst, "}}"...)
}

const hexDigits = "0123456789abcdef"

// safeASCII marks the ASCII bytes a JSON string may hold unescaped under
// encoding/json's HTML-safe rules.
var safeASCII = func() (t [utf8.RuneSelf]bool) {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		t[b] = b != '"' && b != '\\' && b != '<' && b != '>' && b != '&'
	}
	return t
}()

// appendString appends s as a JSON string with encoding/json's escaping
// (HTML-safe: <, > and & as \u003c, \u003e, \u0026; U+2028 and U+2029
// escaped; invalid UTF-8 replaced by U+FFFD).
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if safeASCII[b] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

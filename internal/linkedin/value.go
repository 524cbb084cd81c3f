package linkedin

import (
	"encoding/json"
	"strconv"
	"strings"
)

// scalarText coerces a mapped value for a string field, as Segment's schema
// does for numbers: a string is returned as is, a number as its exact text
// (json.Number keeps the event's digits). ok is false for booleans, objects
// and arrays, which capstan rejects rather than sending "true" or
// "[object Object]" to LinkedIn. nil yields "" (absent).
func scalarText(v any) (s string, ok bool) {
	switch x := v.(type) {
	case nil:
		return "", true
	case string:
		return x, true
	case json.Number:
		return string(x), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case int:
		return strconv.Itoa(x), true
	case int64:
		return strconv.FormatInt(x, 10), true
	}
	return "", false
}

// maxExponent bounds the exponent of a numeric amount: anything larger is
// not a plausible money amount, and expanding 1e999999999 into digits would
// exhaust memory.
const maxExponent = 400

// decimalFromNumber rewrites a JSON number text as a plain decimal string
// without exponent ("1.5e3" → "1500", "25e-1" → "2.5"); a number without
// exponent keeps its exact text ("149.00" stays "149.00"). A negative zero
// loses its sign. ok is false when s is not a JSON number or its exponent is
// out of range.
func decimalFromNumber(s string) (string, bool) {
	if !isJSONNumber(s) {
		return "", false
	}
	neg := s[0] == '-'
	if neg {
		s = s[1:]
	}
	mant, exp := s, 0
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		mant = s[:i]
		e, err := strconv.Atoi(strings.TrimPrefix(s[i+1:], "+"))
		if err != nil || e > maxExponent || e < -maxExponent {
			return "", false
		}
		exp = e
	}
	intPart, frac, _ := strings.Cut(mant, ".")
	var out string
	if exp == 0 {
		out = mant
	} else {
		ds := intPart + frac
		point := len(intPart) + exp
		switch {
		case point <= 0:
			out = "0." + strings.Repeat("0", -point) + ds
		case point >= len(ds):
			out = ds + strings.Repeat("0", point-len(ds))
		default:
			out = ds[:point] + "." + ds[point:]
		}
	}
	// Drop leading zeros of the integer part, keeping one.
	i := 0
	for i+1 < len(out) && out[i] == '0' && out[i+1] != '.' {
		i++
	}
	out = out[i:]
	if neg && strings.Trim(out, "0.") != "" {
		out = "-" + out
	}
	return out, true
}

// isDecimalString reports whether s matches ^\d+(\.\d+)?$, LinkedIn's
// amount format (§8.2).
func isDecimalString(s string) bool {
	intPart, frac, hasFrac := strings.Cut(s, ".")
	if intPart == "" || !allDigits(intPart) {
		return false
	}
	return !hasFrac || (frac != "" && allDigits(frac))
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

// isUpperLetters reports whether s is exactly n ASCII upper-case letters.
func isUpperLetters(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < n; i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

// quoteShort quotes a value for an error message, cut to 40 bytes so a
// huge mapped value cannot flood logs.
func quoteShort(s string) string {
	const limit = 40
	if len(s) > limit {
		cut := limit
		for cut > 0 && s[cut]&0xC0 == 0x80 { // do not split a UTF-8 sequence
			cut--
		}
		return strconv.Quote(s[:cut]) + "…"
	}
	return strconv.Quote(s)
}

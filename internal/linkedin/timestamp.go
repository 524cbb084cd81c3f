package linkedin

import (
	"encoding/json"
	"math"
	"strconv"
	"time"
)

// Bounds of numeric timestamps (§20.2).
const (
	// maxEpochMillis is 2100-01-01T00:00:00Z in ms; larger numbers are not
	// timestamps.
	maxEpochMillis = 4102444800000
	// secondsBelow: numeric values below 10^11 (year 5138 in seconds, March
	// 1973 in ms) are epoch seconds.
	secondsBelow = 100000000000
)

// ParseConversionTime converts a mapped conversionHappenedAt value into
// epoch milliseconds by the rule of §20.2, and reports false for anything
// that is not a valid date ("Timestamp is not a valid date.").
//
// A number (json.Number, a Go number, or a string holding a JSON number
// such as "1767139200000") that is a safe integer within [0, 4102444800000]
// is epoch seconds when below 10^11, and is then multiplied by 1000;
// otherwise it is milliseconds. Reading "1714900000" as seconds is a
// deliberate improvement on Segment, which reads it as milliseconds in 1970.
//
// Anything else is parsed as an ISO 8601 / RFC 3339 date-time, leniently in
// the ways common senders differ and strictly otherwise:
//
//	2026-09-01T10:34:56.789Z            any number of fraction digits ('.' or ',')
//	2026-09-01T12:34:56.123456789+02:00 offsets ±HH:MM, ±HHMM or ±HH, or Z/z
//	2026-09-01 10:34:56                 a space or lower-case t as separator
//	2026-09-01T10:34                    seconds may be left out
//	2026-09-01T10:34:56                 no zone means UTC (a server has no
//	                                    meaningful local zone; JavaScript would
//	                                    use the host's)
//	2026-09-01                          midnight UTC
//
// Fractions below a millisecond are truncated, as JavaScript's Date does.
// Leading and trailing white space is ignored. Other formats (RFC 1123,
// "Sep 1 2026", week dates) are rejected where JavaScript's parser is more
// lenient [P].
func ParseConversionTime(v any) (int64, bool) {
	switch x := v.(type) {
	case json.Number:
		return parseTimeText(string(x))
	case string:
		return parseTimeText(x)
	case float64:
		return numericMillis(x)
	case int:
		return numericMillis(float64(x))
	case int64:
		if x < 0 || x > maxEpochMillis {
			return 0, false
		}
		return numericMillis(float64(x))
	}
	return 0, false
}

func parseTimeText(s string) (int64, bool) {
	s = trimSpace(s)
	if isJSONNumber(s) {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return 0, false // out of float range: not a date either
		}
		// A number outside the timestamp range is not an ISO date either.
		return numericMillis(f)
	}
	t, ok := parseISO8601(s)
	if !ok {
		return 0, false
	}
	return t.UnixMilli(), true
}

// numericMillis applies the numeric rule of §20.2.
func numericMillis(f float64) (int64, bool) {
	if math.IsNaN(f) || f != math.Trunc(f) || f < 0 || f > maxEpochMillis {
		return 0, false
	}
	n := int64(f)
	if n < secondsBelow {
		return n * 1000, true
	}
	return n, true
}

// isJSONNumber reports whether s is a number in JSON's grammar
// (-?int(.frac)?(e[+-]?exp)?).
func isJSONNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	start := i
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	// JSON forbids leading zeros, but a digit string such as "0012" is still
	// a number to JavaScript's Number(); accept it.
	if i == start {
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		fs := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		if i == fs {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		es := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		if i == es {
			return false
		}
	}
	return i == len(s)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// digits parses exactly n ASCII digits at s[i:].
func digits(s string, i, n int) (int, bool) {
	if i+n > len(s) {
		return 0, false
	}
	v := 0
	for j := i; j < i+n; j++ {
		if !isDigit(s[j]) {
			return 0, false
		}
		v = v*10 + int(s[j]-'0')
	}
	return v, true
}

// parseISO8601 parses the subset of ISO 8601 documented on
// ParseConversionTime. It never allocates.
func parseISO8601(s string) (time.Time, bool) {
	year, ok1 := digits(s, 0, 4)
	month, ok2 := digits(s, 5, 2)
	day, ok3 := digits(s, 8, 2)
	if !ok1 || !ok2 || !ok3 || s[4] != '-' || s[7] != '-' || month < 1 || month > 12 || day < 1 || day > daysIn(year, month) {
		return time.Time{}, false
	}
	if len(s) == 10 {
		return time.Date(year, time.Month(month), day, 0, 0, 0, 0, time.UTC), true
	}
	if c := s[10]; c != 'T' && c != 't' && c != ' ' {
		return time.Time{}, false
	}
	hour, ok1 := digits(s, 11, 2)
	minute, ok2 := digits(s, 14, 2)
	if !ok1 || !ok2 || s[13] != ':' || hour > 23 || minute > 59 {
		return time.Time{}, false
	}
	i := 16
	sec, nsec := 0, 0
	if i < len(s) && s[i] == ':' {
		v, ok := digits(s, i+1, 2)
		if !ok || v > 59 {
			return time.Time{}, false
		}
		sec = v
		i += 3
		if i < len(s) && (s[i] == '.' || s[i] == ',') {
			i++
			start := i
			scale := 100000000
			for i < len(s) && isDigit(s[i]) {
				nsec += int(s[i]-'0') * scale
				scale /= 10
				i++
			}
			if i == start {
				return time.Time{}, false
			}
		}
	}
	offset := 0
	switch {
	case i == len(s):
		// No zone: UTC.
	case (s[i] == 'Z' || s[i] == 'z') && i+1 == len(s):
	case s[i] == '+' || s[i] == '-':
		sign := 1
		if s[i] == '-' {
			sign = -1
		}
		rest := s[i+1:]
		var oh, om int
		var ok bool
		switch len(rest) {
		case 2: // ±HH
			oh, ok = digits(rest, 0, 2)
		case 4: // ±HHMM
			oh, ok = digits(rest, 0, 2)
			if ok {
				om, ok = digits(rest, 2, 2)
			}
		case 5: // ±HH:MM
			oh, ok = digits(rest, 0, 2)
			if ok && rest[2] == ':' {
				om, ok = digits(rest, 3, 2)
			} else {
				ok = false
			}
		}
		if !ok || oh > 23 || om > 59 {
			return time.Time{}, false
		}
		offset = sign * (oh*3600 + om*60)
	default:
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	return t.Add(-time.Duration(offset) * time.Second), true
}

// daysIn returns the number of days in a month of the proleptic Gregorian
// calendar.
func daysIn(year, month int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

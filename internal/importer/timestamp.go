package importer

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/capstan-gw/capstan/internal/event"
)

// secondsBelow is where Unix timestamps change unit: below it seconds,
// from it milliseconds (10^11 s is the year 5138, 10^11 ms is 1973), the
// rule of linkedin-capi.md §20.2.
const secondsBelow = 100_000_000_000

// maxUnixMillis bounds Unix timestamps (2100-01-01), as §20.2 does.
const maxUnixMillis = 4_102_444_800_000

// errTimestamp explains the accepted formats.
var errTimestamp = errors.New("not a timestamp: use RFC 3339 (2026-09-01T10:34:56Z), YYYY-MM-DD[ HH:MM:SS] (UTC), or Unix seconds or milliseconds")

// ParseTimestamp parses a CSV timestamp: RFC 3339 with any fractional
// digits and a Z or ±hh:mm offset; "YYYY-MM-DD", "YYYY-MM-DD HH:MM:SS" or
// "YYYY-MM-DDTHH:MM:SS" without a zone, read as UTC; or a Unix time in
// seconds (below 10^11) or milliseconds, a whole number up to 2100-01-01.
func ParseTimestamp(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s != "" && isDigits(s) {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return time.Time{}, errTimestamp
		}
		if n < secondsBelow {
			n *= 1000
		}
		if n > maxUnixMillis {
			return time.Time{}, errors.New("a Unix timestamp after 2100-01-01")
		}
		return time.UnixMilli(n).UTC(), nil
	}
	if len(s) == len("2006-01-02 15:04:05") && s[10] == ' ' {
		if t, err := time.Parse(time.DateTime, s); err == nil {
			return t.UTC(), nil
		}
	}
	if t, ok := event.ParseTime(s); ok {
		return t, nil
	}
	return time.Time{}, errTimestamp
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

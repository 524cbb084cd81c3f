package admin

import (
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/capstan-gw/capstan/internal/stream"
)

// Page sizes of the list routes.
const (
	defaultLimit = 100
	maxLimit     = 1000
)

// checkQuery refuses query parameters other than allowed, and repeated ones.
func checkQuery(q url.Values, allowed ...string) error {
	names := make([]string, 0, len(q))
	for name := range q {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if !slices.Contains(allowed, name) {
			if len(allowed) == 0 {
				return badRequest("unknown query parameter %q: this route takes none", name)
			}
			return badRequest("unknown query parameter %q: use %s", name, strings.Join(allowed, ", "))
		}
		if len(q[name]) > 1 {
			return badRequest("query parameter %q is given %d times", name, len(q[name]))
		}
	}
	return nil
}

// parseLimit reads a page size: 1 to maxLimit, default defaultLimit.
func parseLimit(s string) (int, error) {
	if s == "" {
		return defaultLimit, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maxLimit {
		return 0, badRequest("limit %q: give a whole number from 1 to %d", s, maxLimit)
	}
	return n, nil
}

// parseSince reads a start time: RFC 3339, or a duration before now.
func parseSince(name, s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		// The engine counts time in int64 nanoseconds: beyond, it wraps.
		if t.Before(time.Unix(0, math.MinInt64)) || t.After(time.Unix(0, math.MaxInt64)) {
			return time.Time{}, badRequest("%s %q is out of range (years 1678 to 2262)", name, s)
		}
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, badRequest("%s %q: give an RFC 3339 time (2026-09-01T10:00:00Z) or a positive duration before now (10m, 24h)", name, s)
}

// parseSeq reads a stream sequence: a positive whole number ("" is 0).
func parseSeq(name, s string) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 {
		return 0, badRequest("%s %q: give a positive whole number (a stream sequence)", name, s)
	}
	return n, nil
}

// parsePos reads an event position ("123:4", or "123" for index 0); "" is 0.
func parsePos(name, s string) (stream.Pos, error) {
	if s == "" {
		return 0, nil
	}
	p, err := stream.ParsePos(s)
	if err != nil {
		return 0, badRequest("%s %q: give an event position, seq:index (or a stream sequence for index 0)", name, s)
	}
	return p, nil
}

// checkName refuses a source or destination name that could not be one: it
// becomes part of a stream subject, where '.', '*', '>' and white space
// have meaning.
func checkName(param, s string) error {
	if strings.ContainsAny(s, ".*> \t\r\n") {
		return badRequest("%s %q: a name holds no '.', '*', '>' or white space", param, s)
	}
	return nil
}

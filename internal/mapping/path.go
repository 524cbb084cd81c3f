package mapping

import (
	"strings"

	"github.com/capstan-gw/capstan/internal/event"
)

// Paths (spec §5.3) are shared by @path, @arrayPath and @template.
//
// A path is split into segments at '.', at '[' when followed by a digit or a
// quote, and at ']' when preceded by a digit or a quote; empty segments are
// dropped and quote characters removed, so properties.products[0].sku,
// properties.products.0.sku and properties["products"][0]["sku"] are the
// same path. The empty path is the whole value.

// stripDollar removes the first "$." of a @path or @arrayPath string, as
// JavaScript's path.replace('$.', ”) does.
func stripDollar(p string) string {
	if i := strings.Index(p, "$."); i >= 0 {
		return p[:i] + p[i+2:]
	}
	return p
}

func isDigitOrQuote(c byte) bool {
	return (c >= '0' && c <= '9') || c == '"' || c == '\''
}

// isSplit reports whether p[j] separates two path segments.
func isSplit(p string, j int) bool {
	switch p[j] {
	case '.':
		return true
	case '[':
		return j+1 < len(p) && isDigitOrQuote(p[j+1])
	case ']':
		return j > 0 && isDigitOrQuote(p[j-1])
	}
	return false
}

// cleanSegment removes quote characters from a raw segment.
func cleanSegment(seg string) string {
	if strings.ContainsAny(seg, `"'`) {
		seg = strings.NewReplacer(`"`, "", `'`, "").Replace(seg)
	}
	return seg
}

// splitPath returns the segments of p.
func splitPath(p string) []string {
	var segs []string
	start := 0
	for j := 0; j <= len(p); j++ {
		if j < len(p) && !isSplit(p, j) {
			continue
		}
		if seg := cleanSegment(p[start:j]); seg != "" {
			segs = append(segs, seg)
		}
		start = j + 1
	}
	return segs
}

// lookupPath resolves the path p in v without splitting it into a slice.
func lookupPath(v event.Value, p string) event.Value {
	start := 0
	for j := 0; j <= len(p); j++ {
		if j < len(p) && !isSplit(p, j) {
			continue
		}
		seg := cleanSegment(p[start:j])
		start = j + 1
		if seg == "" {
			continue
		}
		if v = v.Lookup(seg); v.IsUndefined() {
			return v
		}
	}
	return v
}

// Templates (spec §5.6): "{{{ path }}}" placeholders are replaced first, then
// "{{ path }}" ones in the result; the inside of a placeholder is any text
// without '}', trimmed. These are the regular expressions
// /\{\{\{([^}]+)\}\}\}/g and /\{\{([^}]+)\}\}/g of Segment's engine,
// implemented by hand; a value inserted by the first pass that itself looks
// like "{{ x }}" is expanded by the second pass, as in Segment.

// nextPlaceholder finds the leftmost placeholder with n braces in t at or
// after i. It returns the start of the match, the inner text and the end of
// the match, or start -1.
func nextPlaceholder(t string, i, n int) (start int, inner string, end int) {
	for ; i+2*n < len(t); i++ { // a match takes at least 2n+1 bytes
		if !braces(t, i, n, '{') {
			continue
		}
		k := i + n
		for k < len(t) && t[k] != '}' {
			k++
		}
		if k > i+n && braces(t, k, n, '}') {
			return i, t[i+n : k], k + n
		}
	}
	return -1, "", 0
}

// braces reports whether t holds n copies of c at i.
func braces(t string, i, n int, c byte) bool {
	if i+n > len(t) {
		return false
	}
	for j := i; j < i+n; j++ {
		if t[j] != c {
			return false
		}
	}
	return true
}

// trimJS trims like JavaScript's String.prototype.trim.
func trimJS(s string) string {
	return strings.TrimFunc(s, isJSSpace)
}

func isJSSpace(r rune) bool {
	switch r {
	case ' ', '\t', '\n', '\v', '\f', '\r', 0xa0, 0x1680, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000, 0xfeff:
		return true
	}
	return r >= 0x2000 && r <= 0x200a
}

// expandPass runs one placeholder pass with n braces over t.
func expandPass(dst []byte, t string, n int, ev event.Value) []byte {
	last := 0
	for i := 0; ; {
		start, inner, end := nextPlaceholder(t, i, n)
		if start < 0 {
			break
		}
		dst = append(dst, t[last:start]...)
		if v := lookupPath(ev, trimJS(inner)); v.Exists() {
			dst = appendJSText(dst, v)
		}
		i, last = end, end
	}
	return append(dst, t[last:]...)
}

// renderTemplate renders t against ev with both passes.
func renderTemplate(t string, ev event.Value) string {
	if s, _, _ := nextPlaceholder(t, 0, 3); s < 0 {
		return string(expandPass(make([]byte, 0, len(t)+16), t, 2, ev))
	}
	first := expandPass(make([]byte, 0, len(t)+16), t, 3, ev)
	return string(expandPass(make([]byte, 0, len(first)+16), string(first), 2, ev))
}

// tplPart is one piece of a template precompiled for the second pass: a
// literal text or a placeholder path.
type tplPart struct {
	lit    string
	path   []string
	isPath bool
}

// compileTemplate splits a template without "{{{ }}}" placeholders into
// parts. ok is false when the template has such placeholders (their values
// can create new "{{ }}" placeholders, so the template must be rendered at
// run time).
func compileTemplate(t string) (parts []tplPart, ok bool) {
	if s, _, _ := nextPlaceholder(t, 0, 3); s >= 0 {
		return nil, false
	}
	last := 0
	for i := 0; ; {
		start, inner, end := nextPlaceholder(t, i, 2)
		if start < 0 {
			break
		}
		if start > last {
			parts = append(parts, tplPart{lit: t[last:start]})
		}
		parts = append(parts, tplPart{path: splitPath(trimJS(inner)), isPath: true})
		i, last = end, end
	}
	if last < len(t) {
		parts = append(parts, tplPart{lit: t[last:]})
	}
	return parts, true
}

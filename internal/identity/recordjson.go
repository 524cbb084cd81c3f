package identity

import (
	"slices"
	"strconv"

	"github.com/capstan-gw/capstan/internal/event"
)

// appendJSON appends the profile as json.Marshal writes it (the same keys in
// the same order, the same omitempty rules, Scoped's sources sorted), except
// that '<', '>' and '&' are not escaped, which decodes the same. Every
// profile write encodes one, a new visitor's one or two: this costs a
// fraction of json.Marshal's reflection and one allocation for the buffer.
func (r *record) appendJSON(b []byte) []byte {
	b = append(b, '{')
	n := len(b) // a key at n is the first: no comma
	key := func(b []byte, k string) []byte {
		if len(b) > n {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, k...)
		return append(b, '"', ':')
	}
	str := func(b []byte, k, v string) []byte {
		if v == "" {
			return b
		}
		return event.StringValue(v).AppendJSON(key(b, k))
	}
	num := func(b []byte, k string, v int64) []byte {
		if v == 0 {
			return b
		}
		return strconv.AppendInt(key(b, k), v, 10)
	}
	list := func(b []byte, k string, vs []string) []byte {
		if len(vs) == 0 {
			return b
		}
		b = append(key(b, k), '[')
		for i, v := range vs {
			if i > 0 {
				b = append(b, ',')
			}
			b = event.StringValue(v).AppendJSON(b)
		}
		return append(b, ']')
	}
	b = str(b, "lfi", r.LiFatID)
	b = num(b, "lfiAt", r.LiFatAt)
	b = str(b, "emailSha256", r.Email)
	b = num(b, "emailAt", r.EmailAt)
	b = list(b, "links", r.Links)
	b = str(b, "aliasOf", r.AliasOf)
	b = list(b, "groups", r.Groups)
	b = num(b, "first", r.First)
	if len(r.Scoped) > 0 {
		b = append(key(b, "scoped"), '{')
		var few [4]string // most profiles have a part for one or two sources
		srcs := few[:0]
		for src := range r.Scoped {
			srcs = append(srcs, src)
		}
		slices.Sort(srcs)
		for i, src := range srcs {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(event.StringValue(src).AppendJSON(b), ':')
			if p := r.Scoped[src]; p != nil {
				b = p.appendJSON(b)
			} else {
				b = append(b, "null"...)
			}
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

// marshal returns the profile's JSON (appendJSON).
func (r *record) marshal() []byte { return r.appendJSON(make([]byte, 0, 384)) }

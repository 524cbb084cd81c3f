package identity

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"slices"
)

// The compact encoding of a profile, which the local store writes (format
// 2, local.go): a new visitor's one or two profiles are most of what the
// store writes, and each byte of them is copied into a memtable, written to
// the WAL, flushed and rewritten by every compaction. In JSON half of a
// profile is hex (the email's SHA-256, 64 digits; each link a key of 66
// characters) and key names; here a SHA-256 or a key is its 32 bytes and a
// field is one byte: a new visitor's profiles take ~40% of the bytes
// (bench/results/graph-2026-12-07-s22.md). It also decodes without
// reflection, unlike json.Unmarshal.
//
// The layout: recordBinary, then the fields that are not zero, each a tag
// byte and its value, then tagEnd. Numbers are zig-zag varints; a string
// is a uvarint h and then, when h is even, h/2 bytes; when h is odd, the
// 32 bytes of a hash written as 64 lowercase hex digits, prefixed by
// nothing (h = 1), "u." (3) or "a." (5). A list is a uvarint count and its
// strings; scoped is a count, then per source (sorted) its name and the
// part: 0 for nil, or 1 and its fields up to their tagEnd.
//
// The bucket (jsStore) and the tools' requests to a running capstan
// (Remote) keep JSON: other processes, maybe older, read those.

// recordBinary is the first byte of a compactly encoded profile; a JSON one
// starts with '{' (or white space), so decodeRecord tells them apart.
const recordBinary = 0x01

const (
	tagEnd = iota
	tagLiFatID
	tagLiFatAt
	tagEmail
	tagEmailAt
	tagLinks
	tagAliasOf
	tagGroups
	tagFirst
	tagScoped
)

// hash string kinds (h of a string, odd).
const (
	strHash     = 1
	strUserHash = 3
	strAnonHash = 5
)

// errRecordBinary is a compact profile that does not decode.
var errRecordBinary = errors.New("malformed compact identity profile")

// appendBinary appends the profile's compact encoding.
func (r *record) appendBinary(b []byte) []byte {
	return r.appendFields(append(b, recordBinary))
}

// encodeBinary returns the profile's compact encoding.
func (r *record) encodeBinary() []byte { return r.appendBinary(make([]byte, 0, 192)) }

func (r *record) appendFields(b []byte) []byte {
	str := func(b []byte, tag byte, v string) []byte {
		if v == "" {
			return b
		}
		return appendBinStr(append(b, tag), v)
	}
	num := func(b []byte, tag byte, v int64) []byte {
		if v == 0 {
			return b
		}
		return binary.AppendVarint(append(b, tag), v)
	}
	list := func(b []byte, tag byte, vs []string) []byte {
		if len(vs) == 0 {
			return b
		}
		b = binary.AppendUvarint(append(b, tag), uint64(len(vs)))
		for _, v := range vs {
			b = appendBinStr(b, v)
		}
		return b
	}
	b = str(b, tagLiFatID, r.LiFatID)
	b = num(b, tagLiFatAt, r.LiFatAt)
	b = str(b, tagEmail, r.Email)
	b = num(b, tagEmailAt, r.EmailAt)
	b = list(b, tagLinks, r.Links)
	b = str(b, tagAliasOf, r.AliasOf)
	b = list(b, tagGroups, r.Groups)
	b = num(b, tagFirst, r.First)
	if len(r.Scoped) > 0 {
		b = binary.AppendUvarint(append(b, tagScoped), uint64(len(r.Scoped)))
		var few [4]string
		srcs := few[:0]
		for src := range r.Scoped {
			srcs = append(srcs, src)
		}
		slices.Sort(srcs)
		for _, src := range srcs {
			b = appendBinStr(b, src)
			if p := r.Scoped[src]; p != nil {
				b = p.appendFields(append(b, 1))
			} else {
				b = append(b, 0)
			}
		}
	}
	return append(b, tagEnd)
}

// appendBinStr appends s: a hash (or a key: a prefix and a hash) as its 32
// bytes, anything else as it is.
func appendBinStr(b []byte, s string) []byte {
	h, hexs := byte(0), ""
	switch {
	case len(s) == 64:
		h, hexs = strHash, s
	case len(s) == 66 && s[:2] == userPrefix:
		h, hexs = strUserHash, s[2:]
	case len(s) == 66 && s[:2] == anonPrefix:
		h, hexs = strAnonHash, s[2:]
	}
	if h != 0 {
		n := len(b)
		b = append(b, h)
		b = append(b, make([]byte, 32)...)
		if unhexLower(b[n+1:], hexs) {
			return b
		}
		b = b[:n]
	}
	return append(binary.AppendUvarint(b, uint64(len(s))<<1), s...)
}

// unhexLower decodes the 64 hex digits of s into the 32 bytes of dst, and
// reports whether they were all lowercase hex: only those decode back to
// the same string (hex.Decode accepts uppercase too).
func unhexLower(dst []byte, s string) bool {
	dst, s = dst[:32], s[:64]
	bad := byte(0)
	for i := range dst {
		hi, lo := unhexTable[s[2*i]], unhexTable[s[2*i+1]]
		bad |= hi | lo
		dst[i] = hi<<4 | lo&15
	}
	return bad&16 == 0
}

// unhexTable maps a lowercase hex digit to its value, anything else to 16.
var unhexTable = func() (t [256]byte) {
	for i := range t {
		t[i] = 16
	}
	for i, c := range "0123456789abcdef" {
		t[c] = byte(i)
	}
	return t
}()

// binReader decodes a compact profile; the first error sticks.
type binReader struct {
	b   []byte
	err error
}

func (d *binReader) fail() {
	if d.err == nil {
		d.err = errRecordBinary
	}
	d.b = nil
}

func (d *binReader) byte() byte {
	if len(d.b) == 0 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *binReader) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *binReader) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *binReader) str() string {
	h := d.uvarint()
	if h&1 == 0 {
		n := h >> 1
		if n > uint64(len(d.b)) {
			d.fail()
			return ""
		}
		s := string(d.b[:n])
		d.b = d.b[n:]
		return s
	}
	var prefix string
	switch h {
	case strHash:
	case strUserHash:
		prefix = userPrefix
	case strAnonHash:
		prefix = anonPrefix
	default:
		d.fail()
		return ""
	}
	if len(d.b) < 32 {
		d.fail()
		return ""
	}
	var buf [2 + 64]byte // on the stack: the string is the one allocation
	n := copy(buf[:], prefix)
	hex.Encode(buf[n:], d.b[:32])
	d.b = d.b[32:]
	return string(buf[:n+64])
}

func (d *binReader) list() []string {
	n := d.uvarint()
	if n > uint64(len(d.b)) { // each string takes a byte at least
		d.fail()
		return nil
	}
	l := make([]string, n)
	for i := range l {
		l[i] = d.str()
	}
	return l
}

// fields decodes fields up to tagEnd into r; nested is a part of Scoped.
func (d *binReader) fields(r *record, nested bool) {
	for d.err == nil {
		switch tag := d.byte(); tag {
		case tagEnd:
			return
		case tagLiFatID:
			r.LiFatID = d.str()
		case tagLiFatAt:
			r.LiFatAt = d.varint()
		case tagEmail:
			r.Email = d.str()
		case tagEmailAt:
			r.EmailAt = d.varint()
		case tagLinks:
			r.Links = d.list()
		case tagAliasOf:
			r.AliasOf = d.str()
		case tagGroups:
			r.Groups = d.list()
		case tagFirst:
			r.First = d.varint()
		case tagScoped:
			n := d.uvarint()
			if nested || n > uint64(len(d.b)) {
				d.fail()
				return
			}
			r.Scoped = make(map[string]*record, n)
			for range n {
				src := d.str()
				switch d.byte() {
				case 0:
					r.Scoped[src] = nil
				case 1:
					p := &record{}
					d.fields(p, true)
					r.Scoped[src] = p
				default:
					d.fail()
				}
			}
		default:
			d.fail()
		}
	}
}

// decodeRecord decodes a stored profile into r: the compact encoding, or
// JSON (the bucket's, and what the local store wrote before format 2).
func decodeRecord(data []byte, r *record) error {
	if len(data) == 0 || data[0] != recordBinary {
		return json.Unmarshal(data, r)
	}
	d := binReader{b: data[1:]}
	d.fields(r, false)
	if d.err == nil && len(d.b) != 0 {
		d.fail()
	}
	return d.err
}

package dedup

import (
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"hash"
	"sync"
)

// Key is the index's key for one (source, messageId) pair: a keyed 128-bit
// hash, so that the index has a bounded key size and holds no messageId (an
// email, in badly written clients) in clear. The zero Key is a valid key
// like any other; HashKey never returns it in practice.
type Key [16]byte

// HashKey returns the key of (source, messageID) under secret: HMAC-SHA256
// (RFC 2104) truncated to its first 128 bits, of the message
// uvarint(len(source)) || source || messageID, an unambiguous encoding of
// the pair. The same inputs give the same key in every process and
// release (the index on disk depends on it); another secret gives unrelated
// keys. It is safe for concurrent use and does not allocate: the two
// SHA-256 passes run over stack buffers (crypto/hmac would allocate two
// hash states per call), and SHA-256 is the cheapest keyed hash of the
// standard library on CPUs with SHA extensions (BenchmarkHashKey).
func HashKey(secret []byte, source, messageID string) Key {
	k := hmacKey(secret)
	// Inner hash: SHA-256((k ^ ipad) || message). Short pairs fit the stack
	// buffer; a longer one (messageIds are not bounded here) grows it.
	var ibuf [256]byte
	in := ibuf[:block]
	for i := range k {
		in[i] = k[i] ^ 0x36
	}
	in = binary.AppendUvarint(in, uint64(len(source)))
	in = append(in, source...)
	in = append(in, messageID...)
	inner := sha256.Sum256(in)
	// Outer hash: SHA-256((k ^ opad) || inner).
	var out [block + sha256.Size]byte
	for i := range k {
		out[i] = k[i] ^ 0x5c
	}
	copy(out[block:], inner[:])
	sum := sha256.Sum256(out[:])
	var key Key
	copy(key[:], sum[:len(key)])
	return key
}

// block is SHA-256's block size, HMAC's key length.
const block = 64

// hmacKey is HMAC's key K0 of RFC 2104 for secret: secret hashed when
// longer than a block, then padded with zeros to a block.
func hmacKey(secret []byte) (k [block]byte) {
	if len(secret) > block {
		s := sha256.Sum256(secret)
		copy(k[:], s[:])
	} else {
		copy(k[:], secret)
	}
	return k
}

// A Hasher computes HashKey under one secret, faster: the SHA-256 states
// after the two padded keys (HMAC's ipad and opad blocks) are computed once
// and restored for each key (encoding.BinaryUnmarshaler, what crypto/hmac's
// Reset does, without its wrappers), so that a key costs two SHA-256
// blocks instead of four for the pairs ingest sees (source and messageId
// under 55 bytes). It is safe for concurrent use; Key does not allocate.
type Hasher struct {
	secret []byte
	// The marshaled SHA-256 states after (k ^ ipad) and after (k ^ opad);
	// nil when the hash cannot be restored (never with the standard
	// library's SHA-256): then Key is HashKey.
	inner, outer []byte
	pool         sync.Pool // of *hasherState
}

// restorable is a hash whose state can be set (SHA-256's digest).
type restorable interface {
	hash.Hash
	encoding.BinaryUnmarshaler
}

type hasherState struct {
	in, out restorable
	buf     []byte // the message, then the sums
}

// NewHasher returns a Hasher for secret (which it does not copy).
func NewHasher(secret []byte) *Hasher {
	h := &Hasher{secret: secret}
	k := hmacKey(secret)
	state := func(pad byte) []byte {
		var b [block]byte
		for i := range k {
			b[i] = k[i] ^ pad
		}
		d := sha256.New()
		d.Write(b[:])
		m, ok := d.(encoding.BinaryMarshaler)
		if _, restores := d.(restorable); !ok || !restores {
			return nil
		}
		st, err := m.MarshalBinary()
		if err != nil {
			return nil
		}
		return st
	}
	h.inner, h.outer = state(0x36), state(0x5c)
	if h.inner == nil || h.outer == nil {
		h.inner, h.outer = nil, nil
	}
	return h
}

// Key is HashKey(secret, source, messageID).
func (h *Hasher) Key(source, messageID string) Key {
	if h.inner == nil {
		return HashKey(h.secret, source, messageID)
	}
	st, _ := h.pool.Get().(*hasherState)
	if st == nil {
		st = &hasherState{in: sha256.New().(restorable), out: sha256.New().(restorable), buf: make([]byte, 0, 256)}
	}
	// The states were marshaled by the same hash: restoring cannot fail.
	_ = st.in.UnmarshalBinary(h.inner)
	msg := binary.AppendUvarint(st.buf[:0], uint64(len(source)))
	msg = append(msg, source...)
	msg = append(msg, messageID...)
	st.in.Write(msg)
	sum := st.in.Sum(msg[:0])
	_ = st.out.UnmarshalBinary(h.outer)
	st.out.Write(sum)
	sum = st.out.Sum(sum[:0])
	var key Key
	copy(key[:], sum)
	if cap(msg) <= 1024 {
		st.buf = msg[:0]
		h.pool.Put(st)
	}
	return key
}

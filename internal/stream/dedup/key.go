package dedup

import (
	"crypto/hmac"
	"crypto/sha256"
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
	const block = 64 // SHA-256's block size
	var k [block]byte
	if len(secret) > block {
		s := sha256.Sum256(secret)
		copy(k[:], s[:])
	} else {
		copy(k[:], secret)
	}
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

// A Hasher computes HashKey under one secret, faster: the SHA-256 states
// after the two padded keys (HMAC's ipad and opad blocks) are computed once
// by crypto/hmac and restored for each key, so that a key costs two
// SHA-256 blocks instead of four for the pairs ingest sees (source and
// messageId under 55 bytes). It is safe for concurrent use; Key does not
// allocate.
type Hasher struct {
	secret []byte
	pool   sync.Pool // of *hasherState
}

type hasherState struct {
	mac hash.Hash
	buf []byte // the message, then the sum
}

// NewHasher returns a Hasher for secret (which it does not copy).
func NewHasher(secret []byte) *Hasher {
	return &Hasher{secret: secret}
}

// Key is HashKey(secret, source, messageID).
func (h *Hasher) Key(source, messageID string) Key {
	st, _ := h.pool.Get().(*hasherState)
	if st == nil {
		st = &hasherState{mac: hmac.New(sha256.New, h.secret), buf: make([]byte, 0, 256)}
	}
	st.mac.Reset()
	msg := binary.AppendUvarint(st.buf[:0], uint64(len(source)))
	msg = append(msg, source...)
	msg = append(msg, messageID...)
	st.mac.Write(msg)
	sum := st.mac.Sum(msg[:0])
	var key Key
	copy(key[:], sum)
	if cap(msg) <= 1024 {
		st.buf = msg[:0]
		h.pool.Put(st)
	}
	return key
}

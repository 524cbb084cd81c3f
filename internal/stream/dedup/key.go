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

// HashKey returns the key of (source, messageID) under secret: the first
// 128 bits of SHA-256(K || uvarint(len(source)) || source || messageID),
// K the secret padded with zeros to SHA-256's block of 64 bytes (hashed
// first when longer), the message an unambiguous encoding of the pair. The
// same inputs give the same key in every process and release of one index
// format (the index on disk depends on it: format); another secret gives
// unrelated keys. It is safe for concurrent use and does not allocate for
// pairs under 192 bytes.
//
// Why a secret prefix and not HMAC (index format 1): with K filling the
// first block, SHA-256's state after it is a function of the secret alone,
// so the key is SHA-256's compression keyed through its chaining value,
// the assumption HMAC's own proof rests on (NMAC); HMAC's second pass
// guards against length extension, which needs the whole 256-bit state
// and so does not apply to a key truncated to 128 bits that no client
// ever sees. A Hasher restores the state after K and so hashes a pair of
// under 56 bytes (all that ingest sees) with one SHA-256 block where HMAC
// took two: ~140 against ~250 CPU-ns per key on the 2-vCPU AMD EPYC VM
// (BenchmarkHasher), ~2% of a batch event's CPU (docs/storage.md, "The
// index's cost per key (session 21)"). 128 bits keep collisions out of
// reach: ~4e-24 for 50 million keys in a window.
func HashKey(secret []byte, source, messageID string) Key {
	// Short pairs fit the stack buffer; a longer one (messageIds are not
	// bounded here) grows it.
	var buf [256]byte
	k := keyBlock(secret)
	in := append(buf[:0], k[:]...)
	in = binary.AppendUvarint(in, uint64(len(source)))
	in = append(in, source...)
	in = append(in, messageID...)
	sum := sha256.Sum256(in)
	var key Key
	copy(key[:], sum[:len(key)])
	return key
}

// block is SHA-256's block size, the length of the key block K.
const block = 64

// keyBlock is HashKey's K for secret: secret hashed when longer than a
// block, then padded with zeros to a block (as HMAC's K0 of RFC 2104).
func keyBlock(secret []byte) (k [block]byte) {
	if len(secret) > block {
		s := sha256.Sum256(secret)
		copy(k[:], s[:])
	} else {
		copy(k[:], secret)
	}
	return k
}

// A Hasher computes HashKey under one secret, faster: SHA-256's state after
// the key block is computed once and restored for each key
// (encoding.BinaryUnmarshaler; crypto/sha256 exports no other way to set
// it), so that a key costs one SHA-256 block instead of two for the pairs
// ingest sees (source and messageId under 56 bytes). It is safe for
// concurrent use; Key does not allocate.
type Hasher struct {
	secret []byte
	// keyed is the marshaled SHA-256 state after the key block; nil when
	// the hash cannot be restored (never with the standard library's
	// SHA-256): then Key is HashKey.
	keyed []byte
	pool  sync.Pool // of *hasherState
}

// restorable is a hash whose state can be set (SHA-256's digest).
type restorable interface {
	hash.Hash
	encoding.BinaryUnmarshaler
}

type hasherState struct {
	d   restorable
	buf []byte // the message, then the sum
}

// NewHasher returns a Hasher for secret (which it does not copy).
func NewHasher(secret []byte) *Hasher {
	h := &Hasher{secret: secret}
	k := keyBlock(secret)
	d := sha256.New()
	d.Write(k[:])
	m, ok := d.(encoding.BinaryMarshaler)
	if _, restores := d.(restorable); ok && restores {
		if st, err := m.MarshalBinary(); err == nil {
			h.keyed = st
		}
	}
	return h
}

// Key is HashKey(secret, source, messageID).
func (h *Hasher) Key(source, messageID string) Key {
	if h.keyed == nil {
		return HashKey(h.secret, source, messageID)
	}
	st, _ := h.pool.Get().(*hasherState)
	if st == nil {
		st = &hasherState{d: sha256.New().(restorable), buf: make([]byte, 0, 256)}
	}
	// The state was marshaled by the same hash: restoring cannot fail.
	_ = st.d.UnmarshalBinary(h.keyed)
	msg := binary.AppendUvarint(st.buf[:0], uint64(len(source)))
	msg = append(msg, source...)
	msg = append(msg, messageID...)
	st.d.Write(msg)
	sum := st.d.Sum(msg[:0])
	var key Key
	copy(key[:], sum)
	if cap(msg) <= 1024 {
		st.buf = msg[:0]
		h.pool.Put(st)
	}
	return key
}

package secret

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
)

// KeySize is the length of a key in bytes (AES-256).
const KeySize = 32

// version is the envelope format Seal writes.
const version = 1

// Errors Open returns, wrapped with details.
var (
	// ErrNoKey means a value is encrypted but no key was given.
	ErrNoKey = errors.New("the value is encrypted and no secret key is configured (server.secret_key)")
	// ErrWrongKey means a value was sealed under another key.
	ErrWrongKey = errors.New("the value was encrypted with another key")
	// ErrCorrupt means a value is an envelope that does not open: its
	// ciphertext, nonce or associated data were changed, or it is damaged.
	ErrCorrupt = errors.New("the encrypted value is damaged or was tampered with")
)

// Key is an AES-256-GCM key with its id. It is safe for concurrent use;
// a nil *Key means "no key": Seal then leaves values in plaintext.
type Key struct {
	id   string
	aead cipher.AEAD
}

// NewKey returns the key of raw, which must be KeySize bytes.
func NewKey(raw []byte) (*Key, error) {
	if len(raw) != KeySize {
		return nil, fmt.Errorf("a secret key is %d bytes, got %d", KeySize, len(raw))
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(raw)
	return &Key{id: hex.EncodeToString(sum[:4]), aead: aead}, nil
}

// ParseKey returns the key written in standard base64 (as `capstan
// secret-key new` prints it).
func ParseKey(b64 string) (*Key, error) {
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("a secret key is %d bytes in base64: %w", KeySize, err)
	}
	return NewKey(raw)
}

// Generate returns a new random key in base64.
func Generate() string {
	var raw [KeySize]byte
	_, _ = rand.Read(raw[:]) // never fails (crypto/rand)
	return base64.StdEncoding.EncodeToString(raw[:])
}

// ID returns the key's id: the first 4 bytes of its SHA-256, in hex.
func (k *Key) ID() string {
	if k == nil {
		return ""
	}
	return k.id
}

// envelope is a sealed value.
type envelope struct {
	V     int    `json:"v"`
	KID   string `json:"kid"`
	Nonce []byte `json:"nonce"`
	CT    []byte `json:"ct"`
}

// Seal encrypts plaintext under k, authenticating ad (not stored: Open
// needs the same), and returns the envelope. With a nil k it returns
// plaintext unchanged (server.insecure_plaintext_secrets).
func Seal(k *Key, plaintext, ad []byte) ([]byte, error) {
	if k == nil {
		return plaintext, nil
	}
	nonce := make([]byte, k.aead.NonceSize())
	_, _ = rand.Read(nonce)
	return json.Marshal(envelope{V: version, KID: k.id, Nonce: nonce, CT: k.aead.Seal(nil, nonce, plaintext, ad)})
}

// Open returns the plaintext of value, sealed by Seal with k and ad. A
// value that is not an envelope is returned as it is, with sealed false:
// it was written in plaintext. Errors wrap ErrNoKey, ErrWrongKey or
// ErrCorrupt.
func Open(k *Key, value, ad []byte) (plaintext []byte, sealed bool, err error) {
	env, ok := parse(value)
	if !ok {
		return value, false, nil
	}
	switch {
	case env.V != version:
		return nil, true, fmt.Errorf("%w: unknown envelope version %d", ErrCorrupt, env.V)
	case k == nil:
		return nil, true, fmt.Errorf("%w (the value's key id is %s)", ErrNoKey, env.KID)
	case env.KID != k.id:
		return nil, true, fmt.Errorf("%w: key id %s, the configured key is %s", ErrWrongKey, env.KID, k.id)
	case len(env.Nonce) != k.aead.NonceSize():
		return nil, true, fmt.Errorf("%w: the nonce is %d bytes, not %d", ErrCorrupt, len(env.Nonce), k.aead.NonceSize())
	}
	p, err := k.aead.Open(nil, env.Nonce, env.CT, ad)
	if err != nil {
		return nil, true, fmt.Errorf("%w (key id %s)", ErrCorrupt, k.id)
	}
	return p, true, nil
}

// IsSealed reports whether value is an envelope (whichever its key).
func IsSealed(value []byte) bool {
	_, ok := parse(value)
	return ok
}

// parse reads an envelope: a JSON object with a version and a ciphertext.
func parse(value []byte) (envelope, bool) {
	var env envelope
	if !bytes.HasPrefix(bytes.TrimSpace(value), []byte("{")) {
		return env, false
	}
	if json.Unmarshal(value, &env) != nil || env.V == 0 || env.CT == nil {
		return env, false
	}
	return env, true
}

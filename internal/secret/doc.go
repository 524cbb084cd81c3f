// Package secret encrypts the secrets capstan keeps at rest, with AES-256-GCM
// under server.secret_key. It is small on purpose: Seal, Open, and the key
// type; it does no I/O and imports no other capstan package.
//
// What is encrypted: the LinkedIn tokens capstan obtains at run time (a
// refreshed access token, an operator's token installed through the admin
// API), which it keeps in the state bucket ("token.<destination>"). The
// configured credentials stay where the operator put them (the
// environment, the configuration file). The embedded engine's
// data_dir/engine.json is not encrypted: its token is random for each
// start, opens only a loopback port, and its file (mode 0600) sits beside
// the store it protects, which anyone able to read it can read directly;
// encrypting it would only make `capstan events tail` need the key.
//
// The envelope is JSON, so that a value is recognisable and versioned:
//
//	{"v":1,"kid":"3f2a9c01","nonce":"<base64, 12 bytes>","ct":"<base64>"}
//
// v is the format (1: AES-256-GCM), kid the key's id (the first 4 bytes of
// the SHA-256 of the key, in hex; it names the key, it reveals nothing of
// it), nonce a random 12-byte nonce drawn for each value, and ct the
// ciphertext with GCM's 16-byte tag. The caller's associated data (capstan
// uses the value's key in the bucket) is authenticated, not stored: a
// value copied under another name does not open.
//
// A value that is not an envelope is plaintext, written by capstan before
// it encrypted, or with server.insecure_plaintext_secrets: Open returns it
// as it is and reports it, so that the caller writes it again sealed.
//
// Key rotation: `capstan secret-key rotate` opens every stored secret with
// the old key and seals it with the new one (see cmd/capstan).
package secret

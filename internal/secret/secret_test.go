package secret

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func mustKey(t testing.TB) *Key {
	t.Helper()
	k, err := ParseKey(Generate())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpen(t *testing.T) {
	k := mustKey(t)
	plain := []byte(`{"token":{"access_token":"AQV-secret-token"}}`)
	ad := []byte("token.linkedin")
	sealed, err := Seal(k, plain, ad)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("AQV-secret-token")) {
		t.Fatalf("sealed value holds the plaintext: %s", sealed)
	}
	var env map[string]any
	if err := json.Unmarshal(sealed, &env); err != nil || env["v"] != float64(1) || env["kid"] != k.ID() {
		t.Fatalf("envelope %s: want v 1 and kid %s (%v)", sealed, k.ID(), err)
	}
	again, _ := Seal(k, plain, ad)
	if bytes.Equal(sealed, again) {
		t.Error("two seals of one value are equal: the nonce is not random")
	}
	got, wasSealed, err := Open(k, sealed, ad)
	if err != nil || !wasSealed || !bytes.Equal(got, plain) {
		t.Fatalf("Open = %q, %v, %v; want the plaintext, true, nil", got, wasSealed, err)
	}
}

func TestOpenErrors(t *testing.T) {
	k, other := mustKey(t), mustKey(t)
	ad := []byte("token.linkedin")
	sealed, err := Seal(k, []byte("secret"), ad)
	if err != nil {
		t.Fatal(err)
	}
	tamper := func(f func(*envelope)) []byte {
		var env envelope
		if err := json.Unmarshal(sealed, &env); err != nil {
			t.Fatal(err)
		}
		f(&env)
		b, _ := json.Marshal(env)
		return b
	}
	tests := []struct {
		name  string
		key   *Key
		value []byte
		ad    string
		want  error
		msg   string
	}{
		{name: "wrong key", key: other, value: sealed, ad: "token.linkedin", want: ErrWrongKey, msg: "key id " + k.ID() + ", the configured key is " + other.ID()},
		{name: "no key", key: nil, value: sealed, ad: "token.linkedin", want: ErrNoKey, msg: k.ID()},
		{name: "tampered ciphertext", key: k, value: tamper(func(e *envelope) { e.CT[0] ^= 1 }), ad: "token.linkedin", want: ErrCorrupt},
		{name: "tampered nonce", key: k, value: tamper(func(e *envelope) { e.Nonce[3] ^= 1 }), ad: "token.linkedin", want: ErrCorrupt},
		{name: "short nonce", key: k, value: tamper(func(e *envelope) { e.Nonce = e.Nonce[:4] }), ad: "token.linkedin", want: ErrCorrupt},
		{name: "other associated data", key: k, value: sealed, ad: "token.other", want: ErrCorrupt},
		{name: "unknown version", key: k, value: tamper(func(e *envelope) { e.V = 2 }), ad: "token.linkedin", want: ErrCorrupt, msg: "version 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, wasSealed, err := Open(tt.key, tt.value, []byte(tt.ad))
			if !errors.Is(err, tt.want) || got != nil || !wasSealed {
				t.Fatalf("Open = %q, %v, %v; want nil, true, %v", got, wasSealed, err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q lacks %q", err, tt.msg)
			}
		})
	}
}

func TestOpenPlaintext(t *testing.T) {
	k := mustKey(t)
	for _, v := range []string{`{"token":{"access_token":"AQV-old"},"config":"abc"}`, `plain text`, ``, `{"v":1}`} {
		got, sealed, err := Open(k, []byte(v), nil)
		if err != nil || sealed || string(got) != v {
			t.Errorf("Open(%q) = %q, %v, %v; want it back as plaintext", v, got, sealed, err)
		}
		if IsSealed([]byte(v)) {
			t.Errorf("IsSealed(%q) = true", v)
		}
	}
	// Without a key, Seal is the identity (insecure_plaintext_secrets).
	if got, err := Seal(nil, []byte("x"), nil); err != nil || string(got) != "x" {
		t.Errorf("Seal(nil) = %q, %v; want the plaintext", got, err)
	}
}

func TestParseKey(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{name: "not base64", in: "not base64!", want: "illegal base64 data"},
		{name: "too short", in: base64.StdEncoding.EncodeToString(make([]byte, 16)), want: "is 32 bytes, got 16"},
		{name: "too long", in: base64.StdEncoding.EncodeToString(make([]byte, 33)), want: "is 32 bytes, got 33"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseKey(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseKey(%q) = %v, want an error with %q", tt.in, err, tt.want)
			}
		})
	}
	a, b := mustKey(t), mustKey(t)
	if a.ID() == b.ID() || len(a.ID()) != 8 {
		t.Errorf("key ids %q and %q: want 8 hex digits, different", a.ID(), b.ID())
	}
}

// FuzzOpen: Open never panics, and what it opens was sealed.
func FuzzOpen(f *testing.F) {
	k, _ := ParseKey(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, KeySize)))
	s, _ := Seal(k, []byte("secret"), nil)
	f.Add(s)
	f.Add([]byte(`{"v":1,"kid":"x","nonce":"AAAA","ct":"AAAA"}`))
	f.Fuzz(func(t *testing.T, v []byte) {
		p, sealed, err := Open(k, v, nil)
		if err == nil && sealed && string(p) != "secret" {
			t.Fatalf("opened a value that was not sealed: %q", p)
		}
	})
}

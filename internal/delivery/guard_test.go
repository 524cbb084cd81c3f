package delivery

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
)

// TestGuardKeyIsStable pins the bucket key of an eventId: keys already
// stored by an older capstan must be found again, so the key must stay
// sha256(dest NUL scope NUL id), 128 bits in hex, after "e.", and its subject
// the bucket's subject of that key, also for inputs longer than the stack
// buffer guardSubject hashes in.
func TestGuardKeyIsStable(t *testing.T) {
	old := func(dest, scope, id string) string {
		sum := sha256.Sum256([]byte(dest + "\x00" + scope + "\x00" + id))
		return "e." + hex.EncodeToString(sum[:16])
	}
	for _, tc := range []struct{ dest, scope, id string }{
		{"linkedin", "urn:lla:llaPartnerConversion:123", "order-1"},
		{"", "", ""},
		{"li", "urn:lla:llaPartnerConversion:9", strings.Repeat("é", 300)},
	} {
		want := old(tc.dest, tc.scope, tc.id)
		if got := guardKey(tc.dest, tc.scope, tc.id); got != want {
			t.Errorf("guardKey(%q, %q, …) = %s, want %s", tc.dest, tc.scope, got, want)
		}
		if got, want := guardSubject(tc.dest, tc.scope, tc.id), "$KV."+GuardKV+"."+want; got != want {
			t.Errorf("guardSubject(%q, %q, …) = %s, want %s", tc.dest, tc.scope, got, want)
		}
	}
	if got, want := guardKey("linkedin", "urn:lla:llaPartnerConversion:123", "order-1"), "e.495ab652d27edb4d3b645309f3ba4138"; got != want {
		t.Errorf("guardKey = %s, want %s", got, want)
	}
}

// TestCreatedAck: only JetStream's acknowledgement of a stored message
// counts as a created key; an API error (the key exists: wrong last
// sequence), a status reply (no responders) or nothing sends the key to the
// slow path.
func TestCreatedAck(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    *nats.Msg
		want bool
	}{
		{"stored", &nats.Msg{Data: []byte(`{"stream":"KV_` + GuardKV + `","seq":12}`)}, true},
		{"stored in a domain", &nats.Msg{Data: []byte(`{"stream":"KV_` + GuardKV + `","domain":"hub","seq":12}`)}, true},
		{"key exists", &nats.Msg{Data: []byte(`{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 7"},"stream":"KV_` + GuardKV + `","seq":0}`)}, false},
		{"no responders", &nats.Msg{Header: nats.Header{"Status": []string{"503"}}}, false},
		{"empty", &nats.Msg{}, false},
	} {
		if got := createdAck(tc.m); got != tc.want {
			t.Errorf("%s: createdAck = %v, want %v", tc.name, got, tc.want)
		}
	}
}

package privacy

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/capstan-gw/capstan/internal/event"
	"github.com/capstan-gw/capstan/internal/identity"
)

// Key prefixes; a key is a prefix and the lower-case hex SHA-256 of the id.
// The user and anonymous prefixes are the identity graph's.
const (
	userPrefix  = "u."
	anonPrefix  = "a."
	emailPrefix = "e."
)

// Kinds of ids a request names, as audit records and reports give them.
const (
	KindUserID      = "userId"
	KindAnonymousID = "anonymousId"
	KindEmail       = "email"
)

// emailPaths are where an event carries an email.
var emailPaths = [][]string{
	{"traits", "email"},
	{"context", "traits", "email"},
	{"properties", "email"},
}

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// keysOf returns the keys of the ids ev carries: userId, anonymousId,
// previousId (as a user and as an anonymous id: an alias names either) and
// each email. hashEmail normalises and hashes an email.
func keysOf(ev event.Value, hashEmail func(string) (string, bool), fn func(key string) bool) bool {
	if s, ok := ev.Get("userId").Str(); ok && s != "" && fn(identity.UserKey(s)) {
		return true
	}
	if s, ok := ev.Get("anonymousId").Str(); ok && s != "" && fn(identity.AnonymousKey(s)) {
		return true
	}
	if s, ok := ev.Get("previousId").Str(); ok && s != "" && (fn(identity.UserKey(s)) || fn(identity.AnonymousKey(s))) {
		return true
	}
	for _, p := range emailPaths {
		if s, ok := ev.Lookup(p...).Str(); ok {
			if h, ok := hashEmail(s); ok && fn(emailPrefix+h) {
				return true
			}
		}
	}
	return false
}

// set is a set of keys.
type set map[string]bool

// matches reports whether ev carries an id of s.
func (s set) matches(ev event.Value, hashEmail func(string) (string, bool)) bool {
	if len(s) == 0 {
		return false
	}
	return keysOf(ev, hashEmail, func(k string) bool { return s[k] })
}

// matchesDoc reports whether the JSON document of an event carries an id of
// s; a document that does not parse matches nothing.
func (s set) matchesDoc(doc []byte, hashEmail func(string) (string, bool)) bool {
	if len(doc) == 0 {
		return false
	}
	ev, err := event.Parse(doc)
	if err != nil {
		return false
	}
	return s.matches(ev, hashEmail)
}

package admin

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"sync"
	"time"
)

// Session lifetimes: a console session ends after SessionIdle without a
// request, and SessionMax after it was created, whichever comes first.
const (
	SessionIdle = 2 * time.Hour
	SessionMax  = 12 * time.Hour
)

// maxSessions bounds the sessions kept at once: signing in beyond it ends
// the oldest session.
const maxSessions = 10000

// sessionCookie is the console's cookie; it holds the session id only.
const sessionCookie = "capstan_session"

// csrfHeader carries the session's CSRF token on every state-changing
// request made with the cookie.
const csrfHeader = "X-CSRF-Token"

// session is one signed-in console user. Its id is never kept: the store
// is keyed by the id's SHA-256.
type session struct {
	user    string // the user's name, or "admin token"
	role    Role
	csrf    string
	created time.Time
	seen    time.Time // the last request
}

// expires returns when s ends if no request comes first.
func (s *session) expires() time.Time {
	idle, max := s.seen.Add(SessionIdle), s.created.Add(SessionMax)
	if idle.Before(max) {
		return idle
	}
	return max
}

// sessions is the in-memory session store: a restart signs everyone out.
type sessions struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]*session
}

func newSessions() *sessions {
	return &sessions{m: map[[sha256.Size]byte]*session{}}
}

// randomToken returns 32 random bytes, URL-safe base64.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// create starts a session for user with role and returns its id and a
// copy of it.
func (st *sessions) create(user string, role Role, now time.Time) (string, session) {
	id := randomToken()
	s := &session{user: user, role: role, csrf: randomToken(), created: now, seen: now}
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.m) >= maxSessions {
		st.sweep(now)
	}
	if len(st.m) >= maxSessions {
		var oldest [sha256.Size]byte
		var ot time.Time
		for k, v := range st.m {
			if ot.IsZero() || v.created.Before(ot) {
				oldest, ot = k, v.created
			}
		}
		delete(st.m, oldest)
	}
	st.m[sha256.Sum256([]byte(id))] = s
	return id, *s
}

// sweep removes the expired sessions. st.mu is held.
func (st *sessions) sweep(now time.Time) {
	for k, v := range st.m {
		if !now.Before(v.expires()) {
			delete(st.m, k)
		}
	}
}

// get returns the live session of id and marks it seen at now; an expired
// one is removed.
func (st *sessions) get(id string, now time.Time) (session, bool) {
	if id == "" {
		return session{}, false
	}
	k := sha256.Sum256([]byte(id))
	st.mu.Lock()
	defer st.mu.Unlock()
	s := st.m[k]
	if s == nil {
		return session{}, false
	}
	if !now.Before(s.expires()) {
		delete(st.m, k)
		return session{}, false
	}
	s.seen = now
	return *s, true
}

// end removes the session of id.
func (st *sessions) end(id string) {
	k := sha256.Sum256([]byte(id))
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.m, k)
}

// len returns how many sessions are kept (expired ones not yet removed
// included).
func (st *sessions) len() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.m)
}

// csrfOK reports whether got is the session's CSRF token, in constant time.
func (s session) csrfOK(got string) bool {
	a, b := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(s.csrf))
	return got != "" && subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

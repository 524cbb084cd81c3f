package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Role is what a principal may do. Each role may do what the lower ones
// may.
type Role int

// Roles, lowest first.
const (
	// RoleViewer reads: statuses, dead letters, events, profiles, previews.
	RoleViewer Role = iota + 1
	// RoleOperator also changes state: installs tokens, deletes people,
	// replays dead letters, sends test events.
	RoleOperator
)

// String returns the role's name.
func (r Role) String() string {
	switch r {
	case RoleViewer:
		return "viewer"
	case RoleOperator:
		return "operator"
	}
	return "none"
}

// ParseRole reads a role's name: "viewer" or "operator".
func ParseRole(s string) (Role, error) {
	switch s {
	case "viewer":
		return RoleViewer, nil
	case "operator":
		return RoleOperator, nil
	}
	return 0, fmt.Errorf("role %q: use viewer or operator", s)
}

// User is a console user (server.admin_users): a name, the bcrypt hash of
// the password, and a role.
type User struct {
	Name         string
	PasswordHash string
	Role         Role
}

// tokenPrincipal is the name of the admin token's principal.
const tokenPrincipal = "admin token"

// principal is who sent a request.
type principal struct {
	// name says who it is in logs, messages and the audit log; never a
	// secret.
	name string
	role Role
	// sessionID is set when the request came with a session cookie (the
	// CSRF token is then checked on state-changing requests).
	sessionID string
	session   session
}

// authenticate says who sent r, and whether anyone valid did: the admin
// token (Authorization: Bearer), an operator; or a console session
// (cookie), with the role of whoever signed in. A request with an
// Authorization header is judged by it alone.
func (s *Server) authenticate(r *http.Request) (principal, bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || !s.hasToken {
			return principal{}, false
		}
		// Digests have one length, so the comparison's time says nothing
		// about the token's length either.
		got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
		if subtle.ConstantTimeCompare(got[:], s.token[:]) != 1 {
			return principal{}, false
		}
		return principal{name: tokenPrincipal, role: RoleOperator}, true
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return principal{}, false
	}
	sess, ok := s.sessions.get(c.Value, s.now())
	if !ok {
		return principal{}, false
	}
	return principal{name: sess.user, role: sess.role, sessionID: c.Value, session: sess}, true
}

// tokenOK reports whether tok is the admin token, as authenticate checks
// it.
func (s *Server) tokenOK(tok string) bool {
	if !s.hasToken {
		return false
	}
	got := sha256.Sum256([]byte(tok))
	return subtle.ConstantTimeCompare(got[:], s.token[:]) == 1
}

// now is the server's clock (tests move it).
func (s *Server) now() time.Time {
	if s.clock != nil {
		return s.clock()
	}
	return time.Now()
}

type principalKey struct{}

// principalOf returns who sent r, as ServeHTTP found.
func principalOf(r *http.Request) principal {
	p, _ := r.Context().Value(principalKey{}).(principal)
	return p
}

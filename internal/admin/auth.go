package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// Role is what a principal may do. Each role may do what the lower ones
// may.
type Role int

// Roles, lowest first.
const (
	// RoleViewer reads: statuses, dead letters, events, profiles, previews.
	RoleViewer Role = iota + 1
	// RoleOperator also changes state: installs tokens, deletes people,
	// replays dead letters.
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

// principal is who sent a request.
type principal struct {
	// name says who it is in logs and messages; never a secret.
	name string
	role Role
}

// authenticate says who sent r, and whether anyone valid did. Today the one
// credential is the admin token, an operator; a console session (cookie)
// would be checked here too.
func (s *Server) authenticate(r *http.Request) (principal, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return principal{}, false
	}
	// Digests have one length, so the comparison's time says nothing about
	// the token's length either.
	got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	if subtle.ConstantTimeCompare(got[:], s.token[:]) != 1 {
		return principal{}, false
	}
	return principal{name: "admin token", role: RoleOperator}, true
}

type principalKey struct{}

// principalOf returns who sent r, as ServeHTTP found.
func principalOf(r *http.Request) principal {
	p, _ := r.Context().Value(principalKey{}).(principal)
	return p
}

package admin

import (
	"context"
	"mime"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/capstan-gw/capstan/internal/audit"
)

// unknownUser is how the audit log and the log name a sign-in with a user
// name that no user has.
const unknownUser = "unknown user"

// signInBody describes signIn's body in messages.
const signInBody = `{"token": "…"} or {"username": "…", "password": "…"}`

// sessionInfo is the answer of the session routes: who is signed in.
type sessionInfo struct {
	// User is the user's name, or "admin token".
	User string `json:"user"`
	Role string `json:"role"`
	// Via is "session" (a console session, cookie) or "token" (the
	// Authorization header).
	Via string `json:"via"`
	// CSRF is the token to send in X-CSRF-Token on every state-changing
	// request of the session ("" with the Authorization header).
	CSRF string `json:"csrf"`
	// ExpiresAt is when the session ends without another request (null
	// with the Authorization header).
	ExpiresAt *time.Time `json:"expiresAt"`
}

func infoOf(p principal) sessionInfo {
	if p.sessionID == "" {
		return sessionInfo{User: p.name, Role: p.role.String(), Via: "token"}
	}
	exp := p.session.expires().UTC()
	return sessionInfo{User: p.name, Role: p.role.String(), Via: "session", CSRF: p.session.csrf, ExpiresAt: &exp}
}

// secure reports whether the cookie must be Secure: under TLS, here or
// (server.tls, SecureCookies) at the listener.
func (s *Server) secure(r *http.Request) bool { return r.TLS != nil || s.secureCookies }

// signIn: POST /admin/api/session, the one route that needs no
// credential. It checks the admin token or a user's password, then sets
// the session cookie and answers sessionInfo. Failed attempts are counted
// by client address: beyond maxFailures in failureWindow the address gets
// 429 with Retry-After until the window ends.
func (s *Server) signIn(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r.URL.Query()); err != nil {
		return err
	}
	// A sign-in from another site's page (login CSRF) is refused: browsers
	// say where a request comes from, and only a same-origin page may send
	// a JSON body without a CORS preflight that capstan would not grant.
	if site := r.Header.Get("Sec-Fetch-Site"); site == "cross-site" || site == "same-site" {
		return &apiError{http.StatusForbidden, codeForbidden, "sign-in is accepted from the console's own page only"}
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		return badRequest("the request body must be JSON (Content-Type: application/json): %s", signInBody)
	}
	addr := clientAddr(r, s.trustedProxies)
	now := s.now()
	if wait := s.throttle.wait(addr, now); wait > 0 {
		secs := int((wait + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		return &apiError{http.StatusTooManyRequests, codeTooManyRequests,
			"too many failed sign-ins from this address; try again in " + (time.Duration(secs) * time.Second).String()}
	}
	var body struct {
		Token    string `json:"token"`
		Username string `json:"username"`
		Password string `json:"password"`
	}
	if err := decodeBody(w, r, maxBody, &body, signInBody); err != nil {
		return err
	}
	var (
		who  string
		role Role
		ok   bool
		why  string
	)
	switch {
	case body.Token != "" && (body.Username != "" || body.Password != ""):
		return badRequest("give the admin token or a username and password, not both: the body must be %s", signInBody)
	case body.Token != "":
		who, role, ok = tokenPrincipal, RoleOperator, s.tokenOK(body.Token)
		why = "wrong admin token"
	case body.Username != "" && body.Password != "":
		who, role, ok = body.Username, 0, false
		why = "wrong username or password"
		if u, found := s.users[body.Username]; found {
			ok = bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(body.Password)) == nil
			role = u.Role
		} else {
			// As long as for a known user: the time does not tell
			// whether the name exists.
			_ = bcrypt.CompareHashAndPassword(s.dummyHash(), []byte(body.Password))
			// A name no user has is not kept or logged: it may be a
			// password typed in the wrong field.
			who = unknownUser
		}
	default:
		return badRequest("give the admin token, or a username and a password: the body must be %s", signInBody)
	}
	if !ok {
		s.throttle.fail(addr, now)
		s.record(r, audit.Record{By: who, Action: audit.ActionSignIn, Error: why})
		s.log.Warn("console sign-in failed", "principal", who)
		return &apiError{http.StatusUnauthorized, codeUnauthorized, why}
	}
	s.throttle.succeed(addr)
	id, sess := s.sessions.create(who, role, now)
	s.setCookie(w, r, id)
	s.record(r, audit.Record{By: who, Action: audit.ActionSignIn})
	s.log.Info("console sign-in", "principal", who, "role", role.String())
	writeJSON(w, http.StatusOK, infoOf(principal{name: who, role: role, sessionID: id, session: sess}))
	return nil
}

// setCookie sets (or, with id "", clears) the session cookie.
func (s *Server) setCookie(w http.ResponseWriter, r *http.Request, id string) {
	c := &http.Cookie{
		Name:     sessionCookie,
		Value:    id,
		Path:     "/admin/",
		HttpOnly: true,
		Secure:   s.secure(r),
		SameSite: http.SameSiteStrictMode,
	}
	if id == "" {
		c.MaxAge = -1
	} else {
		// The browser keeps it until the session's absolute end at most.
		c.MaxAge = int(SessionMax / time.Second)
	}
	http.SetCookie(w, c)
}

// showSession: GET /admin/api/session answers who is signed in, with the
// session's CSRF token.
func (s *Server) showSession(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r.URL.Query()); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, infoOf(principalOf(r)))
	return nil
}

// signOut: DELETE /admin/api/session ends the session and clears the
// cookie. With the Authorization header there is no session: it answers
// as well, and changes nothing.
func (s *Server) signOut(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r.URL.Query()); err != nil {
		return err
	}
	p := principalOf(r)
	if p.sessionID != "" {
		s.sessions.end(p.sessionID)
		s.setCookie(w, r, "")
		s.record(r, audit.Record{Action: audit.ActionSignOut})
		s.log.Info("console sign-out", "principal", p.name)
	}
	writeJSON(w, http.StatusOK, struct {
		SignedOut bool `json:"signedOut"`
	}{p.sessionID != ""})
	return nil
}

// record appends rec to the audit log, with when and (unless set) who from
// r. It is written even when the request's context ended: the action was
// done. A failure is logged; the action stays done.
func (s *Server) record(r *http.Request, rec audit.Record) {
	if s.audit == nil {
		return
	}
	if rec.By == "" {
		rec.By = principalOf(r).name
	}
	s.recordCtx(r.Context(), rec)
}

// recordCtx writes rec (whose By is set) to the audit log, even after ctx
// ended.
func (s *Server) recordCtx(ctx context.Context, rec audit.Record) {
	if s.audit == nil {
		return
	}
	rec.At = s.now().UTC()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := s.audit.Append(ctx, rec); err != nil {
		s.log.Error("audit record not written", "action", rec.Action, "principal", rec.By, "error", err)
	}
}

package identity

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
)

// AdminPath is where AdminHandler serves.
const AdminPath = "/admin/identity"

// AdminHandler serves privacy requests on the graph, for operators:
//
//	GET    /admin/identity?userId=U | ?anonymousId=A  → 200 {"success":true,"profile":{…}}
//	DELETE /admin/identity?userId=U | ?anonymousId=A  → 200 {"success":true,"removed":["u.…","a.…"]}
//
// Every request needs "Authorization: Bearer <token>" (compared in constant
// time); an empty token refuses everything. Errors are JSON
// {"success":false,"code":…,"message":…}: 401 unauthorized, 400 bad_request
// (not exactly one of the two parameters), 404 not_found, 405, 500
// internal_error (details go to the log, not to the client).
func AdminHandler(g *Graph, token string) http.Handler {
	want := sha256.Sum256([]byte(token))
	h := &adminHandler{g: g, want: want, off: token == ""}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+AdminPath, h.show)
	mux.HandleFunc("DELETE "+AdminPath, h.delete)
	mux.HandleFunc(AdminPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Allow", "GET, DELETE")
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use GET or DELETE")
	})
	return h.auth(mux)
}

type adminHandler struct {
	g    *Graph
	want [sha256.Size]byte
	off  bool
}

func (h *adminHandler) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
		if h.off || !ok || subtle.ConstantTimeCompare(got[:], h.want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="capstan admin"`)
			writeError(w, http.StatusUnauthorized, "unauthorized", "a valid admin token is required (Authorization: Bearer <server.admin_token>)")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func keyOf(r *http.Request) (Key, bool) {
	q := r.URL.Query()
	k := Key{UserID: strings.TrimSpace(q.Get("userId")), AnonymousID: strings.TrimSpace(q.Get("anonymousId"))}
	_, err := k.kvKey()
	return k, err == nil
}

func (h *adminHandler) show(w http.ResponseWriter, r *http.Request) {
	k, ok := keyOf(r)
	if !ok {
		writeError(w, http.StatusBadRequest, "bad_request", "give exactly one of the query parameters userId and anonymousId")
		return
	}
	p, err := h.g.Show(r.Context(), k)
	if h.failed(w, err) {
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Success bool    `json:"success"`
		Profile Profile `json:"profile"`
	}{true, p})
}

func (h *adminHandler) delete(w http.ResponseWriter, r *http.Request) {
	k, ok := keyOf(r)
	if !ok {
		writeError(w, http.StatusBadRequest, "bad_request", "give exactly one of the query parameters userId and anonymousId")
		return
	}
	removed, err := h.g.Delete(r.Context(), k)
	if h.failed(w, err) {
		return
	}
	h.g.log.Info("identity deleted by admin request", "keys_removed", len(removed))
	writeJSON(w, http.StatusOK, struct {
		Success bool     `json:"success"`
		Removed []string `json:"removed"`
	}{true, removed})
}

// failed writes the error response for err and reports whether there was one.
func (h *adminHandler) failed(w http.ResponseWriter, err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", "the identity graph holds nothing for this id")
	case errors.Is(err, ErrBadKey):
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
	default:
		h.g.log.Error("identity admin request failed", "error", err)
		writeError(w, http.StatusInternalServerError, "internal_error", "the identity graph could not be read or changed; see the server log")
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"success":false,"code":"internal_error","message":"cannot encode response"}`)
	}
	hd := w.Header()
	hd.Set("Content-Type", "application/json; charset=utf-8")
	hd.Set("Cache-Control", "no-store")
	hd.Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, struct {
		Success bool   `json:"success"`
		Code    string `json:"code"`
		Message string `json:"message"`
	}{false, code, msg})
}

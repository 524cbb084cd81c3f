package ingest

import (
	"net/http"

	"github.com/capstan-gw/capstan/internal/event"
	"github.com/capstan-gw/capstan/internal/identity"
)

// CookieName is capstan's first-party cookie holding the LinkedIn click id.
// Script-set cookies are capped at 7 days (or less) by browsers; a cookie
// set by the server in an HTTP response, on the site's own domain, lives its
// full 90 days, which is LinkedIn's look-back window.
const CookieName = "capstan_lfi"

// cookieMaxAge is 90 days, in seconds.
const cookieMaxAge = 90 * 24 * 60 * 60

// setCookie sets capstan_lfi when the browser event doc carries li_fat_id.
// It reports whether it did.
func (h *Handler) setCookie(w http.ResponseWriter, s *source, doc []byte) bool {
	ev, err := event.Parse(doc)
	if err != nil {
		return false
	}
	if !identity.ConsentAllows(ev, h.consent) {
		// Keeping the click id would defeat the visitor's choice: it would
		// reach LinkedIn later, once consent is given for another page.
		return false
	}
	c := identity.Capture(ev)
	if !validLiFatID(c.LiFatID) {
		return false
	}
	http.SetCookie(w, &http.Cookie{
		Name:     CookieName,
		Value:    c.LiFatID,
		Path:     "/",
		Domain:   s.cfg.CookieDomain,
		MaxAge:   cookieMaxAge,
		HttpOnly: true,
		Secure:   true,
		SameSite: http.SameSiteLaxMode,
	})
	return true
}

// validLiFatID accepts what can be a click id and travel in a cookie and a
// header: 1 to 256 characters of letters, digits, '-', '_', '.', '~'.
func validLiFatID(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~') {
			return false
		}
	}
	return true
}

// denied reports whether the event doc's consent denies a required category.
func (h *Handler) denied(doc []byte) bool {
	ev, err := event.Parse(doc)
	return err == nil && !identity.ConsentAllows(ev, h.consent)
}

// clearCookie expires capstan_lfi in the browser.
func (h *Handler) clearCookie(w http.ResponseWriter, s *source) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", Domain: s.cfg.CookieDomain,
		MaxAge: -1, HttpOnly: true, Secure: true, SameSite: http.SameSiteLaxMode})
}

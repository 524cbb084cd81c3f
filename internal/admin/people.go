package admin

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/capstan-gw/capstan/internal/identity"
	"github.com/capstan-gw/capstan/internal/privacy"
)

// Person is one profile of the identity graph as the console's People page
// shows it, with the consent of the person's newest stored event.
type Person struct {
	identity.Profile
	// Consent is context.consent.categoryPreferences of the newest stored
	// event of the profile's ids (null: that event carried none, or none
	// is stored since the profile's last update); ConsentAt is that
	// event's time.
	Consent   map[string]any `json:"consent"`
	ConsentAt *time.Time     `json:"consentAt"`
}

// maxConsentScan bounds the events read to find a person's consent: from
// the profile's last update on, at most this many.
const maxConsentScan = 200000

// listPeople: GET /admin/api/people?userId=U | ?anonymousId=A |
// ?emailSha256=H answers {"people": [Person, …]}: the one profile of the
// id, or the profiles of the ids whose events carry the email (which reads
// every stored event). Nobody found is an empty list.
func (s *Server) listPeople(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := checkQuery(q, "userId", "anonymousId", "emailSha256"); err != nil {
		return err
	}
	uid, aid, eh := strings.TrimSpace(q.Get("userId")), strings.TrimSpace(q.Get("anonymousId")), strings.TrimSpace(q.Get("emailSha256"))
	n := 0
	for _, v := range []string{uid, aid, eh} {
		if v != "" {
			n++
		}
	}
	if n != 1 {
		return badRequest("give exactly one of the query parameters userId, anonymousId and emailSha256")
	}
	var keys []identity.Key
	switch {
	case eh != "":
		if !privacy.IsSHA256(eh) {
			return badRequest("emailSha256 %q: give the SHA-256 of the trimmed, lower-cased email, 64 lower-case hex digits", eh)
		}
		if s.privacy == nil {
			return &apiError{http.StatusServiceUnavailable, codeUnavailable, "looking people up by email is not available on this server"}
		}
		found, err := s.privacy.FindEmail(r.Context(), eh)
		if err != nil {
			return s.unavailable(r, "search the stored events", err)
		}
		keys = found
	case uid != "":
		keys = []identity.Key{{UserID: uid}}
	default:
		keys = []identity.Key{{AnonymousID: aid}}
	}
	out := struct {
		People []Person `json:"people"`
	}{People: []Person{}}
	seen := map[string]bool{}
	for _, k := range keys {
		p, err := s.identity.Show(r.Context(), k)
		if errors.Is(err, identity.ErrNotFound) {
			continue
		}
		if err != nil {
			return s.identityFailed(r, "read the identity graph", err)
		}
		if seen[p.Key] {
			continue
		}
		seen[p.Key] = true
		person := Person{Profile: p}
		if err := s.consentOf(r, &person); err != nil {
			return s.unavailable(r, "read the stored events", err)
		}
		out.People = append(out.People, person)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// consentOf sets p's consent from the newest stored event of its ids (its
// own and its links'), read from its last update on.
func (s *Server) consentOf(r *http.Request, p *Person) error {
	ids := map[string]bool{p.Key: true}
	for _, l := range p.Links {
		ids[l] = true
	}
	if p.AliasOf != "" {
		ids[p.AliasOf] = true
	}
	read := 0
	err := s.events.ReadEvents(r.Context(), EventQuery{Since: p.Updated.Add(-time.Minute)}, func(e StoredEvent) error {
		read++
		if read > maxConsentScan {
			return errEnough
		}
		var ev struct {
			UserID      any `json:"userId"`
			AnonymousID any `json:"anonymousId"`
			Context     struct {
				Consent struct {
					CategoryPreferences map[string]any `json:"categoryPreferences"`
				} `json:"consent"`
			} `json:"context"`
		}
		if json.Unmarshal(e.Event, &ev) != nil {
			return nil
		}
		uid, _ := ev.UserID.(string)
		aid, _ := ev.AnonymousID.(string)
		if (uid == "" || !ids[identity.UserKey(uid)]) && (aid == "" || !ids[identity.AnonymousKey(aid)]) {
			return nil
		}
		at := e.StoredAt
		p.Consent, p.ConsentAt = ev.Context.Consent.CategoryPreferences, &at
		return nil
	})
	if errors.Is(err, errEnough) {
		return nil
	}
	return err
}

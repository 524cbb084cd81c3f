package sandbox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ---- schema validation (422, spec §10.3) ----

const reasonRequired = "field is required but not found and has no default value"

// schemaOpts are the switches that change the event schema.
type schemaOpts struct {
	strictUnknown bool
	lengths       bool
	axciom        bool
	hashedNames   bool // hashedFirstName/hashedLastName known (version >= 202609)
}

// validator collects "ERROR :: path :: reason\n" lines in field order.
type validator struct {
	o     schemaOpts
	lines []string
}

func (v *validator) add(path, reason string) {
	v.lines = append(v.lines, "ERROR :: "+path+" :: "+reason+"\n")
}

// render shows a JSON value inside a message, as JSON, cut at 200 bytes.
func render(x any) string {
	b := string(marshal(x))
	if len(b) > 200 {
		cut := 200
		for cut > 0 && !utf8.RuneStart(b[cut]) {
			cut--
		}
		b = b[:cut] + "…"
	}
	return b
}

// str checks an optional or required string field; it returns the value
// and whether it is a present string.
func (v *validator) str(m map[string]any, base, key string, required bool, maxLen int) (string, bool) {
	x, ok := m[key]
	path := base + "/" + key
	if !ok {
		if required {
			v.add(path, reasonRequired)
		}
		return "", false
	}
	s, ok := x.(string)
	if !ok {
		v.add(path, render(x)+" is not backed by a String")
		return "", false
	}
	if v.o.lengths && maxLen > 0 && utf8.RuneCountInString(s) > maxLen {
		v.add(path, fmt.Sprintf("length of %s is out of range 0...%d", render(s), maxLen))
	}
	return s, true
}

// obj checks an object field.
func (v *validator) obj(m map[string]any, base, key string, required bool) (map[string]any, bool) {
	x, ok := m[key]
	path := base + "/" + key
	if !ok {
		if required {
			v.add(path, reasonRequired)
		}
		return nil, false
	}
	o, ok := x.(map[string]any)
	if !ok {
		v.add(path, render(x)+" is not backed by a DataMap")
	}
	return o, ok
}

// list checks an array field.
func (v *validator) list(m map[string]any, base, key string, required bool) ([]any, bool) {
	x, ok := m[key]
	path := base + "/" + key
	if !ok {
		if required {
			v.add(path, reasonRequired)
		}
		return nil, false
	}
	l, ok := x.([]any)
	if !ok {
		v.add(path, render(x)+" is not backed by a DataList")
	}
	return l, ok
}

// unknown reports, with strict_unknown_fields, the keys of m not in known,
// sorted, after the known fields of the same object.
func (v *validator) unknown(m map[string]any, base string, known ...string) {
	if !v.o.strictUnknown {
		return
	}
	var extra []string
	for k := range m {
		if !slices.Contains(known, k) {
			extra = append(extra, k)
		}
	}
	slices.Sort(extra)
	for _, k := range extra {
		v.add(base+"/"+k, "unrecognized field found but not allowed")
	}
}

// validateSchema returns the schema error lines of one event, in the field
// order of spec §8.2.
func validateSchema(x any, o schemaOpts) []string {
	v := &validator{o: o}
	m, ok := x.(map[string]any)
	if !ok {
		v.add("/", render(x)+" is not backed by a DataMap")
		return v.lines
	}
	v.str(m, "", "conversion", true, 0)
	if t, ok := m["conversionHappenedAt"]; !ok {
		v.add("/conversionHappenedAt", reasonRequired)
	} else if _, ok := asLong(t); !ok {
		v.add("/conversionHappenedAt", render(t)+" cannot be coerced to Long")
	}
	if cv, ok := v.obj(m, "", "conversionValue", false); ok {
		v.str(cv, "/conversionValue", "currencyCode", true, 0)
		v.str(cv, "/conversionValue", "amount", true, 0)
		v.unknown(cv, "/conversionValue", "currencyCode", "amount")
	}
	v.str(m, "", "eventId", false, 64)
	if u, ok := v.obj(m, "", "user", true); ok {
		if ids, ok := v.list(u, "/user", "userIds", true); ok {
			for i, e := range ids {
				base := "/user/userIds/" + strconv.Itoa(i)
				em, ok := e.(map[string]any)
				if !ok {
					v.add(base, render(e)+" is not backed by a DataMap")
					continue
				}
				if t, ok := v.str(em, base, "idType", true, 0); ok && !idTypes[t] && (t != "AXCIOM_ID" || !o.axciom) {
					v.add(base+"/idType", render(t)+" is not an enum symbol")
				}
				v.str(em, base, "idValue", true, 0)
				v.unknown(em, base, "idType", "idValue")
			}
		}
		if ui, ok := v.obj(u, "/user", "userInfo", false); ok {
			const b = "/user/userInfo"
			v.str(ui, b, "firstName", true, 35)
			v.str(ui, b, "lastName", true, 35)
			v.str(ui, b, "companyName", false, 50)
			v.str(ui, b, "title", false, 50)
			v.str(ui, b, "countryCode", false, 0)
			known := []string{"firstName", "lastName", "companyName", "title", "countryCode"}
			if o.hashedNames {
				v.str(ui, b, "hashedFirstName", false, 0)
				v.str(ui, b, "hashedLastName", false, 0)
				known = append(known, "hashedFirstName", "hashedLastName")
			}
			v.unknown(ui, b, known...)
		}
		if ext, ok := v.list(u, "/user", "externalIds", false); ok {
			for i, e := range ext {
				if _, ok := e.(string); !ok {
					v.add("/user/externalIds/"+strconv.Itoa(i), render(e)+" is not backed by a String")
				}
			}
		}
		v.str(u, "/user", "lead", false, 0)
		v.unknown(u, "/user", "userIds", "userInfo", "externalIds", "lead")
	}
	v.unknown(m, "", "conversion", "conversionHappenedAt", "conversionValue", "eventId", "user")
	return v.lines
}

// asLong accepts a JSON integer that fits an int64.
func asLong(x any) (int64, bool) {
	n, ok := x.(json.Number)
	if !ok {
		return 0, false
	}
	i, err := strconv.ParseInt(string(n), 10, 64)
	return i, err == nil
}

// ---- business rules (400, spec §10.2) ----

// event is a schema-valid event, flattened for the business rules.
type event struct {
	raw         json.RawMessage
	conversion  string
	at          int64
	hasValue    bool
	currency    string
	amount      string
	eventID     string
	userIDs     [][2]string // idType, idValue
	hasUserInfo bool
	firstName   string
	lastName    string
	country     string
	externalIDs []string
	lead        string

	rule    int64 // resolved by the rule lookup
	account int64
	// eligible: the rule was enabled and associated with a campaign.
	eligible bool
}

func flatten(m map[string]any, raw json.RawMessage) *event {
	e := &event{raw: raw}
	e.conversion, _ = m["conversion"].(string)
	e.at, _ = asLong(m["conversionHappenedAt"])
	if cv, ok := m["conversionValue"].(map[string]any); ok {
		e.hasValue = true
		e.currency, _ = cv["currencyCode"].(string)
		e.amount, _ = cv["amount"].(string)
	}
	e.eventID, _ = m["eventId"].(string)
	u, _ := m["user"].(map[string]any)
	ids, _ := u["userIds"].([]any)
	for _, x := range ids {
		id, _ := x.(map[string]any)
		t, _ := id["idType"].(string)
		val, _ := id["idValue"].(string)
		e.userIDs = append(e.userIDs, [2]string{t, val})
	}
	if ui, ok := u["userInfo"].(map[string]any); ok {
		e.hasUserInfo = true
		e.firstName, _ = ui["firstName"].(string)
		e.lastName, _ = ui["lastName"].(string)
		e.country, _ = ui["countryCode"].(string)
	}
	ext, _ := u["externalIds"].([]any)
	for _, x := range ext {
		s, _ := x.(string)
		e.externalIDs = append(e.externalIDs, s)
	}
	e.lead, _ = u["lead"].(string)
	return e
}

// businessRule is one row of spec §10.2 after B1.
type businessRule struct {
	code string
	stem func(e *event) string
	ok   func(s *Server, c *call, e *event) bool
}

// isHexHash reports whether s matches ^[0-9a-fA-F]{64}$.
func isHexHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := range len(s) {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// isAmount reports whether s matches ^[0-9]+(\.[0-9]+)?$.
func isAmount(s string) bool {
	whole, frac, dot := strings.Cut(s, ".")
	return isDigits(whole) && (!dot || isDigits(frac))
}

const stemB1 = "Incorrect conversions information provided. Conversion's method should be CONVERSIONS_API"

func constStem(s string) func(*event) string { return func(*event) string { return s } }

var businessRules = []businessRule{
	{ // B2
		code: "INVALID_CONVERSION_TIME_FIELD_VALUE",
		stem: constStem("conversionHappenedAt must be within the past 90 days and not in the future"),
		ok: func(s *Server, c *call, e *event) bool {
			now := c.now.UnixMilli()
			return e.at >= now-s.cfg.EventWindow.Milliseconds() && e.at <= now+s.cfg.FutureTolerance.Milliseconds()
		},
	},
	{ // B3
		code: "INVALID_USER_IDENTIFICATION_FIELD_VALUE",
		stem: constStem("At least one user identifier or userInfo with firstName and lastName is required"),
		ok: func(_ *Server, _ *call, e *event) bool {
			for _, id := range e.userIDs {
				if id[1] != "" {
					return true
				}
			}
			return (e.hasUserInfo && e.firstName != "" && e.lastName != "") ||
				(len(e.externalIDs) > 0 && e.externalIDs[0] != "") || e.lead != ""
		},
	},
	{ // B4
		code: "INVALID_USER_IDENTIFICATION_FIELD_VALUE",
		stem: func(e *event) string {
			t := "SHA256_EMAIL"
			for _, id := range e.userIDs {
				if isHashType(id[0]) && !isHexHash(id[1]) {
					t = id[0]
					break
				}
			}
			return "idValue for " + t + " must be a 64 character hex encoded SHA256 hash"
		},
		ok: func(s *Server, _ *call, e *event) bool {
			if s.cfg.LaxHashFormat {
				return true
			}
			for _, id := range e.userIDs {
				if isHashType(id[0]) && !isHexHash(id[1]) {
					return false
				}
			}
			return true
		},
	},
	{ // B5
		code: "INVALID_USER_IDENTIFICATION_FIELD_VALUE",
		stem: constStem("idValue for PLAINTEXT_IP_ADDRESS must be an IPv4 address"),
		ok: func(_ *Server, _ *call, e *event) bool {
			for _, id := range e.userIDs {
				if id[0] == "PLAINTEXT_IP_ADDRESS" {
					a, err := netip.ParseAddr(id[1])
					if err != nil || !a.Is4() {
						return false
					}
				}
			}
			return true
		},
	},
	{ // B6
		code: "INVALID_CONVERSION_VALUE",
		stem: constStem("Invalid currencyCode"),
		ok:   func(_ *Server, _ *call, e *event) bool { return !e.hasValue || currencyCodes[e.currency] },
	},
	{ // B7
		code: "INVALID_CONVERSION_VALUE",
		stem: constStem("Invalid amount, must be a non-negative decimal string"),
		ok:   func(_ *Server, _ *call, e *event) bool { return !e.hasValue || isAmount(e.amount) },
	},
	{ // B8
		code: "INVALID_USER_INFO",
		stem: constStem("Invalid countryCode"),
		ok:   func(_ *Server, _ *call, e *event) bool { return e.country == "" || countryCodes[e.country] },
	},
	{ // B9
		code: "INVALID_USER_IDENTIFICATION_FIELD_VALUE",
		stem: constStem("Only one externalId is allowed"),
		ok:   func(_ *Server, _ *call, e *event) bool { return len(e.externalIDs) <= 1 },
	},
}

func isHashType(t string) bool { return t == "SHA256_EMAIL" || t == "SHA256_IP_ADDRESS" }

// indicesSuffix renders ", indices [0, 2] (0-indexed)".
func indicesSuffix(idx []int) string {
	parts := make([]string, len(idx))
	for i, n := range idx {
		parts[i] = strconv.Itoa(n)
	}
	return ", indices [" + strings.Join(parts, ", ") + "] (0-indexed)"
}

// ---- the endpoint ----

// elemResult is the per-element outcome in partial batch mode.
type elemResult struct {
	Status int       `json:"status"`
	Error  *apiError `json:"error,omitempty"`
}

// conversionEvents serves POST /rest/conversionEvents in the order of spec
// §10.1.
func (s *Server) conversionEvents(c *call) {
	if !c.gateway() || !c.rateLimit(true) || !c.jsonContent() {
		return
	}
	trimmed := bytes.TrimSpace(c.body)
	method := c.restliMethod()
	batch := method == "BATCH_CREATE"
	partial := batch && s.cfg.BatchMode == BatchPartial
	opts := schemaOpts{strictUnknown: s.cfg.StrictUnknownFields, lengths: s.cfg.EnforceFieldLengths,
		axciom: s.cfg.AcceptAxciomAlias, hashedNames: c.version >= "202609"}

	// Steps 4 to 8: parse and schema. The fast path answers nothing: when
	// it gives up, the generic path does it all again and answers errors.
	var events []*event
	var results []elemResult
	ok := false
	shared := true // the raw events are part of c.body (not so for parseEvents's batches)
	if !s.genericOnly && (method == "" || method == "CREATE" || batch) {
		events, ok = fastEvents(trimmed, batch, opts)
		if ok {
			results = make([]elemResult, len(events))
			for i := range results {
				results[i].Status = http.StatusCreated
			}
		}
	}
	if !ok {
		if events, results, ok = s.parseEvents(c, trimmed, method, opts); !ok {
			return
		}
		shared = !batch
	}
	s.acceptEvents(c, events, results, batch, partial, shared)
}

// parseEvents is the generic path of steps 4 to 8: it decodes the body with
// encoding/json and validates every event. It answers and returns false
// when the request is refused; otherwise it returns the events (nil for
// those refused in partial mode) and their results so far.
func (s *Server) parseEvents(c *call, trimmed []byte, method string, opts schemaOpts) ([]*event, []elemResult, bool) {
	var top map[string]json.RawMessage
	if len(trimmed) == 0 || trimmed[0] != '{' || json.Unmarshal(trimmed, &top) != nil {
		c.badRequest("Unable to parse request body as JSON")
		return nil, nil, false
	}
	rawElems, hasElems := top["elements"]
	batch := method == "BATCH_CREATE"
	switch {
	case method != "" && method != "BATCH_CREATE" && method != "CREATE":
		c.badRequest("Unsupported X-RestLi-Method " + method + " for conversionEvents")
		return nil, nil, false
	case hasElems && !batch:
		c.badRequest("Request body contains 'elements' but X-RestLi-Method BATCH_CREATE header is missing")
		return nil, nil, false
	}
	var raws []json.RawMessage
	if batch {
		re := bytes.TrimSpace(rawElems)
		if !hasElems || len(re) == 0 || re[0] != '[' || json.Unmarshal(re, &raws) != nil {
			c.badRequest(`BATCH_CREATE requires a body of the form {"elements":[...]}`)
			return nil, nil, false
		}
		if len(raws) < 1 || len(raws) > MaxBatch {
			c.badRequest(fmt.Sprintf("Batch size must be between 1 and %d, got %d", MaxBatch, len(raws)))
			return nil, nil, false
		}
	} else {
		raws = []json.RawMessage{trimmed}
	}
	partial := batch && s.cfg.BatchMode == BatchPartial
	results := make([]elemResult, len(raws))
	for i := range results {
		results[i].Status = http.StatusCreated
	}

	// Step 8: schema.
	events := make([]*event, len(raws))
	var msg strings.Builder
	for i, raw := range raws {
		x, err := decodeJSON(raw)
		if err != nil { // cannot happen: raw came out of a valid document
			x = nil
		}
		lines := validateSchema(x, opts)
		if len(lines) > 0 {
			if batch {
				msg.WriteString("Index: " + strconv.Itoa(i) + ", ")
			}
			for _, l := range lines {
				msg.WriteString(l)
			}
			results[i] = elemResult{Status: http.StatusUnprocessableEntity,
				Error: &apiError{Status: 422, Message: strings.Join(lines, "")}}
			continue
		}
		events[i] = flatten(x.(map[string]any), raw)
	}
	if msg.Len() > 0 && !partial {
		s.counters.rejectedEvents.Add(int64(len(raws)))
		c.fail(reasonSchema, http.StatusUnprocessableEntity, msgError{Message: msg.String(), Status: 422})
		return nil, nil, false
	}
	return events, results, true
}

// acceptEvents runs steps 9 to 11 on the schema-valid events: rule lookup,
// permission, business rules, storage, and answers.
//
// shared tells that the events' raw bytes are part of c.body, which the
// store may then keep.
func (s *Server) acceptEvents(c *call, events []*event, results []elemResult, batch, partial, shared bool) {
	fail := func(i, status int, e apiError) {
		if results[i].Status == http.StatusCreated {
			results[i] = elemResult{Status: status, Error: &e}
		}
	}
	n := int64(len(events))

	// Step 9: rule lookup (B1), then permission.
	var b1, denied []int
	s.mu.Lock()
	for i, e := range events {
		if e == nil {
			continue
		}
		id, ok := parseURN(e.conversion, "urn:lla:llaPartnerConversion:")
		if !ok && !s.cfg.RejectLiURNNamespace {
			id, ok = parseURN(e.conversion, "urn:li:llaPartnerConversion:")
		}
		r := s.st.Rules[id]
		if !ok || r == nil || r.ConversionMethod != "CONVERSIONS_API" || (s.cfg.RejectDisabledRule && !r.Enabled) {
			b1 = append(b1, i)
			fail(i, http.StatusBadRequest, apiError{Status: 400, Message: stemB1})
			continue
		}
		e.rule, e.account = r.ID, r.Account
		e.eligible = r.Enabled && len(r.Associations) > 0
		if !c.hasScope("rw_conversions") || !qualifyingRole(s.st.role(c.tok.Member, r.Account)) {
			denied = append(denied, i)
		}
	}
	s.mu.Unlock()
	if len(b1) > 0 && !partial {
		m := stemB1
		if batch {
			m += indicesSuffix(b1)
		}
		s.counters.rejectedEvents.Add(n)
		c.fail(reasonBusiness, http.StatusBadRequest, msgError{Message: m, Status: 400})
		return
	}
	restMethod := "CREATE"
	if batch {
		restMethod = "BATCH_CREATE"
	}
	if len(denied) > 0 {
		if !partial {
			s.counters.rejectedEvents.Add(n)
			c.forbidden("conversionEvents", restMethod)
			return
		}
		for _, i := range denied {
			fail(i, http.StatusForbidden, apiError{Status: 403, ServiceErrorCode: 100, Code: "ACCESS_DENIED",
				Message: "Not enough permissions to access: conversionEvents." + restMethod + "." + c.version + "01"})
		}
	}

	// Step 10: business rules, rule by rule.
	for _, br := range businessRules {
		var bad []int
		for i, e := range events {
			if e != nil && results[i].Status == http.StatusCreated && !br.ok(s, c, e) {
				bad = append(bad, i)
			}
		}
		if len(bad) == 0 {
			continue
		}
		stem := br.stem(events[bad[0]])
		if !partial {
			m := stem
			if batch {
				m += indicesSuffix(bad)
			}
			s.counters.rejectedEvents.Add(n)
			c.fail(reasonBusiness, http.StatusBadRequest, apiError{Status: 400, Code: br.code, Message: m})
			return
		}
		for _, i := range bad {
			fail(i, http.StatusBadRequest, apiError{Status: 400, Code: br.code, Message: stem})
		}
	}

	// Step 11: store. Bodies and eventIds outlive the request. A body kept
	// is e.raw when it is a private copy; when it is part of the request
	// body, the request body is kept if most of it is accepted, else the
	// accepted bodies are copied into one buffer. EventIds are copied into
	// one string, which keeps no transient data alive.
	batchID := ""
	if batch {
		batchID = c.w.Header().Get("X-LI-UUID")
	}
	var bodySize, idSize int
	for i, e := range events {
		if results[i].Status == http.StatusCreated {
			bodySize += len(e.raw)
			idSize += len(e.eventID)
		}
	}
	var bodies []byte
	if shared && 2*bodySize < cap(c.body) {
		bodies = make([]byte, 0, bodySize)
	}
	var idBuf strings.Builder
	idBuf.Grow(idSize)
	for i, e := range events {
		if results[i].Status == http.StatusCreated {
			if bodies != nil {
				bodies = append(bodies, e.raw...)
			}
			idBuf.WriteString(e.eventID)
		}
	}
	ids := idBuf.String()
	var accepted, dups, rejected int64
	var sig *rule // the rule of the previous accepted event
	s.mu.Lock()
	for i, e := range events {
		if results[i].Status != http.StatusCreated {
			rejected++
			continue
		}
		n := len(e.raw)
		body := e.raw[:n:n]
		if bodies != nil {
			body, bodies = bodies[:n:n], bodies[n:]
		}
		eventID := ids[:len(e.eventID)]
		ids = ids[len(e.eventID):]
		conv := Conversion{Rule: e.rule, Account: e.account, EventID: eventID, Token: c.token, Version: c.version,
			ReceivedAt: c.now.UnixMilli(), BatchID: batchID, Index: i, Body: body, Ineligible: !e.eligible}
		if s.convs.add(conv, c.now) {
			dups++
		} else {
			accepted++
		}
		// The rule's status fields (spec §22.4): every 201, a
		// de-duplicated repeat included.
		if sig == nil || sig.ID != e.rule {
			sig = s.st.Rules[e.rule]
		}
		if sig != nil {
			s.signal(sig, conv.ReceivedAt)
		}
	}
	evicted := s.convs.evicted
	s.mu.Unlock()
	s.counters.accepted.Add(accepted)
	s.counters.deduplicated.Add(dups)
	s.counters.rejectedEvents.Add(rejected)
	s.counters.evicted.Store(evicted)
	if accepted+dups > 0 {
		s.markDirty()
	}
	if !batch {
		c.empty(http.StatusCreated)
		return
	}
	s.counters.batches.Add(1)
	c.batchResults(results)
}

// batchResults answers 200 with the per-element results. It writes what
// c.json would, directly when no element carries an error.
func (c *call) batchResults(results []elemResult) {
	const head, tail, elem = `{"elements":[`, `]}`, `{"status":201},`
	b := make([]byte, 0, len(head)+len(tail)+len(results)*len(elem))
	b = append(b, head...)
	for i, r := range results {
		if r.Error != nil {
			c.json(http.StatusOK, struct {
				Elements []elemResult `json:"elements"`
			}{results})
			return
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"status":`...)
		b = strconv.AppendInt(b, int64(r.Status), 10)
		b = append(b, '}')
	}
	b = append(b, tail...)
	c.w.Header().Set("Content-Type", "application/json")
	c.w.WriteHeader(http.StatusOK)
	_, _ = c.w.Write(b)
}

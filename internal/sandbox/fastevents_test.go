package sandbox

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

// twins are two sandboxes with one config; generic never takes the fast
// path of conversionEvents. Whatever is sent to both must be answered and
// recorded alike.
type twins struct {
	fast, generic *Server
}

func newTwins(t testing.TB, cfg Config) twins {
	t.Helper()
	cfg.Now = func() time.Time { return specNow }
	cfg.Tokens = append(cfg.Tokens, TokenSpec{Token: tok}, TokenSpec{Token: viewerTok, Member: "V1", Role: "VIEWER"})
	cfg.RatePerMinute, cfg.RatePerDay = -1, -1
	// Short read-backs, compared after each request; eviction included.
	cfg.MaxConversions, cfg.MaxRequestLog = 50, 20
	var tw twins
	for _, p := range []**Server{&tw.fast, &tw.generic} {
		srv, err := New(cfg, nil)
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		t.Cleanup(srv.Close)
		*p = srv
	}
	tw.generic.genericOnly = true
	return tw
}

func serve(h http.Handler, method, path string, headers map[string]string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// post sends body to both sandboxes and fails t unless they answer alike.
// It returns the answer.
func (tw twins) post(t testing.TB, headers map[string]string, body []byte) *httptest.ResponseRecorder {
	t.Helper()
	f := serve(tw.fast.Handler(), "POST", "/rest/conversionEvents", headers, body)
	g := serve(tw.generic.Handler(), "POST", "/rest/conversionEvents", headers, body)
	if f.Code != g.Code || !bytes.Equal(f.Body.Bytes(), g.Body.Bytes()) || !reflect.DeepEqual(f.Header(), g.Header()) {
		t.Fatalf("fast path answered %d %v\n%.2000s\ngeneric path %d %v\n%.2000s", f.Code, f.Header(), f.Body, g.Code, g.Header(), g.Body)
	}
	return f
}

// check fails t unless both sandboxes stored, counted and logged alike.
func (tw twins) check(t testing.TB) {
	t.Helper()
	for _, path := range []string{"/_sandbox/records", "/_sandbox/conversions", "/_sandbox/counters", "/_sandbox/state"} {
		fr := serve(tw.fast.Handler(), "GET", path, nil, nil)
		gr := serve(tw.generic.Handler(), "GET", path, nil, nil)
		if fr.Code != gr.Code || !bytes.Equal(fr.Body.Bytes(), gr.Body.Bytes()) {
			t.Fatalf("%s differs: fast path\n%.2000s\ngeneric path\n%.2000s", path, fr.Body, gr.Body)
		}
	}
	fl, gl := tw.fast.Requests(), tw.generic.Requests()
	for i := range fl {
		fl[i].DurationMS = 0
	}
	for i := range gl {
		gl[i].DurationMS = 0
	}
	if !reflect.DeepEqual(fl, gl) {
		t.Fatalf("request logs differ:\n%+v\n%+v", fl, gl)
	}
}

// checkFastEvents fails t when fastEvents accepts a trimmed body that the
// generic path would refuse or flatten differently. It reports whether the
// fast path accepted it.
func checkFastEvents(t testing.TB, srv *Server, body []byte, batch bool, o schemaOpts) bool {
	t.Helper()
	fast, ok := fastEvents(body, batch, o)
	if !ok {
		return false
	}
	method := ""
	if batch {
		method = "BATCH_CREATE"
	}
	c := &call{s: srv, w: &bufWriter{h: http.Header{}}, r: httptest.NewRequest("POST", "/rest/conversionEvents", nil)}
	generic, results, ok := srv.parseEvents(c, body, method, o)
	if !ok {
		t.Fatalf("fast path accepted %q (batch %v, %+v), generic path answered %d %s", body, batch, o, c.w.status, c.w.body.String())
	}
	for i, r := range results {
		if r.Status != http.StatusCreated {
			t.Fatalf("fast path accepted %q (batch %v, %+v), generic path refused element %d: %+v", body, batch, o, i, r.Error)
		}
	}
	if !reflect.DeepEqual(fast, generic) {
		t.Fatalf("events of %q (batch %v, %+v) differ:\nfast    %s\ngeneric %s", body, batch, o, dumpEvents(fast), dumpEvents(generic))
	}
	return true
}

func dumpEvents(evs []*event) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "%+v\n", *e)
	}
	return b.String()
}

// fastCase is an event body; fast tells whether fastEvents reads it with the
// default schema options.
type fastCase struct {
	name string
	body string
	fast bool
}

// eventCases are valid events, events refused by a business rule (both read
// by the fast path) and every kind of event the fast path leaves to the
// generic path.
var eventCases = []fastCase{
	{"spec full", specFullEvent, true},
	{"spec fat id", specFatIDEvent, true},
	{"spec names", specNameEvent, true},
	{"li_fat_id", ev("e1"), true},
	{"capstan", benchEvent(7), true},
	{"keys shuffled", `{"user":{"userInfo":{"lastName":"Doe","firstName":"Jane"},"userIds":[]},"eventId":"k1","conversionHappenedAt":1767139200000,"conversion":"urn:lla:llaPartnerConversion:22833300"}`, true},
	{"white space", "{ \"conversion\" :\t\"urn:lla:llaPartnerConversion:22833300\" ,\r\n\"conversionHappenedAt\"\n:\n1767139200000 , \"user\" : { \"userIds\" : [ { \"idType\" : \"LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID\" , \"idValue\" : \"1\" } ] , \"externalIds\" : [ ] } }", true},
	{"escapes", `{"conversion":"urn:lla:llaPartnerConversion:2283330\u0030","conversionHappenedAt":1767139200000,"eventId":"a\u0026b\"c\\d\/e\u00e9\ud83d\ude00","user":{"userIds":[],"userInfo":{"firstName":"Jos\u00e9","lastName":"\t","companyName":"AT&T <x>"}}}`, true},
	{"bad escaped surrogate", `{"conversion":"urn:lla:llaPartnerConversion:22833300","conversionHappenedAt":1767139200000,"eventId":"\ud83d","user":{"userIds":[],"userInfo":{"firstName":"J","lastName":"D"}}}`, true},
	{"non-ASCII", `{"conversion":"urn:lla:llaPartnerConversion:22833300","conversionHappenedAt":1767139200000,"eventId":"ü€😀","user":{"userIds":[],"userInfo":{"firstName":"José","lastName":"Müller","title":"Geschäftsführer"}}}`, true},
	{"invalid UTF-8", "{\"conversion\":\"urn:lla:llaPartnerConversion:22833300\",\"conversionHappenedAt\":1767139200000,\"eventId\":\"a\xffb\xc3\",\"user\":{\"userIds\":[],\"userInfo\":{\"firstName\":\"\xed\xa0\x80\",\"lastName\":\"D\"}}}", true},
	{"li namespace", `{"conversion":"urn:li:llaPartnerConversion:22833300","conversionHappenedAt":1767139200000,"user":{"userIds":[{"idType":"SHA256_EMAIL","idValue":"` + emailHash + `"}]}}`, true},
	{"external id and lead", `{"conversion":"urn:lla:llaPartnerConversion:22833300","conversionHappenedAt":1767139200000,"user":{"userIds":[],"externalIds":["crm-1"],"lead":"urn:li:leadGenFormResponse:1"}}`, true},
	{"minus zero", `{"conversion":"urn:lla:llaPartnerConversion:22833300","conversionHappenedAt":-0,"user":{"userIds":[{"idType":"ACXIOM_ID","idValue":"x"}]}}`, true},
	{"ip", `{"conversion":"urn:lla:llaPartnerConversion:22833300","conversionHappenedAt":1767139200000,"user":{"userIds":[{"idType":"PLAINTEXT_IP_ADDRESS","idValue":"192.0.2.1"}]}}`, true},
	{"B1 rule", `{"conversion":"urn:lla:llaPartnerConversion:1","conversionHappenedAt":1767139200000,"user":{"userIds":[{"idType":"ACXIOM_ID","idValue":"x"}]}}`, true},
	{"B1 not a urn", `{"conversion":"22833300","conversionHappenedAt":1767139200000,"user":{"userIds":[{"idType":"ACXIOM_ID","idValue":"x"}]}}`, true},
	{"B2 old", ev("b2", 1), true},
	{"B2 future", ev("b2f", specNow.UnixMilli()+3_600_000), true},
	{"B3 nobody", `{"conversion":"urn:lla:llaPartnerConversion:22833300","conversionHappenedAt":1767139200000,"user":{"userIds":[{"idType":"ACXIOM_ID","idValue":""}],"userInfo":{"firstName":"","lastName":"D"}}}`, true},
	{"B4 hash", `{"conversion":"urn:lla:llaPartnerConversion:22833300","conversionHappenedAt":1767139200000,"user":{"userIds":[{"idType":"SHA256_EMAIL","idValue":"jane@example.com"}]}}`, true},
	{"B5 ip", `{"conversion":"urn:lla:llaPartnerConversion:22833300","conversionHappenedAt":1767139200000,"user":{"userIds":[{"idType":"PLAINTEXT_IP_ADDRESS","idValue":"::1"}]}}`, true},
	{"B6 currency", `{"conversion":"urn:lla:llaPartnerConversion:22833300","conversionHappenedAt":1767139200000,"conversionValue":{"currencyCode":"usd","amount":"1"},"user":{"userIds":[{"idType":"ACXIOM_ID","idValue":"x"}]}}`, true},
	{"B7 amount", `{"conversion":"urn:lla:llaPartnerConversion:22833300","conversionHappenedAt":1767139200000,"conversionValue":{"amount":"1.","currencyCode":"USD"},"user":{"userIds":[{"idType":"ACXIOM_ID","idValue":"x"}]}}`, true},
	{"B8 country", `{"conversion":"urn:lla:llaPartnerConversion:22833300","conversionHappenedAt":1767139200000,"user":{"userIds":[],"userInfo":{"firstName":"J","lastName":"D","countryCode":"XX"}}}`, true},
	{"B9 external ids", `{"conversion":"urn:lla:llaPartnerConversion:22833300","conversionHappenedAt":1767139200000,"user":{"userIds":[],"externalIds":["a","b"]}}`, true},
	{"axciom", `{"conversion":"urn:lla:llaPartnerConversion:22833300","conversionHappenedAt":1767139200000,"user":{"userIds":[{"idType":"AXCIOM_ID","idValue":"x"}]}}`, false},
	{"hashed names", `{"conversion":"urn:lla:llaPartnerConversion:22833300","conversionHappenedAt":1767139200000,"user":{"userIds":[],"userInfo":{"firstName":"J","lastName":"D","hashedFirstName":"x","hashedLastName":"y"}}}`, true},
	{"long names", `{"conversion":"urn:lla:llaPartnerConversion:22833300","conversionHappenedAt":1767139200000,"eventId":"` + strings.Repeat("é", 65) + `","user":{"userIds":[],"userInfo":{"firstName":"` + strings.Repeat("J", 36) + `","lastName":"D","companyName":"` + strings.Repeat("ü", 51) + `"}}}`, true},

	{"duplicate key", `{"conversion":"x","conversion":"urn:lla:llaPartnerConversion:22833300","conversionHappenedAt":1767139200000,"user":{"userIds":[]}}`, false},
	{"duplicate nested key", `{"conversion":"urn:lla:llaPartnerConversion:22833300","conversionHappenedAt":1767139200000,"user":{"userIds":[{"idType":"ACXIOM_ID","idValue":"x","idValue":""}]}}`, false},
	{"escaped key", `{"\u0063onversion":"urn:lla:llaPartnerConversion:22833300","conversionHappenedAt":1767139200000,"user":{"userIds":[]}}`, true},
	{"key case", `{"Conversion":"urn:lla:llaPartnerConversion:22833300","conversion":"urn:lla:llaPartnerConversion:22833300","conversionHappenedAt":1767139200000,"user":{"userIds":[]}}`, false},
	{"unknown field", `{"conversion":"urn:lla:llaPartnerConversion:22833300","conversionHappenedAt":1767139200000,"user":{"userIds":[{"idType":"ACXIOM_ID","idValue":"x"}]},"extra":{"a":[1,2]}}`, false},
	{"unknown nested", `{"conversion":"urn:lla:llaPartnerConversion:22833300","conversionHappenedAt":1767139200000,"conversionValue":{"currencyCode":"USD","amount":"1","x":null},"user":{"userIds":[{"idType":"ACXIOM_ID","idValue":"x","y":1}],"z":true}}`, false},
	{"null value", `{"conversion":"urn:lla:llaPartnerConversion:22833300","conversionHappenedAt":1767139200000,"eventId":null,"user":{"userIds":[]}}`, false},
	{"null user", `{"conversion":"urn:lla:llaPartnerConversion:22833300","conversionHappenedAt":1767139200000,"user":null}`, false},
	{"number as string", `{"conversion":"urn:lla:llaPartnerConversion:22833300","conversionHappenedAt":"1767139200000","user":{"userIds":[]}}`, false},
	{"string as number", `{"conversion":22833300,"conversionHappenedAt":1767139200000,"user":{"userIds":[]}}`, false},
	{"fraction", `{"conversion":"urn:lla:llaPartnerConversion:22833300","conversionHappenedAt":1767139200000.0,"user":{"userIds":[]}}`, false},
	{"exponent", `{"conversion":"urn:lla:llaPartnerConversion:22833300","conversionHappenedAt":1e12,"user":{"userIds":[]}}`, false},
	{"overflow", `{"conversion":"urn:lla:llaPartnerConversion:22833300","conversionHappenedAt":9223372036854775808,"user":{"userIds":[]}}`, false},
	{"leading zero", `{"conversion":"urn:lla:llaPartnerConversion:22833300","conversionHappenedAt":01767139200000,"user":{"userIds":[]}}`, false},
	{"plus sign", `{"conversion":"urn:lla:llaPartnerConversion:22833300","conversionHappenedAt":+1767139200000,"user":{"userIds":[]}}`, false},
	{"missing conversion", `{"conversionHappenedAt":1767139200000,"user":{"userIds":[]}}`, false},
	{"missing time", `{"conversion":"urn:lla:llaPartnerConversion:22833300","user":{"userIds":[]}}`, false},
	{"missing user", `{"conversion":"urn:lla:llaPartnerConversion:22833300","conversionHappenedAt":1767139200000}`, false},
	{"missing userIds", `{"conversion":"urn:lla:llaPartnerConversion:22833300","conversionHappenedAt":1767139200000,"user":{"lead":"x"}}`, false},
	{"missing amount", `{"conversion":"urn:lla:llaPartnerConversion:22833300","conversionHappenedAt":1767139200000,"conversionValue":{"currencyCode":"USD"},"user":{"userIds":[]}}`, false},
	{"missing idValue", `{"conversion":"urn:lla:llaPartnerConversion:22833300","conversionHappenedAt":1767139200000,"user":{"userIds":[{"idType":"ACXIOM_ID"}]}}`, false},
	{"missing lastName", `{"conversion":"urn:lla:llaPartnerConversion:22833300","conversionHappenedAt":1767139200000,"user":{"userIds":[],"userInfo":{"firstName":"J"}}}`, false},
	{"bad idType", `{"conversion":"urn:lla:llaPartnerConversion:22833300","conversionHappenedAt":1767139200000,"user":{"userIds":[{"idType":"SHA256_PHONE","idValue":"x"}]}}`, false},
	{"userIds not a list", `{"conversion":"urn:lla:llaPartnerConversion:22833300","conversionHappenedAt":1767139200000,"user":{"userIds":{}}}`, false},
	{"userId not an object", `{"conversion":"urn:lla:llaPartnerConversion:22833300","conversionHappenedAt":1767139200000,"user":{"userIds":["x"]}}`, false},
	{"externalId not a string", `{"conversion":"urn:lla:llaPartnerConversion:22833300","conversionHappenedAt":1767139200000,"user":{"userIds":[],"externalIds":[1]}}`, false},
	{"value not an object", `{"conversion":"urn:lla:llaPartnerConversion:22833300","conversionHappenedAt":1767139200000,"conversionValue":"1 USD","user":{"userIds":[]}}`, false},
	{"not an object", `["x"]`, false},
	{"empty object", `{}`, false},
	{"trailing comma", `{"conversion":"urn:lla:llaPartnerConversion:22833300","conversionHappenedAt":1767139200000,"user":{"userIds":[],},}`, false},
	{"list trailing comma", `{"conversion":"urn:lla:llaPartnerConversion:22833300","conversionHappenedAt":1767139200000,"user":{"userIds":[{"idType":"ACXIOM_ID","idValue":"x"},]}}`, false},
	{"unclosed", `{"conversion":"urn:lla:llaPartnerConversion:22833300","conversionHappenedAt":1767139200000,"user":{"userIds":[]}`, false},
	{"control character", "{\"conversion\":\"urn:lla:llaPartnerConversion:22833300\",\"conversionHappenedAt\":1767139200000,\"eventId\":\"a\tb\",\"user\":{\"userIds\":[]}}", false},
	{"bad escape", `{"conversion":"urn:lla:llaPartnerConversion:22833300","conversionHappenedAt":1767139200000,"eventId":"a\xb","user":{"userIds":[]}}`, false},
	{"short unicode escape", `{"conversion":"urn:lla:llaPartnerConversion:22833300","conversionHappenedAt":1767139200000,"eventId":"\u00","user":{"userIds":[]}}`, false},
	{"missing colon", `{"conversion" "urn:lla:llaPartnerConversion:22833300","conversionHappenedAt":1767139200000,"user":{"userIds":[]}}`, false},
	{"single quotes", `{'conversion':'urn:lla:llaPartnerConversion:22833300'}`, false},
}

// TestFastPathMatchesGeneric sends every case, alone and in batches, to
// twin sandboxes with several configurations and checks that the fast path
// answers, stores, counts and logs exactly what the generic path does, and
// that it reads the cases it should.
func TestFastPathMatchesGeneric(t *testing.T) {
	configs := []struct {
		name    string
		cfg     Config
		version string
	}{
		{"default", Config{}, "202609"},
		{"strict", Config{StrictUnknownFields: true, EnforceFieldLengths: true, AcceptAxciomAlias: true}, "202609"},
		{"partial", Config{BatchMode: BatchPartial, EnforceFieldLengths: true}, "202609"},
		{"partial strict", Config{BatchMode: BatchPartial, StrictUnknownFields: true, RejectLiURNNamespace: true, LaxHashFormat: true}, "202601"},
		{"old version", Config{AcceptAxciomAlias: true, RejectDisabledRule: true}, "202601"},
	}
	for _, cf := range configs {
		t.Run(cf.name, func(t *testing.T) {
			tw := newTwins(t, cf.cfg)
			opts := schemaOpts{strictUnknown: cf.cfg.StrictUnknownFields, lengths: cf.cfg.EnforceFieldLengths,
				axciom: cf.cfg.AcceptAxciomAlias, hashedNames: cf.version >= "202609"}
			single := merge(restHeaders(tok), map[string]string{"LinkedIn-Version": cf.version})
			batch := merge(single, map[string]string{"X-RestLi-Method": "BATCH_CREATE"})
			valid := ev("valid")
			for _, tc := range eventCases {
				body := []byte(tc.body)
				fast := checkFastEvents(t, tw.fast, bytes.TrimSpace(body), false, opts)
				if cf.name == "default" && fast != tc.fast {
					t.Errorf("%s: fast path taken %v, want %v", tc.name, fast, tc.fast)
				}
				tw.post(t, single, body)
				tw.post(t, merge(single, map[string]string{"X-RestLi-Method": "CREATE"}), body)
				for _, b := range []string{
					`{"elements":[` + tc.body + `]}`,
					`{"elements":[` + valid + `,` + tc.body + `,` + benchEvent(1) + `]}`,
					" \n{ \"elements\" : [ " + tc.body + " , " + specFullEvent + " ] }\t",
				} {
					checkFastEvents(t, tw.fast, bytes.TrimSpace([]byte(b)), true, opts)
					tw.post(t, batch, []byte(b))
				}
				tw.check(t)
			}
		})
	}
}

// TestFastPathRequests covers the request shapes around the events: batch
// envelopes, methods, white space and the permission check.
func TestFastPathRequests(t *testing.T) {
	e := ev("r1")
	many := func(n int) string {
		elems := make([]string, n)
		for i := range elems {
			elems[i] = ev(fmt.Sprintf("m%d", i))
		}
		return `{"elements":[` + strings.Join(elems, ",") + `]}`
	}
	cases := []struct {
		name   string
		method string // "-" for no header
		token  string
		body   string
		fast   bool
	}{
		{"single", "-", tok, e, true},
		{"create", "CREATE", tok, e, true},
		{"create lower case", " create ", tok, e, true},
		{"batch", "BATCH_CREATE", tok, `{"elements":[` + e + `,` + ev("r2") + `]}`, true},
		{"batch lower case", "batch_create", tok, `{"elements":[` + e + `]}`, true},
		{"batch of 5000", "BATCH_CREATE", tok, many(MaxBatch), true},
		{"batch of 5001", "BATCH_CREATE", tok, many(MaxBatch + 1), false},
		{"empty batch", "BATCH_CREATE", tok, `{"elements":[]}`, false},
		{"elements not a list", "BATCH_CREATE", tok, `{"elements":{}}`, false},
		{"elements null", "BATCH_CREATE", tok, `{"elements":null}`, false},
		{"no elements", "BATCH_CREATE", tok, e, false},
		{"elements twice", "BATCH_CREATE", tok, `{"elements":[` + e + `],"elements":[` + ev("r3") + `]}`, false},
		{"extra top-level key", "BATCH_CREATE", tok, `{"elements":[` + e + `],"x":1}`, false},
		{"elements in a single create", "-", tok, `{"elements":[` + e + `]}`, false},
		{"unsupported method", "GET", tok, e, false},
		{"unsupported method, bad JSON", "GET", tok, `{`, false},
		{"trailing data", "-", tok, e + `{}`, false},
		{"trailing garbage", "BATCH_CREATE", tok, `{"elements":[` + e + `]}x`, false},
		{"unicode white space", "-", tok, "\v\f\u00a0" + e + "\u0085\v", true},
		{"byte order mark", "-", tok, "\ufeff" + e, false},
		{"empty body", "-", tok, "", false},
		{"denied single", "-", viewerTok, e, true},
		{"denied batch", "BATCH_CREATE", viewerTok, `{"elements":[` + e + `]}`, true},
	}
	for _, mode := range []BatchMode{BatchAllOrNothing, BatchPartial} {
		t.Run(string(mode), func(t *testing.T) {
			tw := newTwins(t, Config{BatchMode: mode})
			for _, tc := range cases {
				h := map[string]string{"X-RestLi-Method": tc.method}
				hd := merge(restHeaders(tc.token), h)
				if tc.method == "-" {
					delete(hd, "X-RestLi-Method")
				}
				method := strings.ToUpper(strings.TrimSpace(tc.method))
				batch := method == "BATCH_CREATE"
				if method == "" || method == "-" || method == "CREATE" || batch {
					got := checkFastEvents(t, tw.fast, bytes.TrimSpace([]byte(tc.body)), batch, schemaOpts{hashedNames: true})
					if got != tc.fast {
						t.Errorf("%s: fast path taken %v, want %v", tc.name, got, tc.fast)
					}
				}
				tw.post(t, hd, []byte(tc.body))
				if len(tc.body) < 1<<16 {
					tw.post(t, hd, []byte(tc.body)) // again: duplicates
				}
				tw.check(t)
			}
		})
	}
}

// TestFastPathKeepsBodies checks that stored bodies are exact and end at
// their length, whether the request body was kept or the accepted events
// copied out of it.
func TestFastPathKeepsBodies(t *testing.T) {
	tw := newTwins(t, Config{BatchMode: BatchPartial})
	hd := merge(restHeaders(tok), map[string]string{"X-RestLi-Method": "BATCH_CREATE"})
	tw.post(t, hd, []byte(`{"elements":[`+ev("k1")+`,`+ev("k2")+`]}`))                    // kept in place
	tw.post(t, hd, []byte(`{"elements":[`+ev("k3", 1)+`,`+ev("k4", 1)+`,`+ev("k5")+`]}`)) // copied: most refused
	tw.check(t)
	got := tw.fast.Conversions(ConversionFilter{})
	ids := []string{"k1", "k2", "k5"}
	if len(got) != len(ids) {
		t.Fatalf("%d conversions, want %d", len(got), len(ids))
	}
	for i, c := range got {
		if string(c.Body) != ev(ids[i]) || c.EventID != ids[i] {
			t.Errorf("conversion %d: %s %q, want %s", i, c.Body, c.EventID, ev(ids[i]))
		}
		if cap(c.Body) != len(c.Body) {
			t.Errorf("conversion %d: body capacity %d beyond its length %d", i, cap(c.Body), len(c.Body))
		}
	}
}

func TestIsHexHashAndAmount(t *testing.T) {
	hexRE := regexp.MustCompile(`^[0-9a-fA-F]{64}$`)
	amountRE := regexp.MustCompile(`^[0-9]+(\.[0-9]+)?$`)
	inputs := []string{"", "0", "1.5", "1.", ".5", "01.50", "1.5.5", "-1", "+1", "1e3", "1,5", " 1", "1 ", "1\n", "١",
		"\xff", "12\x00", emailHash, strings.ToUpper(emailHash), emailHash + "\n", emailHash[1:], emailHash + "0",
		emailHash[:63] + "g", emailHash[:63] + "é"}
	for _, s := range inputs {
		if got, want := isHexHash(s), hexRE.MatchString(s); got != want {
			t.Errorf("isHexHash(%q) = %v, want %v", s, got, want)
		}
		if got, want := isAmount(s), amountRE.MatchString(s); got != want {
			t.Errorf("isAmount(%q) = %v, want %v", s, got, want)
		}
	}
}

// TestRingOrder checks the conversion ring against a plain FIFO, with maxima
// within one block and across blocks (a last block shorter than the others
// included).
func TestRingOrder(t *testing.T) {
	for _, max := range []int{1, 2, 3, 7, ringBlock, ringBlock + 1, 2*ringBlock + 5} {
		var r ring
		var fifo []Conversion
		for i := range 2*max + 20 {
			c := Conversion{Seq: int64(i + 1)}
			dropped := r.push(c, max)
			fifo = append(fifo, c)
			want := 0
			if len(fifo) > max {
				want, fifo = len(fifo)-max, fifo[len(fifo)-max:]
			}
			if dropped != want || r.len() != len(fifo) {
				t.Fatalf("max %d push %d: dropped %d len %d, want %d %d", max, i, dropped, r.len(), want, len(fifo))
			}
			held := 0
			for _, b := range r.blocks {
				held += cap(b)
			}
			if held > max {
				t.Fatalf("max %d push %d: blocks hold %d conversions", max, i, held)
			}
			if max > 16 && i%(max/4) > 1 && i < 2*max {
				continue // every push is checked up to 16; above, around a few
			}
			var got []Conversion
			for cur := r.live(); cur.peek() != nil; cur.pop() {
				got = append(got, *cur.peek())
			}
			if !reflect.DeepEqual(got, fifo) {
				t.Fatalf("max %d push %d: ring %v, want %v", max, i, got, fifo)
			}
		}
	}
}

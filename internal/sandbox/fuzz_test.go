package sandbox

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

// FuzzConversionEvent feeds arbitrary bodies to the single-create
// validation, directly and through the handler. It also checks that the fast
// path of conversionEvents agrees with the generic path, on the body as a
// single event, as a BATCH_CREATE body and wrapped in one. Seeds:
// testdata/fuzz.
func FuzzConversionEvent(f *testing.F) {
	for _, s := range []string{specFullEvent, specFatIDEvent, specNameEvent, ev("x"), `{}`, specBatch,
		`{"elements":[` + benchEvent(1) + `,` + ev("y") + `]}`} {
		f.Add([]byte(s))
	}
	for _, c := range eventCases {
		f.Add([]byte(c.body))
	}
	srv, err := New(Config{Now: func() time.Time { return specNow }, Tokens: []TokenSpec{{Token: tok}},
		RatePerMinute: -1, RatePerDay: -1, MaxConversions: 10, MaxRequestLog: -1}, nil)
	if err != nil {
		f.Fatal(err)
	}
	handler := srv.Handler()
	tw := newTwins(f, Config{BatchMode: BatchPartial, MaxConversions: 10})
	batchHeaders := merge(restHeaders(tok), map[string]string{"X-RestLi-Method": "BATCH_CREATE"})
	f.Fuzz(func(t *testing.T, body []byte) {
		trimmed := bytes.TrimSpace(body)
		wrapped := []byte(`{"elements":[` + string(body) + `]}`)
		for _, o := range []schemaOpts{{}, {strictUnknown: true, lengths: true, axciom: true, hashedNames: true}} {
			checkFastEvents(t, srv, trimmed, false, o)
			checkFastEvents(t, srv, trimmed, true, o)
			checkFastEvents(t, srv, wrapped, true, o)
		}
		tw.post(t, restHeaders(tok), body)
		tw.post(t, batchHeaders, body)
		tw.post(t, batchHeaders, wrapped)
		tw.check(t)

		x, decErr := decodeJSON(body)
		var lines []string
		obj, isObj := x.(map[string]any)
		if decErr == nil {
			lines = validateSchema(x, schemaOpts{})
			if again := validateSchema(x, schemaOpts{strictUnknown: true, lengths: true}); len(again) < len(lines) {
				t.Fatalf("stricter options found fewer errors: %q vs %q", again, lines)
			}
			if !slices.Equal(lines, validateSchema(x, schemaOpts{})) {
				t.Fatal("validation is not deterministic")
			}
			for _, l := range lines {
				if !strings.HasPrefix(l, "ERROR :: /") || !strings.HasSuffix(l, "\n") || strings.Count(l, "\n") != 1 {
					t.Fatalf("malformed line %q", l)
				}
			}
		}
		req := httptest.NewRequest("POST", "/rest/conversionEvents", bytes.NewReader(body))
		for k, v := range restHeaders(tok) {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		_, hasElems := obj["elements"]
		plainObject := decErr == nil && isObj && !hasElems
		switch rec.Code {
		case 201:
			if !plainObject || len(lines) > 0 {
				t.Fatalf("accepted a body with schema errors %q", lines)
			}
			return
		case 422:
			if !plainObject || len(lines) == 0 {
				t.Fatalf("422 without schema errors: %s", rec.Body)
			}
		case 400, 403:
			if plainObject && len(lines) > 0 {
				t.Fatalf("%d for a body with schema errors: %s", rec.Code, rec.Body)
			}
		default:
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		var e struct {
			Status  int    `json:"status"`
			Message string `json:"message"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Status != rec.Code || e.Message == "" {
			t.Fatalf("error body %s: %v", rec.Body, err)
		}
	})
}

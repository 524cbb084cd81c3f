package linkedin

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const token = "AQVnEw-secret-token"

func conv(ruleID string, i int) Conversion {
	return Conversion{
		Conversion:           "urn:lla:llaPartnerConversion:" + ruleID,
		ConversionHappenedAt: 1767139200000 + int64(i),
		EventID:              "evt-" + strconv.Itoa(i),
		User:                 User{UserIDs: []UserID{{IDLinkedInUUID, "li-" + strconv.Itoa(i)}}},
	}
}

func TestRequestHeaders(t *testing.T) {
	c := conv("1", 0)
	single, err := NewSingleRequest(RequestConfig{APIVersion: "202610", AccessToken: token}, &c)
	if err != nil {
		t.Fatal(err)
	}
	batches, err := NewBatchRequests(RequestConfig{AccessToken: token}, []Conversion{c}, 0)
	if err != nil {
		t.Fatal(err)
	}
	noToken, err := NewSingleRequest(RequestConfig{}, &c)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		req    Request
		header string
		want   string // "" = absent
	}{
		{"single method", single, ":method", "POST"},
		{"single path", single, ":path", "/rest/conversionEvents"},
		{"single authorization", single, "Authorization", "Bearer " + token},
		{"single version", single, "LinkedIn-Version", "202610"},
		{"single protocol", single, "X-Restli-Protocol-Version", "2.0.0"},
		{"single has no restli method", single, "X-RestLi-Method", ""},
		{"single content type", single, "Content-Type", "application/json"},
		{"batch method", batches[0], ":method", "POST"},
		{"batch path", batches[0], ":path", "/rest/conversionEvents"},
		{"batch authorization", batches[0], "Authorization", "Bearer " + token},
		{"batch default version", batches[0], "LinkedIn-Version", DefaultAPIVersion},
		{"batch protocol", batches[0], "X-Restli-Protocol-Version", "2.0.0"},
		{"batch restli method", batches[0], "X-RestLi-Method", "BATCH_CREATE"},
		{"batch content type", batches[0], "Content-Type", "application/json"},
		{"no token, no authorization", noToken, "Authorization", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got string
			switch tt.header {
			case ":method":
				got = tt.req.Method
			case ":path":
				got = tt.req.Path
			default:
				got = tt.req.Header.Get(tt.header)
			}
			if got != tt.want {
				t.Errorf("%s = %q, want %q", tt.header, got, tt.want)
			}
		})
	}
	if single.Batch || !batches[0].Batch || !slices.Equal(single.Indices, []int{0}) {
		t.Errorf("Batch/Indices: single %v %v, batch %v", single.Batch, single.Indices, batches[0].Batch)
	}
}

func TestValidateAPIVersion(t *testing.T) {
	tests := []struct {
		in      string
		wantErr bool
	}{
		{"202609", false}, {"202401", false}, {"202412", false},
		{"", true}, {"2024-1", true}, {"20240101", true}, {"202413", true}, {"202400", true}, {"v20240", true},
	}
	for _, tt := range tests {
		if err := ValidateAPIVersion(tt.in); (err != nil) != tt.wantErr {
			t.Errorf("ValidateAPIVersion(%q) = %v", tt.in, err)
		}
	}
	c := conv("1", 0)
	if _, err := NewSingleRequest(RequestConfig{APIVersion: "2026-09"}, &c); err == nil {
		t.Error("NewSingleRequest accepted a bad version")
	}
	if _, err := NewBatchRequests(RequestConfig{APIVersion: "2026-09"}, []Conversion{c}, 1); err == nil {
		t.Error("NewBatchRequests accepted a bad version")
	}
}

func TestSpecBatchExample(t *testing.T) {
	// §9: two conversions of one rule in one BATCH_CREATE request.
	a, err := BuildConversion(decode(t, `{"conversionHappenedAt":1767139200000,"eventId":"order-5291","email":"test@example.com"}`), rule, specNow)
	if err != nil {
		t.Fatal(err)
	}
	b, err := BuildConversion(decode(t, `{"conversionHappenedAt":1767142800000,"eventId":"order-5292","linkedInUUID":"123456"}`), rule, specNow)
	if err != nil {
		t.Fatal(err)
	}
	reqs, err := NewBatchRequests(RequestConfig{APIVersion: "202609", AccessToken: token}, []Conversion{a, b}, 5000)
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	want := compact(t, `{
	  "elements": [
	    {"conversion":"urn:lla:llaPartnerConversion:22833300","conversionHappenedAt":1767139200000,
	     "eventId":"order-5291","user":{"userIds":[{"idType":"SHA256_EMAIL","idValue":"973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b"}]}},
	    {"conversion":"urn:lla:llaPartnerConversion:22833300","conversionHappenedAt":1767142800000,
	     "eventId":"order-5292","user":{"userIds":[{"idType":"LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID","idValue":"123456"}]}}
	  ]
	}`)
	if got := string(reqs[0].Body); got != want {
		t.Errorf("body\n got %s\nwant %s", got, want)
	}
	out, _ := json.Marshal(reqs[0])
	golden(t, "spec_9_batch.golden", indent(t, out))
}

func TestSpecSingleExampleGolden(t *testing.T) {
	c, err := BuildConversion(decode(t, `{"conversionHappenedAt":1767139200000,"conversionValue":{"currencyCode":"USD","amount":"149.00"},
		"eventId":"order-5291","email":"  Jane.Doe@Example.COM ","linkedInUUID":"8a1f0c52-6d3e-4b7a-9c21-5e4f7d2a9b10",
		"userInfo":{"firstName":"Jane","lastName":"Doe","companyName":"Acme Corp","title":"VP Engineering","countryCode":"US"},
		"externalIds":["crm-contact-77812"]}`), rule, specNow)
	if err != nil {
		t.Fatal(err)
	}
	req, err := NewSingleRequest(RequestConfig{AccessToken: token}, &c)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(req)
	if strings.Contains(string(out), token) {
		t.Fatal("printed request contains the token")
	}
	golden(t, "spec_8_1_single.golden", indent(t, out))
}

func TestNewBatchRequestsChunkingAndGrouping(t *testing.T) {
	mk := func(rules ...string) []Conversion {
		cs := make([]Conversion, len(rules))
		for i, r := range rules {
			cs[i] = conv(r, i)
		}
		return cs
	}
	type part struct {
		rule    string
		indices []int
	}
	tests := []struct {
		name string
		cs   []Conversion
		size int
		want []part
	}{
		{"empty", nil, 10, nil},
		{"one", mk("1"), 10, []part{{"1", []int{0}}}},
		{"exact size", mk("1", "1", "1"), 3, []part{{"1", []int{0, 1, 2}}}},
		{"chunks of 2", mk("1", "1", "1", "1", "1"), 2, []part{{"1", []int{0, 1}}, {"1", []int{2, 3}}, {"1", []int{4}}}},
		{"grouped per rule in first-appearance order", mk("2", "1", "2", "3", "1"), 10,
			[]part{{"2", []int{0, 2}}, {"1", []int{1, 4}}, {"3", []int{3}}}},
		{"grouped then chunked", mk("1", "2", "1", "2", "1"), 2,
			[]part{{"1", []int{0, 2}}, {"1", []int{4}}, {"2", []int{1, 3}}}},
		{"size 0 means 5000", mk("1", "1"), 0, []part{{"1", []int{0, 1}}}},
		{"negative size means 5000", mk("1", "1"), -3, []part{{"1", []int{0, 1}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reqs, err := NewBatchRequests(RequestConfig{AccessToken: token}, tt.cs, tt.size)
			if err != nil {
				t.Fatal(err)
			}
			var got []part
			for _, r := range reqs {
				got = append(got, part{strings.TrimPrefix(r.Rule, "urn:lla:llaPartnerConversion:"), r.Indices})
				// The body holds exactly the conversions named by Indices.
				var body struct{ Elements []json.RawMessage }
				if err := json.Unmarshal(r.Body, &body); err != nil {
					t.Fatalf("body: %v", err)
				}
				if len(body.Elements) != len(r.Indices) {
					t.Fatalf("%d elements for %d indices", len(body.Elements), len(r.Indices))
				}
				for k, i := range r.Indices {
					if want := string(tt.cs[i].AppendJSON(nil)); string(body.Elements[k]) != want {
						t.Errorf("element %d = %s, want %s", k, body.Elements[k], want)
					}
				}
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i].rule != tt.want[i].rule || !slices.Equal(got[i].indices, tt.want[i].indices) {
					t.Errorf("request %d = %v, want %v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestNewBatchRequestsMax(t *testing.T) {
	cs := make([]Conversion, 12001)
	for i := range cs {
		cs[i] = conv("1", i)
	}
	reqs, err := NewBatchRequests(RequestConfig{}, cs, 9999)
	if err != nil {
		t.Fatal(err)
	}
	var sizes []int
	for _, r := range reqs {
		sizes = append(sizes, len(r.Indices))
	}
	if !slices.Equal(sizes, []int{5000, 5000, 2001}) {
		t.Errorf("batch sizes %v, want [5000 5000 2001]", sizes)
	}
	// Headers are independent copies: changing one request leaves others alone.
	reqs[0].Header.Set("X-Test", "1")
	if reqs[1].Header.Get("X-Test") != "" {
		t.Error("requests share one header map")
	}
}

func TestRequestRedaction(t *testing.T) {
	c := conv("1", 0)
	req, _ := NewSingleRequest(RequestConfig{AccessToken: token}, &c)
	req.Header.Set("X-Extra", "b")
	req.Header.Add("X-Extra", "a")
	req.Header.Set("Accept", "application/json")

	out, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"method":"POST","path":"/rest/conversionEvents","headers":{"Authorization":"Bearer REDACTED",` +
		`"LinkedIn-Version":"202609","X-Restli-Protocol-Version":"2.0.0","Content-Type":"application/json",` +
		`"Accept":"application/json","X-Extra":"b, a"},"body":` + string(c.AppendJSON(nil)) + `}`
	if string(out) != want {
		t.Errorf("MarshalJSON\n got %s\nwant %s", out, want)
	}
	red := req.Redacted()
	if got := red.Header.Get("Authorization"); got != "Bearer REDACTED" {
		t.Errorf("Redacted Authorization = %q", got)
	}
	if got := req.Header.Get("Authorization"); got != "Bearer "+token {
		t.Errorf("Redacted changed the original: %q", got)
	}
	req.Header.Set("Authorization", "Basic abc")
	if got := req.Redacted().Header.Get("Authorization"); got != "REDACTED" {
		t.Errorf("other scheme redacted as %q", got)
	}

	var log strings.Builder
	slog.New(slog.NewJSONHandler(&log, nil)).Info("send", "request", req)
	if s := log.String(); strings.Contains(s, "abc") || strings.Contains(s, "li-0") || !strings.Contains(s, `"events":1`) {
		t.Errorf("log leaks or lacks fields: %s", s)
	}
}

func TestRequestURL(t *testing.T) {
	r := Request{Path: ConversionEventsPath}
	tests := []struct{ base, want string }{
		{"https://api.linkedin.com", "https://api.linkedin.com/rest/conversionEvents"},
		{"https://api.linkedin.com/", "https://api.linkedin.com/rest/conversionEvents"},
		{"https://api.linkedin.com/rest", "https://api.linkedin.com/rest/conversionEvents"},
		{"http://127.0.0.1:9000/rest/", "http://127.0.0.1:9000/rest/conversionEvents"},
	}
	for _, tt := range tests {
		if got := r.URL(tt.base); got != tt.want {
			t.Errorf("URL(%q) = %q, want %q", tt.base, got, tt.want)
		}
	}
}

func TestHTTPRequest(t *testing.T) {
	c := conv("1", 0)
	req, _ := NewSingleRequest(RequestConfig{AccessToken: token}, &c)
	hr, err := req.HTTPRequest(context.Background(), "http://sandbox:8081")
	if err != nil {
		t.Fatal(err)
	}
	if hr.Method != http.MethodPost || hr.URL.String() != "http://sandbox:8081/rest/conversionEvents" ||
		hr.Header.Get("Authorization") != "Bearer "+token || hr.Header.Get("LinkedIn-Version") != DefaultAPIVersion {
		t.Errorf("got %s %s %v", hr.Method, hr.URL, hr.Header)
	}
	for range 2 { // the body can be re-read for a retry
		rc, err := hr.GetBody()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		if string(b) != string(req.Body) {
			t.Errorf("body %s, want %s", b, req.Body)
		}
	}
	hr.Header.Set("X-Mutated", "1")
	if req.Header.Get("X-Mutated") != "" {
		t.Error("HTTPRequest shares the header map")
	}
	if _, err := req.HTTPRequest(context.Background(), "://bad"); err == nil {
		t.Error("bad base URL accepted")
	}
}

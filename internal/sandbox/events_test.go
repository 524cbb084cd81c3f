package sandbox

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Bodies of the spec, verbatim.
const (
	bodyEmptyToken = `{"message":"Empty oauth2_access_token","serviceErrorCode":401,"status":401}`
	bodyInvalidTok = `{"status":401,"serviceErrorCode":65600,"code":"INVALID_ACCESS_TOKEN","message":"Invalid access token"}`
	bodyRevokedTok = `{"status":401,"serviceErrorCode":65601,"code":"REVOKED_ACCESS_TOKEN","message":"The token used in the request has been revoked by the user"}`
	bodyExpiredTok = `{"status":401,"serviceErrorCode":65602,"code":"EXPIRED_ACCESS_TOKEN","message":"The token used in the request has expired"}`
	bodyNoVersion  = `{"status":400,"code":"VERSION_MISSING","message":"A version must be present. Please specify a version by adding the LinkedIn-Version header."}`
	bodyDenied     = `{"status":403,"serviceErrorCode":100,"code":"ACCESS_DENIED","message":"Not enough permissions to access: conversionEvents.CREATE.20260901"}`
	bodyB1         = `{"message":"Incorrect conversions information provided. Conversion's method should be CONVERSIONS_API","status":400}`
	bodyB2         = `{"status":400,"code":"INVALID_CONVERSION_TIME_FIELD_VALUE","message":"conversionHappenedAt must be within the past 90 days and not in the future"}`
	bodyB3         = `{"status":400,"code":"INVALID_USER_IDENTIFICATION_FIELD_VALUE","message":"At least one user identifier or userInfo with firstName and lastName is required"}`
	bodyB4         = `{"status":400,"code":"INVALID_USER_IDENTIFICATION_FIELD_VALUE","message":"idValue for SHA256_EMAIL must be a 64 character hex encoded SHA256 hash"}`
	bodyB5         = `{"status":400,"code":"INVALID_USER_IDENTIFICATION_FIELD_VALUE","message":"idValue for PLAINTEXT_IP_ADDRESS must be an IPv4 address"}`
	bodyB6         = `{"status":400,"code":"INVALID_CONVERSION_VALUE","message":"Invalid currencyCode"}`
	bodyB7         = `{"status":400,"code":"INVALID_CONVERSION_VALUE","message":"Invalid amount, must be a non-negative decimal string"}`
	bodyB8         = `{"status":400,"code":"INVALID_USER_INFO","message":"Invalid countryCode"}`
	bodyB9         = `{"status":400,"code":"INVALID_USER_IDENTIFICATION_FIELD_VALUE","message":"Only one externalId is allowed"}`
	bodyParse      = `{"status":400,"message":"Unable to parse request body as JSON"}`
)

// The spec's example events (§8.1, §8.5), all valid at specNow.
const (
	specFullEvent = `{
  "conversion": "urn:lla:llaPartnerConversion:22833300",
  "conversionHappenedAt": 1767139200000,
  "conversionValue": {"currencyCode": "USD", "amount": "149.00"},
  "eventId": "order-5291",
  "user": {
    "userIds": [
      {"idType": "SHA256_EMAIL", "idValue": "86e0b9e56c17cc4d12387e1949b85053fbe73bc3ce5a1188713a9d300cc6133d"},
      {"idType": "LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID", "idValue": "8a1f0c52-6d3e-4b7a-9c21-5e4f7d2a9b10"}
    ],
    "userInfo": {
      "firstName": "Jane",
      "lastName": "Doe",
      "companyName": "Acme Corp",
      "title": "VP Engineering",
      "countryCode": "US"
    },
    "externalIds": ["crm-contact-77812"]
  }
}`
	specFatIDEvent = `{"conversion":"urn:lla:llaPartnerConversion:22833300","conversionHappenedAt":1767139200000,
 "conversionValue":{"currencyCode":"USD","amount":"0"},
 "user":{"userIds":[{"idType":"LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID","idValue":"123456"}]}}`
	specNameEvent = `{"conversion":"urn:lla:llaPartnerConversion:22833300","conversionHappenedAt":1767139200000,
 "user":{"userIds":[],"userInfo":{"firstName":"Jane","lastName":"Doe","companyName":"Acme Corp","countryCode":"DE"}}}`
	specBatch = `{
  "elements": [
    {"conversion":"urn:lla:llaPartnerConversion:22833300","conversionHappenedAt":1767139200000,
     "eventId":"order-5291","user":{"userIds":[{"idType":"SHA256_EMAIL","idValue":"973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b"}]}},
    {"conversion":"urn:lla:llaPartnerConversion:22833300","conversionHappenedAt":1767142800000,
     "eventId":"order-5292","user":{"userIds":[{"idType":"LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID","idValue":"123456"}]}}
  ]
}`
)

func TestSpecExamplesAccepted(t *testing.T) {
	h := newHarness(t, Config{})
	for _, body := range []string{specFullEvent, specFatIDEvent, specNameEvent} {
		r := h.sendEvent(tok, body)
		wantStatus(t, r, http.StatusCreated)
		wantBody(t, r, "")
		if r.header.Get("X-LI-UUID") == "" || r.header.Get("X-Restli-Protocol-Version") != "2.0.0" {
			t.Errorf("response headers %v lack X-LI-UUID or x-restli-protocol-version", r.header)
		}
		if r.header.Get("x-restli-id") != "" || r.header.Get("Location") != "" {
			t.Errorf("single create sent x-restli-id/Location: %v", r.header)
		}
	}
	hd := merge(restHeaders(tok), map[string]string{"X-RestLi-Method": "BATCH_CREATE"})
	r := h.do("POST", "/rest/conversionEvents", hd, specBatch)
	wantStatus(t, r, http.StatusOK)
	wantBody(t, r, `{"elements":[{"status":201},{"status":201}]}`)
	// The read-back holds every body exactly as received, oldest first;
	// the batch's first element repeats eventId order-5291 of the first
	// event (same rule), so LinkedIn counts it once (spec §16).
	got := h.conversions("")
	if len(got) != 4 {
		t.Fatalf("read back %d conversions, want 4", len(got))
	}
	if string(got[0]) != specFullEvent || string(got[2]) != specNameEvent {
		t.Errorf("bodies not kept verbatim:\n%s", got[0])
	}
	if !strings.Contains(string(got[3]), `"order-5292"`) {
		t.Errorf("last element = %s", got[3])
	}
	if c := h.srv.Counters(); c.Accepted != 4 || c.Deduplicated != 1 {
		t.Errorf("counters %+v", c)
	}
}

// conversions reads GET /_sandbox/conversions with an optional query.
func (h *harness) conversions(query string) []json.RawMessage {
	h.t.Helper()
	r := h.do("GET", "/_sandbox/conversions"+query, nil, "")
	wantStatus(h.t, r, http.StatusOK)
	var out struct {
		Elements []json.RawMessage `json:"elements"`
	}
	if err := json.Unmarshal([]byte(r.body), &out); err != nil {
		h.t.Fatalf("decode %s: %v", r.body, err)
	}
	return out.Elements
}

func TestConversionEventsSingle(t *testing.T) {
	now := specNow.UnixMilli()
	const day = int64(86_400_000)
	valid := ev("e1")
	withUser := func(user string) string {
		return fmt.Sprintf(`{"conversion":%q,"conversionHappenedAt":%d,"user":%s}`, ruleURNStr, now-day, user)
	}
	withValue := func(value string) string {
		return fmt.Sprintf(`{"conversion":%q,"conversionHappenedAt":%d,"conversionValue":%s,"user":{"userIds":[{"idType":"ACXIOM_ID","idValue":"a"}]}}`, ruleURNStr, now-day, value)
	}
	withID := func(idType, idValue string) string {
		return withUser(fmt.Sprintf(`{"userIds":[{"idType":%q,"idValue":%q}]}`, idType, idValue))
	}
	schema := func(lines ...string) string {
		return `{"message":"` + strings.Join(lines, `\n`) + `\n","status":422}`
	}
	const req = "field is required but not found and has no default value"
	tests := []struct {
		name    string
		cfg     Config
		headers map[string]string // overrides; "-" removes
		token   string
		body    string
		status  int
		want    string // exact body, or
		frag    string // a fragment of it
	}{
		{name: "valid", body: valid, status: 201},
		// Gateway, spec §7 and §4.
		{name: "no authorization", headers: map[string]string{"Authorization": "-"}, body: valid, status: 401, want: bodyEmptyToken},
		{name: "not bearer", headers: map[string]string{"Authorization": "Basic abc"}, body: valid, status: 401, want: bodyEmptyToken},
		{name: "empty bearer", headers: map[string]string{"Authorization": "Bearer "}, body: valid, status: 401, want: bodyEmptyToken},
		{name: "unknown token", token: "nope", body: valid, status: 401, want: bodyInvalidTok},
		{name: "auth before version", token: "nope", headers: map[string]string{"LinkedIn-Version": "-"}, body: valid, status: 401, want: bodyInvalidTok},
		{name: "version missing", headers: map[string]string{"LinkedIn-Version": "-"}, body: valid, status: 400, want: bodyNoVersion},
		{name: "version lower-case header name", headers: map[string]string{"LinkedIn-Version": "-", "linkedin-version": "202609"}, body: valid, status: 201},
		{name: "version sunset", headers: map[string]string{"LinkedIn-Version": "202401"}, body: valid, status: 426,
			want: `{"status":426,"code":"NONEXISTENT_VERSION","message":"Requested version 20240101 is not active"}`},
		{name: "version sunset yesterday", headers: map[string]string{"LinkedIn-Version": "202412"}, body: valid, status: 426, frag: "20241201 is not active"},
		{name: "version before sunset", headers: map[string]string{"LinkedIn-Version": "202501"}, body: valid, status: 201},
		{name: "version not released", headers: map[string]string{"LinkedIn-Version": "202610"}, body: valid, status: 426, frag: "20261001 is not active"},
		{name: "version malformed", headers: map[string]string{"LinkedIn-Version": "2024-1"}, body: valid, status: 426,
			want: `{"status":426,"code":"NONEXISTENT_VERSION","message":"Requested version 2024-1 is not active"}`},
		{name: "version month 13", headers: map[string]string{"LinkedIn-Version": "202513"}, body: valid, status: 426, frag: "20251301"},
		{name: "version sunset by switch", cfg: Config{SunsetVersions: []string{"202609"}}, body: valid, status: 426, frag: "20260901"},
		{name: "no restli protocol header accepted", headers: map[string]string{"X-Restli-Protocol-Version": "-"}, body: valid, status: 201},
		{name: "no content type accepted", headers: map[string]string{"Content-Type": "-"}, body: valid, status: 201},
		{name: "json with charset", headers: map[string]string{"Content-Type": "application/json; charset=utf-8"}, body: valid, status: 201},
		{name: "text content type", headers: map[string]string{"Content-Type": "text/plain"}, body: valid, status: 415,
			want: `{"status":415,"message":"Unsupported Media Type"}`},
		// Body shape, spec §9.1 and §10.1 step 6-7.
		{name: "not json", body: `{"conversion":`, status: 400, want: bodyParse},
		{name: "array body", body: `[1]`, status: 400, want: bodyParse},
		{name: "empty body", body: ``, status: 400, want: bodyParse},
		{name: "trailing garbage", body: valid + `x`, status: 400, want: bodyParse},
		{name: "elements without batch header", body: `{"elements":[` + valid + `]}`, status: 400,
			want: `{"status":400,"message":"Request body contains 'elements' but X-RestLi-Method BATCH_CREATE header is missing"}`},
		{name: "batch header without elements", headers: map[string]string{"X-RestLi-Method": "BATCH_CREATE"}, body: valid, status: 400,
			want: `{"status":400,"message":"BATCH_CREATE requires a body of the form {\"elements\":[...]}"}`},
		{name: "batch header lower case", headers: map[string]string{"X-RestLi-Method": "batch_create"}, body: `{"elements":[` + valid + `]}`, status: 200},
		{name: "elements not a list", headers: map[string]string{"X-RestLi-Method": "BATCH_CREATE"}, body: `{"elements":{}}`, status: 400, frag: "BATCH_CREATE requires"},
		{name: "empty batch", headers: map[string]string{"X-RestLi-Method": "BATCH_CREATE"}, body: `{"elements":[]}`, status: 400,
			want: `{"status":400,"message":"Batch size must be between 1 and 5000, got 0"}`},
		// Schema, spec §10.3 and §10.4.
		{name: "missing lastName", body: withUser(`{"userIds":[],"userInfo":{"firstName":"Jane"}}`), status: 422,
			want: schema("ERROR :: /user/userInfo/lastName :: " + req)},
		{name: "missing both names", body: withUser(`{"userIds":[],"userInfo":{}}`), status: 422,
			want: schema("ERROR :: /user/userInfo/firstName :: "+req, "ERROR :: /user/userInfo/lastName :: "+req)},
		{name: "missing conversion", body: fmt.Sprintf(`{"conversionHappenedAt":%d,"user":{"userIds":[]}}`, now), status: 422,
			want: schema("ERROR :: /conversion :: " + req)},
		{name: "missing everything", body: `{}`, status: 422,
			want: schema("ERROR :: /conversion :: "+req, "ERROR :: /conversionHappenedAt :: "+req, "ERROR :: /user :: "+req)},
		{name: "missing userIds", body: withUser(`{"userInfo":{"firstName":"J","lastName":"D"}}`), status: 422,
			want: schema("ERROR :: /user/userIds :: " + req)},
		{name: "missing idType and idValue", body: withUser(`{"userIds":[{}]}`), status: 422,
			want: schema("ERROR :: /user/userIds/0/idType :: "+req, "ERROR :: /user/userIds/0/idValue :: "+req)},
		{name: "phone is not an idType", body: withID("SHA256_PHONE", emailHash), status: 422,
			want: schema(`ERROR :: /user/userIds/0/idType :: \"SHA256_PHONE\" is not an enum symbol`)},
		{name: "axciom misspelling rejected", body: withID("AXCIOM_ID", "x"), status: 422, frag: `\"AXCIOM_ID\" is not an enum symbol`},
		{name: "axciom alias switch", cfg: Config{AcceptAxciomAlias: true}, body: withID("AXCIOM_ID", "x"), status: 201},
		{name: "amount as number", body: withValue(`{"currencyCode":"USD","amount":100}`), status: 422,
			want: schema("ERROR :: /conversionValue/amount :: 100 is not backed by a String")},
		{name: "value without amount", body: withValue(`{"currencyCode":"USD"}`), status: 422,
			want: schema("ERROR :: /conversionValue/amount :: " + req)},
		{name: "value without currency", body: withValue(`{"amount":"1"}`), status: 422, frag: "/conversionValue/currencyCode :: " + req},
		{name: "value not an object", body: withValue(`"12 USD"`), status: 422, frag: `/conversionValue :: \"12 USD\" is not backed by a DataMap`},
		{name: "time as string", body: strings.Replace(valid, fmt.Sprint(now-day), fmt.Sprintf(`"%d"`, now-day), 1), status: 422,
			want: schema(fmt.Sprintf(`ERROR :: /conversionHappenedAt :: \"%d\" cannot be coerced to Long`, now-day))},
		{name: "time as float", body: strings.Replace(valid, fmt.Sprint(now-day), fmt.Sprintf(`%d.5`, now-day), 1), status: 422,
			frag: fmt.Sprintf(`%d.5 cannot be coerced to Long`, now-day)},
		{name: "time as bool", body: strings.Replace(valid, fmt.Sprint(now-day), `true`, 1), status: 422, frag: "true cannot be coerced to Long"},
		{name: "conversion as number", body: fmt.Sprintf(`{"conversion":22833300,"conversionHappenedAt":%d,"user":{"userIds":[]}}`, now), status: 422,
			frag: "/conversion :: 22833300 is not backed by a String"},
		{name: "userIds not a list", body: withUser(`{"userIds":"abc"}`), status: 422, frag: `/user/userIds :: \"abc\" is not backed by a DataList`},
		{name: "userIds entry not an object", body: withUser(`{"userIds":[5]}`), status: 422, frag: `/user/userIds/0 :: 5 is not backed by a DataMap`},
		{name: "idValue null", body: withUser(`{"userIds":[{"idType":"ACXIOM_ID","idValue":null}]}`), status: 422, frag: "/user/userIds/0/idValue :: null is not backed by a String"},
		{name: "externalIds entry not a string", body: withUser(`{"userIds":[],"externalIds":[7]}`), status: 422, frag: "/user/externalIds/0 :: 7 is not backed by a String"},
		{name: "eventId as number", body: strings.Replace(ev("x"), `"x"`, `12`, 1), status: 422, frag: "/eventId :: 12 is not backed by a String"},
		{name: "schema errors in field order", body: `{"user":{"userIds":[{"idType":"NOPE"}]},"eventId":1,"conversionValue":{},"conversionHappenedAt":"x","conversion":1}`, status: 422,
			want: schema("ERROR :: /conversion :: 1 is not backed by a String",
				`ERROR :: /conversionHappenedAt :: \"x\" cannot be coerced to Long`,
				"ERROR :: /conversionValue/currencyCode :: "+req, "ERROR :: /conversionValue/amount :: "+req,
				"ERROR :: /eventId :: 1 is not backed by a String",
				`ERROR :: /user/userIds/0/idType :: \"NOPE\" is not an enum symbol`, "ERROR :: /user/userIds/0/idValue :: "+req)},
		{name: "empty firstName passes schema, fails identity", body: withUser(`{"userIds":[],"userInfo":{"firstName":"","lastName":"Doe"}}`), status: 400, want: bodyB3},
		{name: "unknown fields ignored", body: strings.Replace(valid, `{"conversion"`, `{"foo":1,"conversion"`, 1), status: 201},
		{name: "unknown fields strict", cfg: Config{StrictUnknownFields: true},
			body: withUser(`{"userIds":[{"idType":"ACXIOM_ID","idValue":"a","x":1}],"zz":1}`), status: 422,
			want: schema("ERROR :: /user/userIds/0/x :: unrecognized field found but not allowed", "ERROR :: /user/zz :: unrecognized field found but not allowed")},
		{name: "hashed names from 202609", cfg: Config{StrictUnknownFields: true},
			body: withUser(`{"userIds":[],"userInfo":{"firstName":"J","lastName":"D","hashedFirstName":"` + emailHash + `"}}`), status: 201},
		{name: "hashed names unknown before 202609", cfg: Config{StrictUnknownFields: true}, headers: map[string]string{"LinkedIn-Version": "202608"},
			body: withUser(`{"userIds":[],"userInfo":{"firstName":"J","lastName":"D","hashedFirstName":"` + emailHash + `"}}`), status: 422,
			frag: "/user/userInfo/hashedFirstName :: unrecognized field"},
		{name: "field lengths off by default", body: withUser(`{"userIds":[],"userInfo":{"firstName":"` + strings.Repeat("a", 36) + `","lastName":"D"}}`), status: 201},
		{name: "field lengths enforced", cfg: Config{EnforceFieldLengths: true},
			body: withUser(`{"userIds":[],"userInfo":{"firstName":"` + strings.Repeat("a", 36) + `","lastName":"D"}}`), status: 422,
			frag: "/user/userInfo/firstName :: length of"},
		{name: "eventId length enforced", cfg: Config{EnforceFieldLengths: true}, body: ev(strings.Repeat("e", 65)), status: 422, frag: "/eventId :: length of"},
		// Rule lookup and permission, spec §10.1 step 9.
		{name: "unknown rule", body: strings.Replace(valid, "22833300", "999", 1), status: 400, want: bodyB1},
		{name: "insight tag rule", body: strings.Replace(valid, "22833300", "1403456", 1), status: 400, want: bodyB1},
		{name: "malformed urn", body: strings.Replace(valid, "urn:lla:llaPartnerConversion:22833300", "22833300", 1), status: 400, want: bodyB1},
		{name: "li namespace tolerated", body: strings.Replace(valid, "urn:lla:", "urn:li:", 1), status: 201},
		{name: "li namespace rejected by switch", cfg: Config{RejectLiURNNamespace: true}, body: strings.Replace(valid, "urn:lla:", "urn:li:", 1), status: 400, want: bodyB1},
		{name: "rule of another account", body: strings.Replace(valid, "22833300", "22800001", 1), status: 403, want: bodyDenied},
		{name: "rule of a viewer-only account", body: strings.Replace(valid, "22833300", "22800002", 1), status: 403, want: bodyDenied},
		{name: "viewer token", token: viewerTok, body: valid, status: 403, want: bodyDenied},
		{name: "token without rw_conversions", token: noScopeTok, body: valid, status: 403, want: bodyDenied},
		{name: "unknown rule before permission", token: noScopeTok, body: strings.Replace(valid, "22833300", "999", 1), status: 400, want: bodyB1},
		{name: "schema before permission", token: noScopeTok, body: `{}`, status: 422},
		// Business rules, spec §10.2.
		{name: "B2 too old", body: ev("", now-91*day), status: 400, want: bodyB2},
		{name: "B2 exactly 90 days", body: ev("", now-90*day), status: 201},
		{name: "B2 seconds instead of ms", body: ev("", (now-day)/1000), status: 400, want: bodyB2},
		{name: "B2 future beyond tolerance", body: ev("", now+5*60_000+1), status: 400, want: bodyB2},
		{name: "B2 future within tolerance", body: ev("", now+5*60_000), status: 201},
		{name: "B2 custom window", cfg: Config{EventWindow: 24 * time.Hour}, body: ev("", now-2*day), status: 400, want: bodyB2},
		{name: "B2 no future tolerance", cfg: Config{FutureTolerance: -1}, body: ev("", now+1), status: 400, want: bodyB2},
		{name: "B2 before B3", body: fmt.Sprintf(`{"conversion":%q,"conversionHappenedAt":1,"user":{"userIds":[]}}`, ruleURNStr), status: 400, want: bodyB2},
		{name: "B3 no identity", body: withUser(`{"userIds":[]}`), status: 400, want: bodyB3},
		{name: "B3 empty idValue", body: withID("ACXIOM_ID", ""), status: 400, want: bodyB3},
		{name: "B3 userInfo identity", body: withUser(`{"userIds":[],"userInfo":{"firstName":"J","lastName":"D"}}`), status: 201},
		{name: "B3 externalId identity", body: withUser(`{"userIds":[],"externalIds":["crm-1"]}`), status: 201},
		{name: "B3 empty externalId", body: withUser(`{"userIds":[],"externalIds":[""]}`), status: 400, want: bodyB3},
		{name: "B3 lead identity", body: withUser(`{"userIds":[],"lead":"urn:li:leadGenFormResponse:abc-123"}`), status: 201},
		{name: "B4 plaintext email", body: withID("SHA256_EMAIL", "jane@example.com"), status: 400, want: bodyB4},
		{name: "B4 63 hex", body: withID("SHA256_EMAIL", emailHash[1:]), status: 400, want: bodyB4},
		{name: "B4 upper-case hex accepted", body: withID("SHA256_EMAIL", strings.ToUpper(emailHash)), status: 201},
		{name: "B4 ip hash", body: withID("SHA256_IP_ADDRESS", "1.2.3.4"), status: 400, frag: "idValue for SHA256_IP_ADDRESS must be a 64 character hex encoded SHA256 hash"},
		{name: "B4 lax switch", cfg: Config{LaxHashFormat: true}, body: withID("SHA256_EMAIL", "jane@example.com"), status: 201},
		{name: "B5 ipv6", body: withID("PLAINTEXT_IP_ADDRESS", "2001:db8::1"), status: 400, want: bodyB5},
		{name: "B5 garbage", body: withID("PLAINTEXT_IP_ADDRESS", "1.2.3"), status: 400, want: bodyB5},
		{name: "B5 ipv4", body: withID("PLAINTEXT_IP_ADDRESS", "192.0.2.1"), status: 201},
		{name: "B6 lower-case currency", body: withValue(`{"currencyCode":"usd","amount":"1"}`), status: 400, want: bodyB6},
		{name: "B6 unknown currency", body: withValue(`{"currencyCode":"XYZ","amount":"1"}`), status: 400, want: bodyB6},
		{name: "B6 EUR", body: withValue(`{"currencyCode":"EUR","amount":"1500.0"}`), status: 201},
		{name: "B7 negative", body: withValue(`{"currencyCode":"USD","amount":"-1"}`), status: 400, want: bodyB7},
		{name: "B7 exponent", body: withValue(`{"currencyCode":"USD","amount":"1e5"}`), status: 400, want: bodyB7},
		{name: "B7 empty", body: withValue(`{"currencyCode":"USD","amount":""}`), status: 400, want: bodyB7},
		{name: "B7 zero", body: withValue(`{"currencyCode":"USD","amount":"0"}`), status: 201},
		{name: "B7 decimals", body: withValue(`{"currencyCode":"USD","amount":"100.05"}`), status: 201},
		{name: "B6 before B7", body: withValue(`{"currencyCode":"$","amount":"-1"}`), status: 400, want: bodyB6},
		{name: "B8 unknown country", body: withUser(`{"userIds":[],"userInfo":{"firstName":"J","lastName":"D","countryCode":"XX"}}`), status: 400, want: bodyB8},
		{name: "B8 lower-case country", body: withUser(`{"userIds":[],"userInfo":{"firstName":"J","lastName":"D","countryCode":"us"}}`), status: 400, want: bodyB8},
		{name: "B8 empty country", body: withUser(`{"userIds":[],"userInfo":{"firstName":"J","lastName":"D","countryCode":""}}`), status: 201},
		{name: "B9 two externalIds", body: withUser(`{"userIds":[],"externalIds":["a","b"]}`), status: 400, want: bodyB9},
		{name: "disabled rule accepted", cfg: Config{}, body: valid, status: 201},
		{name: "duplicate eventId accepted", body: ev("dup"), status: 201},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.cfg)
			token := tc.token
			if token == "" {
				token = tok
			}
			hd := merge(restHeaders(token), tc.headers)
			r := h.do("POST", "/rest/conversionEvents", hd, tc.body)
			wantStatus(t, r, tc.status)
			if tc.want != "" {
				wantBody(t, r, tc.want)
			}
			if tc.frag != "" && !strings.Contains(r.body, tc.frag) {
				t.Fatalf("body %s lacks %q", r.body, tc.frag)
			}
			if r.status >= 400 && r.header.Get("Content-Type") != "application/json" {
				t.Errorf("error Content-Type = %q", r.header.Get("Content-Type"))
			}
			stored := len(h.srv.Conversions(ConversionFilter{Duplicates: true}))
			if ok := r.status < 300; ok != (stored > 0) {
				t.Errorf("status %d but %d conversions stored", r.status, stored)
			}
		})
	}
}

func TestDisabledRule(t *testing.T) {
	for _, reject := range []bool{false, true} {
		t.Run(fmt.Sprint("reject=", reject), func(t *testing.T) {
			h := newHarness(t, Config{RejectDisabledRule: reject})
			r := h.do("POST", "/rest/conversions/22833300?account=urn%3Ali%3AsponsoredAccount%3A508747394",
				merge(restHeaders(tok), map[string]string{"X-RestLi-Method": "PARTIAL_UPDATE"}), `{"patch":{"$set":{"enabled":false}}}`)
			wantStatus(t, r, http.StatusNoContent)
			r = h.sendEvent(tok, ev("x"))
			if reject {
				wantStatus(t, r, 400)
				wantBody(t, r, bodyB1)
			} else {
				wantStatus(t, r, 201)
			}
		})
	}
}

func TestConversionEventsBatch(t *testing.T) {
	now := specNow.UnixMilli()
	const day = int64(86_400_000)
	noAmount := fmt.Sprintf(`{"conversion":%q,"conversionHappenedAt":%d,"conversionValue":{"currencyCode":"USD"},"user":{"userIds":[],"userInfo":{"lastName":"D"}}}`, ruleURNStr, now)
	phone := fmt.Sprintf(`{"conversion":%q,"conversionHappenedAt":%d,"user":{"userIds":[{"idType":"SHA256_PHONE","idValue":"x"}]}}`, ruleURNStr, now)
	tests := []struct {
		name   string
		cfg    Config
		elems  []string
		status int
		want   string
		stored int
	}{
		{name: "all valid", elems: []string{ev("a"), ev("b"), ev("c")}, status: 200,
			want: `{"elements":[{"status":201},{"status":201},{"status":201}]}`, stored: 3},
		{name: "schema errors, spec example", elems: []string{noAmount, ev("b"), phone}, status: 422,
			want: `{"message":"Index: 0, ERROR :: /conversionValue/amount :: field is required but not found and has no default value\nERROR :: /user/userInfo/firstName :: field is required but not found and has no default value\nIndex: 2, ERROR :: /user/userIds/0/idType :: \"SHA256_PHONE\" is not an enum symbol\n","status":422}`},
		{name: "element not an object", elems: []string{ev("a"), `7`}, status: 422,
			want: `{"message":"Index: 1, ERROR :: / :: 7 is not backed by a DataMap\n","status":422}`},
		{name: "business rule indices", elems: []string{ev("a"), ev("b", now-100*day), ev("c"), ev("d", now+day)}, status: 400,
			want: `{"status":400,"code":"INVALID_CONVERSION_TIME_FIELD_VALUE","message":"conversionHappenedAt must be within the past 90 days and not in the future, indices [1, 3] (0-indexed)"}`},
		{name: "unknown rule indices", elems: []string{strings.Replace(ev("a"), "22833300", "1", 1), ev("b")}, status: 400,
			want: `{"message":"Incorrect conversions information provided. Conversion's method should be CONVERSIONS_API, indices [0] (0-indexed)","status":400}`},
		{name: "first failing rule answers", elems: []string{ev("a", 1), strings.Replace(ev("b"), `"userIds":[{"idType":"LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID","idValue":"123456"}]`, `"userIds":[]`, 1)}, status: 400,
			want: bodyB2[:len(bodyB2)-2] + `, indices [0] (0-indexed)"}`},
		{name: "permission", elems: []string{ev("a"), strings.Replace(ev("b"), "22833300", "22800001", 1)}, status: 403,
			want: `{"status":403,"serviceErrorCode":100,"code":"ACCESS_DENIED","message":"Not enough permissions to access: conversionEvents.BATCH_CREATE.20260901"}`},
		{name: "partial mode", cfg: Config{BatchMode: BatchPartial}, elems: []string{ev("a"), ev("b", 1), phone, strings.Replace(ev("c"), "22833300", "1", 1), ev("d")}, status: 200,
			want: `{"elements":[{"status":201},{"status":400,"error":{"status":400,"code":"INVALID_CONVERSION_TIME_FIELD_VALUE","message":"conversionHappenedAt must be within the past 90 days and not in the future"}},` +
				`{"status":422,"error":{"status":422,"message":"ERROR :: /user/userIds/0/idType :: \"SHA256_PHONE\" is not an enum symbol\n"}},` +
				`{"status":400,"error":{"status":400,"message":"Incorrect conversions information provided. Conversion's method should be CONVERSIONS_API"}},{"status":201}]}`,
			stored: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.cfg)
			r := h.sendBatch(tok, tc.elems...)
			wantStatus(t, r, tc.status)
			wantBody(t, r, tc.want)
			if got := len(h.srv.Conversions(ConversionFilter{})); got != tc.stored {
				t.Errorf("stored %d, want %d", got, tc.stored)
			}
		})
	}
}

func TestBatchLimits(t *testing.T) {
	h := newHarness(t, Config{})
	elems := make([]string, MaxBatch+1)
	for i := range elems {
		elems[i] = ev(fmt.Sprint("e", i))
	}
	r := h.sendBatch(tok, elems...)
	wantStatus(t, r, 400)
	wantBody(t, r, `{"status":400,"message":"Batch size must be between 1 and 5000, got 5001"}`)
	r = h.sendBatch(tok, elems[:MaxBatch]...)
	wantStatus(t, r, 200)
	var out struct {
		Elements []elemResult `json:"elements"`
	}
	if err := json.Unmarshal([]byte(r.body), &out); err != nil || len(out.Elements) != MaxBatch {
		t.Fatalf("decode: %v, %d elements", err, len(out.Elements))
	}
	c := h.srv.Counters()
	if c.Accepted != MaxBatch || c.Batches != 1 || c.ConversionRequests != 2 {
		t.Errorf("counters %+v", c)
	}
	recs := h.srv.Conversions(ConversionFilter{EventID: "e4999"})
	if len(recs) != 1 || recs[0].Index != 4999 || recs[0].BatchID == "" || recs[0].BatchID != r.header.Get("X-LI-UUID") {
		t.Errorf("record of the last element = %+v", recs)
	}
}

func TestBodyTooLarge(t *testing.T) {
	h := newHarness(t, Config{MaxBodyBytes: 100})
	r := h.sendEvent(tok, ev(strings.Repeat("x", 200)))
	wantStatus(t, r, http.StatusRequestEntityTooLarge)
	wantBody(t, r, `{"status":413,"message":"Request entity too large"}`)
}

package linkedin

import (
	"encoding/json"
	"errors"
	"math/big"
	"strconv"
	"strings"
	"testing"
	"time"
)

const rule = "22833300"

func TestBuildConversionSpecExamples(t *testing.T) {
	tests := []struct {
		name   string
		fields string
		rule   string
		now    time.Time
		want   string
	}{
		{
			name: "§8.1 full body",
			fields: `{"conversionHappenedAt":1767139200000,"conversionValue":{"currencyCode":"USD","amount":"149.00"},
				"eventId":"order-5291","email":"  Jane.Doe@Example.COM ","linkedInUUID":"8a1f0c52-6d3e-4b7a-9c21-5e4f7d2a9b10",
				"userInfo":{"firstName":"Jane","lastName":"Doe","companyName":"Acme Corp","title":"VP Engineering","countryCode":"US"},
				"externalIds":["crm-contact-77812"]}`,
			rule: rule, now: specNow,
			want: `{
			  "conversion": "urn:lla:llaPartnerConversion:22833300",
			  "conversionHappenedAt": 1767139200000,
			  "conversionValue": {"currencyCode": "USD", "amount": "149.00"},
			  "eventId": "order-5291",
			  "user": {
			    "userIds": [
			      {"idType": "SHA256_EMAIL", "idValue": "86e0b9e56c17cc4d12387e1949b85053fbe73bc3ce5a1188713a9d300cc6133d"},
			      {"idType": "LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID", "idValue": "8a1f0c52-6d3e-4b7a-9c21-5e4f7d2a9b10"}
			    ],
			    "userInfo": {"firstName": "Jane", "lastName": "Doe", "companyName": "Acme Corp", "title": "VP Engineering", "countryCode": "US"},
			    "externalIds": ["crm-contact-77812"]
			  }
			}`,
		},
		{
			name:   "§8.5 li_fat_id only, value zero",
			fields: `{"conversionHappenedAt":"1767139200000","conversionValue":{"currencyCode":"USD","amount":0},"linkedInUUID":"123456"}`,
			rule:   rule, now: specNow,
			want: `{"conversion":"urn:lla:llaPartnerConversion:22833300","conversionHappenedAt":1767139200000,
				"conversionValue":{"currencyCode":"USD","amount":"0"},
				"user":{"userIds":[{"idType":"LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID","idValue":"123456"}]}}`,
		},
		{
			name: "§9 batch element 1",
			fields: `{"conversionHappenedAt":1767139200000,"eventId":"order-5291","email":"test@example.com",
				"conversionValue":{}}`,
			rule: rule, now: specNow,
			want: `{"conversion":"urn:lla:llaPartnerConversion:22833300","conversionHappenedAt":1767139200000,
				"eventId":"order-5291","user":{"userIds":[{"idType":"SHA256_EMAIL","idValue":"973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b"}]}}`,
		},
		{
			name: "segment-ingest §5.13 mapping output",
			fields: `{
			  "conversionHappenedAt": 1788258896789,
			  "conversionValue": { "currencyCode": "USD", "amount": "0" },
			  "eventId": "ajs-next-1788258896789-5b1c2f3e",
			  "email": "55e79200c1635b37ad31a378c39feb12f120f116625093a19bc32fff15041149",
			  "linkedInUUID": "123456",
			  "userInfo": { "firstName": "John", "lastName": "Doe", "companyName": "Acme Inc", "title": "Engineer", "countryCode": "US" },
			  "enable_batching": true,
			  "batch_size": 5000
			}`,
			rule: rule, now: time.UnixMilli(1788258896789 + 3600000),
			want: `{"conversion":"urn:lla:llaPartnerConversion:22833300","conversionHappenedAt":1788258896789,
				"conversionValue":{"currencyCode":"USD","amount":"0"},"eventId":"ajs-next-1788258896789-5b1c2f3e",
				"user":{"userIds":[{"idType":"SHA256_EMAIL","idValue":"55e79200c1635b37ad31a378c39feb12f120f116625093a19bc32fff15041149"},
				{"idType":"LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID","idValue":"123456"}],
				"userInfo":{"firstName":"John","lastName":"Doe","companyName":"Acme Inc","title":"Engineer","countryCode":"US"}}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := BuildConversion(decode(t, tt.fields), tt.rule, tt.now)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := json.Marshal(c)
			if want := compact(t, tt.want); string(got) != want {
				t.Errorf("got  %s\nwant %s", got, want)
			}
		})
	}
}

// §8.5's second example cannot come from the Segment-compatible action (it
// has no email/UUID/Acxiom/Oracle id), but its encoding shows that userIds
// is always present.
func TestEncodeNameOnlyExample(t *testing.T) {
	c := Conversion{
		Conversion:           "urn:lla:llaPartnerConversion:22833300",
		ConversionHappenedAt: 1767139200000,
		User:                 User{UserInfo: &UserInfo{FirstName: "Jane", LastName: "Doe", CompanyName: "Acme Corp", CountryCode: "DE"}},
	}
	got, _ := json.Marshal(c)
	want := compact(t, `{"conversion":"urn:lla:llaPartnerConversion:22833300","conversionHappenedAt":1767139200000,
		"user":{"userIds":[],"userInfo":{"firstName":"Jane","lastName":"Doe","companyName":"Acme Corp","countryCode":"DE"}}}`)
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestBuildConversionSegmentGolden(t *testing.T) {
	// The §5.13 mapping output, printed as `capstan preview` would.
	fields := decode(t, `{"conversionHappenedAt":1788258896789,"conversionValue":{"currencyCode":"USD","amount":"0"},
		"eventId":"ajs-next-1788258896789-5b1c2f3e","email":"55e79200c1635b37ad31a378c39feb12f120f116625093a19bc32fff15041149",
		"linkedInUUID":"123456","userInfo":{"firstName":"John","lastName":"Doe","companyName":"Acme Inc","title":"Engineer","countryCode":"US"},
		"enable_batching":true,"batch_size":5000,
		"onMappingSave":{"outputs":{"id":"22833300","name":"CAPI-Page-View"}}}`)
	c, err := BuildConversion(fields, "", time.UnixMilli(1788258896789+60000))
	if err != nil {
		t.Fatal(err)
	}
	req, err := NewSingleRequest(RequestConfig{APIVersion: "202609", AccessToken: "AQVnEw-secret"}, &c)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(req)
	golden(t, "segment_5_13_single.golden", indent(t, out))
}

func TestBuildConversionNormalisation(t *testing.T) {
	base := `"conversionHappenedAt":"1767139200000"`
	tests := []struct {
		name   string
		fields string
		rule   string
		want   string // the "user" object, or the whole body when it starts with {"conversion"
		check  func(t *testing.T, c Conversion)
	}{
		{name: "userIds order email, UUID, Acxiom, Oracle",
			fields: `{` + base + `,"oracleID":" o-1 ","acxiomID":"AX-1","linkedInUUID":"li-1","email":"test@example.com"}`,
			want: `{"userIds":[{"idType":"SHA256_EMAIL","idValue":"973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b"},` +
				`{"idType":"LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID","idValue":"li-1"},{"idType":"ACXIOM_ID","idValue":"AX-1"},` +
				`{"idType":"ORACLE_MOAT_ID","idValue":"o-1"}]}`},
		{name: "Acxiom alone",
			fields: `{` + base + `,"acxiomID":"AX-1"}`,
			want:   `{"userIds":[{"idType":"ACXIOM_ID","idValue":"AX-1"}]}`},
		{name: "Oracle alone",
			fields: `{` + base + `,"oracleID":"o-1"}`,
			want:   `{"userIds":[{"idType":"ORACLE_MOAT_ID","idValue":"o-1"}]}`},
		{name: "empty identifiers skipped",
			fields: `{` + base + `,"email":" ","linkedInUUID":"","acxiomID":null,"oracleID":"o-1"}`,
			want:   `{"userIds":[{"idType":"ORACLE_MOAT_ID","idValue":"o-1"}]}`},
		{name: "li_fat_id trimmed, case kept",
			fields: `{` + base + `,"linkedInUUID":"\t8A1F-x \n"}`,
			want:   `{"userIds":[{"idType":"LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID","idValue":"8A1F-x"}]}`},
		{name: "numeric identifier coerced to its text",
			fields: `{` + base + `,"linkedInUUID":123456}`,
			want:   `{"userIds":[{"idType":"LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID","idValue":"123456"}]}`},
		{name: "userInfo trimmed, optional empties omitted, country upper-cased",
			fields: `{` + base + `,"linkedInUUID":"x","userInfo":{"firstName":" Jane ","lastName":"Doe","companyName":"","title":null,"countryCode":" de "}}`,
			want:   `{"userIds":[{"idType":"LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID","idValue":"x"}],"userInfo":{"firstName":"Jane","lastName":"Doe","countryCode":"DE"}}`},
		{name: "userInfo whose parts all resolved to nothing is omitted",
			fields: `{` + base + `,"linkedInUUID":"x","userInfo":{}}`,
			want:   `{"userIds":[{"idType":"LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID","idValue":"x"}]}`},
		{name: "userInfo of empty strings and nulls is omitted",
			fields: `{` + base + `,"linkedInUUID":"x","userInfo":{"firstName":"","lastName":null,"countryCode":"  "}}`,
			want:   `{"userIds":[{"idType":"LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID","idValue":"x"}]}`},
		{name: "userInfo null is omitted",
			fields: `{` + base + `,"linkedInUUID":"x","userInfo":null}`,
			want:   `{"userIds":[{"idType":"LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID","idValue":"x"}]}`},
		{name: "externalIds single string wrapped",
			fields: `{` + base + `,"linkedInUUID":"x","externalIds":" crm-1 "}`,
			want:   `{"userIds":[{"idType":"LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID","idValue":"x"}],"externalIds":["crm-1"]}`},
		{name: "externalIds only the first non-empty element",
			fields: `{` + base + `,"linkedInUUID":"x","externalIds":[null,"",42,"crm-2"]}`,
			want:   `{"userIds":[{"idType":"LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID","idValue":"x"}],"externalIds":["42"]}`},
		{name: "externalIds empty array omitted",
			fields: `{` + base + `,"linkedInUUID":"x","externalIds":[]}`,
			want:   `{"userIds":[{"idType":"LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID","idValue":"x"}]}`},
		{name: "unknown and batching keys ignored",
			fields: `{` + base + `,"linkedInUUID":"x","enable_batching":true,"batch_size":10,"somethingElse":{"a":1}}`,
			want:   `{"userIds":[{"idType":"LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID","idValue":"x"}]}`},
		{name: "conversionValue whose paths resolved to nothing is omitted",
			fields: `{` + base + `,"linkedInUUID":"x","conversionValue":{}}`,
			check: func(t *testing.T, c Conversion) {
				if c.ConversionValue != nil {
					t.Errorf("conversionValue = %+v, want omitted", c.ConversionValue)
				}
			}},
		{name: "conversionValue of nulls and blanks is omitted",
			fields: `{` + base + `,"linkedInUUID":"x","conversionValue":{"currencyCode":null,"amount":" "}}`,
			check: func(t *testing.T, c Conversion) {
				if c.ConversionValue != nil {
					t.Errorf("conversionValue = %+v, want omitted", c.ConversionValue)
				}
			}},
		{name: "eventId number coerced",
			fields: `{` + base + `,"linkedInUUID":"x","eventId":5291}`,
			check:  func(t *testing.T, c Conversion) { eq(t, c.EventID, "5291") }},
		{name: "eventId blank omitted",
			fields: `{` + base + `,"linkedInUUID":"x","eventId":"  "}`,
			check:  func(t *testing.T, c Conversion) { eq(t, c.EventID, "") }},
		{name: "eventId otherwise sent exactly as mapped",
			fields: `{` + base + `,"linkedInUUID":"x","eventId":" order 1 "}`,
			check:  func(t *testing.T, c Conversion) { eq(t, c.EventID, " order 1 ") }},
		{name: "timestamp in epoch seconds",
			fields: `{"conversionHappenedAt":1767139200,"linkedInUUID":"x"}`,
			check:  func(t *testing.T, c Conversion) { eq(t, c.ConversionHappenedAt, int64(1767139200000)) }},
		{name: "timestamp ISO 8601",
			fields: `{"conversionHappenedAt":"2025-12-31T01:02:03.456+01:00","linkedInUUID":"x"}`,
			check:  func(t *testing.T, c Conversion) { eq(t, c.ConversionHappenedAt, int64(1767139323456)) }},
		{name: "timestamp exactly 90 days old accepted",
			fields: `{"conversionHappenedAt":` + strconv.FormatInt(specNow.UnixMilli()-7776000000, 10) + `,"linkedInUUID":"x"}`,
			check:  func(t *testing.T, c Conversion) { eq(t, c.ConversionHappenedAt, specNow.UnixMilli()-7776000000) }},
		{name: "timestamp exactly 5 minutes ahead accepted",
			fields: `{"conversionHappenedAt":` + strconv.FormatInt(specNow.UnixMilli()+300000, 10) + `,"linkedInUUID":"x"}`,
			check:  func(t *testing.T, c Conversion) { eq(t, c.ConversionHappenedAt, specNow.UnixMilli()+300000) }},
		{name: "numeric amount to decimal string",
			fields: `{` + base + `,"linkedInUUID":"x","conversionValue":{"currencyCode":"EUR","amount":100}}`,
			check:  func(t *testing.T, c Conversion) { eq(t, *c.ConversionValue, ConversionValue{"EUR", "100"}) }},
		{name: "numeric amount keeps its digits",
			fields: `{` + base + `,"linkedInUUID":"x","conversionValue":{"currencyCode":"EUR","amount":149.00}}`,
			check:  func(t *testing.T, c Conversion) { eq(t, *c.ConversionValue, ConversionValue{"EUR", "149.00"}) }},
		{name: "numeric amount with exponent expanded",
			fields: `{` + base + `,"linkedInUUID":"x","conversionValue":{"currencyCode":"EUR","amount":1.5e3}}`,
			check:  func(t *testing.T, c Conversion) { eq(t, *c.ConversionValue, ConversionValue{"EUR", "1500"}) }},
		{name: "numeric amount with negative exponent",
			fields: `{` + base + `,"linkedInUUID":"x","conversionValue":{"currencyCode":"EUR","amount":25E-3}}`,
			check:  func(t *testing.T, c Conversion) { eq(t, *c.ConversionValue, ConversionValue{"EUR", "0.025"}) }},
		{name: "string amount trimmed",
			fields: `{` + base + `,"linkedInUUID":"x","conversionValue":{"currencyCode":"usd ","amount":" 49.90 "}}`,
			check:  func(t *testing.T, c Conversion) { eq(t, *c.ConversionValue, ConversionValue{"USD", "49.90"}) }},
		{name: "amount -0 is zero",
			fields: `{` + base + `,"linkedInUUID":"x","conversionValue":{"currencyCode":"USD","amount":-0}}`,
			check:  func(t *testing.T, c Conversion) { eq(t, *c.ConversionValue, ConversionValue{"USD", "0"}) }},
		{name: "rule from onMappingSave.outputs.id string",
			fields: `{` + base + `,"linkedInUUID":"x","onMappingSave":{"outputs":{"id":"22833300"}}}`,
			check:  func(t *testing.T, c Conversion) { eq(t, c.Conversion, "urn:lla:llaPartnerConversion:22833300") }},
		{name: "rule from onMappingSave.outputs.id number",
			fields: `{` + base + `,"linkedInUUID":"x","onMappingSave":{"outputs":{"id":14488340}}}`,
			check:  func(t *testing.T, c Conversion) { eq(t, c.Conversion, "urn:lla:llaPartnerConversion:14488340") }},
		{name: "explicit rule wins over the hook",
			fields: `{` + base + `,"linkedInUUID":"x","onMappingSave":{"outputs":{"id":"1"}}}`, rule: "2",
			check: func(t *testing.T, c Conversion) { eq(t, c.Conversion, "urn:lla:llaPartnerConversion:2") }},
		{name: "explicit rule as URN",
			fields: `{` + base + `,"linkedInUUID":"x"}`, rule: "urn:lla:llaPartnerConversion:22833300",
			check: func(t *testing.T, c Conversion) { eq(t, c.Conversion, "urn:lla:llaPartnerConversion:22833300") }},
		{name: "urn:li namespace normalised to urn:lla",
			fields: `{` + base + `,"linkedInUUID":"x"}`, rule: "urn:li:llaPartnerConversion:22833300",
			check: func(t *testing.T, c Conversion) { eq(t, c.Conversion, "urn:lla:llaPartnerConversion:22833300") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.rule
			if r == "" && !strings.Contains(tt.fields, `"onMappingSave"`) {
				r = rule
			}
			c, err := BuildConversion(decode(t, tt.fields), r, specNow)
			if err != nil {
				t.Fatal(err)
			}
			if tt.want != "" {
				got, _ := json.Marshal(c.User)
				if string(got) != tt.want {
					t.Errorf("user = %s\nwant   %s", got, tt.want)
				}
			}
			if tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}

func eq[T comparable](t *testing.T, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestBuildConversionValidation(t *testing.T) {
	ok := `"conversionHappenedAt":"1767139200000","email":"test@example.com"`
	ms := func(d time.Duration) string { return strconv.FormatInt(specNow.Add(d).UnixMilli(), 10) }
	tests := []struct {
		name    string
		fields  string
		rule    string // "-" means none
		stage   Stage
		want    string // exact Error()
		field   string // first FieldError.Field
		reason  Reason
		nErrors int
	}{
		// Schema stage, §20.3.
		{"missing timestamp", `{"email":"a@b.c"}`, "", StageSchema,
			"The root value is missing the required field 'conversionHappenedAt'.", "/conversionHappenedAt", ReasonMissing, 1},
		{"null timestamp", `{"conversionHappenedAt":null,"email":"a@b.c"}`, "", StageSchema,
			"The root value is missing the required field 'conversionHappenedAt'.", "/conversionHappenedAt", ReasonMissing, 1},
		{"blank timestamp", `{"conversionHappenedAt":"  ","email":"a@b.c"}`, "", StageSchema,
			"The root value is missing the required field 'conversionHappenedAt'.", "/conversionHappenedAt", ReasonMissing, 1},
		{"nil fields", `{}`, "", StageSchema,
			"The root value is missing the required field 'conversionHappenedAt'.", "/conversionHappenedAt", ReasonMissing, 1},
		{"userInfo without names", `{` + ok + `,"userInfo":{"companyName":"Acme"}}`, "", StageSchema,
			"User Info is missing the required field 'firstName'. User Info is missing the required field 'lastName'.", "/userInfo/firstName", ReasonMissing, 2},
		{"userInfo without firstName", `{` + ok + `,"userInfo":{"lastName":"Doe"}}`, "", StageSchema,
			"User Info is missing the required field 'firstName'.", "/userInfo/firstName", ReasonMissing, 1},
		{"userInfo without lastName", `{` + ok + `,"userInfo":{"firstName":"Jane","lastName":"  "}}`, "", StageSchema,
			"User Info is missing the required field 'lastName'.", "/userInfo/lastName", ReasonMissing, 1},
		{"conversionValue without amount", `{` + ok + `,"conversionValue":{"currencyCode":"USD"}}`, "", StageSchema,
			"Conversion Value is missing the required field 'amount'.", "/conversionValue/amount", ReasonMissing, 1},
		{"conversionValue without currencyCode", `{` + ok + `,"conversionValue":{"amount":"5"}}`, "", StageSchema,
			"Conversion Value is missing the required field 'currencyCode'.", "/conversionValue/currencyCode", ReasonMissing, 1},
		{"conversionValue with empty amount", `{` + ok + `,"conversionValue":{"currencyCode":"USD","amount":""}}`, "", StageSchema,
			"Conversion Value is missing the required field 'amount'.", "/conversionValue/amount", ReasonMissing, 1},
		{"all schema problems together", `{"conversionValue":{"amount":1},"userInfo":{"title":"CTO"}}`, "", StageSchema,
			"The root value is missing the required field 'conversionHappenedAt'. Conversion Value is missing the required field 'currencyCode'. " +
				"User Info is missing the required field 'firstName'. User Info is missing the required field 'lastName'.",
			"/conversionHappenedAt", ReasonMissing, 4},
		{"schema before action checks", `{"conversionHappenedAt":"garbage","userInfo":{"firstName":"J"}}`, "-", StageSchema,
			"User Info is missing the required field 'lastName'.", "/userInfo/lastName", ReasonMissing, 1},
		{"timestamp of wrong type", `{"conversionHappenedAt":true,"email":"a@b.c"}`, "", StageSchema,
			"The value at /conversionHappenedAt must be a string but it was a boolean.", "/conversionHappenedAt", ReasonType, 1},
		{"eventId object", `{` + ok + `,"eventId":{}}`, "", StageSchema,
			"The value at /eventId must be a string but it was an object.", "/eventId", ReasonType, 1},
		{"email boolean", `{` + ok + `,"email":true}`, "", StageSchema,
			"The value at /email must be a string but it was a boolean.", "/email", ReasonType, 1},
		{"linkedInUUID array", `{` + ok + `,"linkedInUUID":["a"]}`, "", StageSchema,
			"The value at /linkedInUUID must be a string but it was an array.", "/linkedInUUID", ReasonType, 1},
		{"conversionValue string", `{` + ok + `,"conversionValue":"49.9"}`, "", StageSchema,
			"The value at /conversionValue must be an object but it was a string.", "/conversionValue", ReasonType, 1},
		{"amount object", `{` + ok + `,"conversionValue":{"currencyCode":"USD","amount":{}}}`, "", StageSchema,
			"The value at /conversionValue/amount must be a string but it was an object.", "/conversionValue/amount", ReasonType, 1},
		{"userInfo array", `{` + ok + `,"userInfo":[]}`, "", StageSchema,
			"The value at /userInfo must be an object but it was an array.", "/userInfo", ReasonType, 1},
		{"userInfo firstName number is coerced, object is not", `{` + ok + `,"userInfo":{"firstName":{},"lastName":"Doe"}}`, "", StageSchema,
			"The value at /userInfo/firstName must be a string but it was an object.", "/userInfo/firstName", ReasonType, 1},
		{"externalIds element object", `{` + ok + `,"externalIds":["a",{}]}`, "", StageSchema,
			"The value at /externalIds/1 must be a string but it was an object.", "/externalIds/1", ReasonType, 1},
		{"externalIds boolean", `{` + ok + `,"externalIds":false}`, "", StageSchema,
			"The value at /externalIds must be a string but it was a boolean.", "/externalIds", ReasonType, 1},

		// Action stage, §20.3, in order.
		{"unparsable timestamp", `{"conversionHappenedAt":"next tuesday","email":"a@b.c"}`, "", StageAction,
			"Timestamp is not a valid date.", "/conversionHappenedAt", ReasonInvalidDate, 1},
		{"timestamp beyond 2100 is not a date", `{"conversionHappenedAt":4102444800001,"email":"a@b.c"}`, "", StageAction,
			"Timestamp is not a valid date.", "/conversionHappenedAt", ReasonInvalidDate, 1},
		{"older than 90 days", `{"conversionHappenedAt":` + ms(-90*24*time.Hour-time.Millisecond) + `,"email":"a@b.c"}`, "", StageAction,
			"Timestamp should be within the past 90 days.", "/conversionHappenedAt", ReasonTooOld, 1},
		{"seconds read as ms by Segment would be 1970: ms is too old", `{"conversionHappenedAt":"100000000000","email":"a@b.c"}`, "", StageAction,
			"Timestamp should be within the past 90 days.", "/conversionHappenedAt", ReasonTooOld, 1},
		{"beyond future tolerance", `{"conversionHappenedAt":` + ms(5*time.Minute+time.Millisecond) + `,"email":"a@b.c"}`, "", StageAction,
			"Timestamp should not be in the future.", "/conversionHappenedAt", ReasonInFuture, 1},
		{"no identifier", `{"conversionHappenedAt":"1767139200000"}`, "", StageAction,
			"One of email or LinkedIn UUID or Acxiom ID or Oracle ID is required.", "", ReasonNoIdentifier, 1},
		{"blank identifiers", `{"conversionHappenedAt":"1767139200000","email":" ","linkedInUUID":"","acxiomID":null}`, "", StageAction,
			"One of email or LinkedIn UUID or Acxiom ID or Oracle ID is required.", "", ReasonNoIdentifier, 1},
		{"userInfo only is not enough (Segment rule)", `{"conversionHappenedAt":"1767139200000","userInfo":{"firstName":"J","lastName":"D"}}`, "", StageAction,
			"One of email or LinkedIn UUID or Acxiom ID or Oracle ID is required.", "", ReasonNoIdentifier, 1},
		{"externalIds only is not enough (Segment rule)", `{"conversionHappenedAt":"1767139200000","externalIds":"crm-1"}`, "", StageAction,
			"One of email or LinkedIn UUID or Acxiom ID or Oracle ID is required.", "", ReasonNoIdentifier, 1},
		{"no rule id", `{` + ok + `}`, "-", StageAction,
			"Conversion Rule ID is required.", "/onMappingSave/outputs/id", ReasonNoRule, 1},
		{"blank hook rule id", `{` + ok + `,"onMappingSave":{"outputs":{"id":" "}}}`, "-", StageAction,
			"Conversion Rule ID is required.", "/onMappingSave/outputs/id", ReasonNoRule, 1},
		{"rule id not a number", `{` + ok + `}`, "abc", StageAction,
			`Conversion Rule ID "abc" is not a LinkedIn conversion rule id (a number such as 22833300).`, "", ReasonInvalidRule, 1},
		{"hook rule id not a number", `{` + ok + `,"onMappingSave":{"outputs":{"id":"rule-1"}}}`, "-", StageAction,
			`Conversion Rule ID "rule-1" is not a LinkedIn conversion rule id (a number such as 22833300).`, "/onMappingSave/outputs/id", ReasonInvalidRule, 1},
		{"order: invalid date before identifier and rule", `{"conversionHappenedAt":"x"}`, "-", StageAction,
			"Timestamp is not a valid date.", "/conversionHappenedAt", ReasonInvalidDate, 1},
		{"order: window before identifier", `{"conversionHappenedAt":"1000"}`, "-", StageAction,
			"Timestamp should be within the past 90 days.", "/conversionHappenedAt", ReasonTooOld, 1},
		{"order: identifier before rule", `{"conversionHappenedAt":"1767139200000"}`, "-", StageAction,
			"One of email or LinkedIn UUID or Acxiom ID or Oracle ID is required.", "", ReasonNoIdentifier, 1},
		{"order: action before local", `{"conversionHappenedAt":"1767139200000","conversionValue":{"currencyCode":"dollars","amount":"-1"}}`, "", StageAction,
			"One of email or LinkedIn UUID or Acxiom ID or Oracle ID is required.", "", ReasonNoIdentifier, 1},

		// Local copies of LinkedIn's rules (§8.2, §10.2).
		{"currency not ISO 4217 shaped", `{` + ok + `,"conversionValue":{"currencyCode":"US$","amount":"5"}}`, "", StageLocal,
			`Conversion Value currencyCode "US$" is not an ISO 4217 currency code (three letters, such as USD).`, "/conversionValue/currencyCode", ReasonInvalidCurrency, 1},
		{"currency number", `{` + ok + `,"conversionValue":{"currencyCode":840,"amount":"5"}}`, "", StageLocal,
			`Conversion Value currencyCode "840" is not an ISO 4217 currency code (three letters, such as USD).`, "/conversionValue/currencyCode", ReasonInvalidCurrency, 1},
		{"amount with thousands separator", `{` + ok + `,"conversionValue":{"currencyCode":"USD","amount":"1,000.50"}}`, "", StageLocal,
			`Conversion Value amount "1,000.50" is not a decimal string (digits with an optional fraction, such as "100.05").`, "/conversionValue/amount", ReasonInvalidAmount, 1},
		{"amount with currency sign", `{` + ok + `,"conversionValue":{"currencyCode":"USD","amount":"$49.90"}}`, "", StageLocal,
			`Conversion Value amount "$49.90" is not a decimal string (digits with an optional fraction, such as "100.05").`, "/conversionValue/amount", ReasonInvalidAmount, 1},
		{"amount string with exponent", `{` + ok + `,"conversionValue":{"currencyCode":"USD","amount":"1e3"}}`, "", StageLocal,
			`Conversion Value amount "1e3" is not a decimal string (digits with an optional fraction, such as "100.05").`, "/conversionValue/amount", ReasonInvalidAmount, 1},
		{"amount number with absurd exponent", `{` + ok + `,"conversionValue":{"currencyCode":"USD","amount":1e999}}`, "", StageLocal,
			`Conversion Value amount "1e999" is not a decimal string (digits with an optional fraction, such as "100.05").`, "/conversionValue/amount", ReasonInvalidAmount, 1},
		{"negative amount string", `{` + ok + `,"conversionValue":{"currencyCode":"USD","amount":"-5.00"}}`, "", StageLocal,
			`Conversion Value amount "-5.00" must not be negative.`, "/conversionValue/amount", ReasonNegativeAmount, 1},
		{"negative amount number", `{` + ok + `,"conversionValue":{"currencyCode":"USD","amount":-12.5}}`, "", StageLocal,
			`Conversion Value amount "-12.5" must not be negative.`, "/conversionValue/amount", ReasonNegativeAmount, 1},
		{"country code not alpha-2", `{` + ok + `,"userInfo":{"firstName":"J","lastName":"D","countryCode":"USA"}}`, "", StageLocal,
			`User Info countryCode "USA" is not an ISO 3166-1 alpha-2 country code (two letters, such as US).`, "/userInfo/countryCode", ReasonInvalidCountry, 1},
		{"all local problems together", `{` + ok + `,"conversionValue":{"currencyCode":"EURO","amount":"ten"},"userInfo":{"firstName":"J","lastName":"D","countryCode":"D1"}}`, "", StageLocal,
			`Conversion Value currencyCode "EURO" is not an ISO 4217 currency code (three letters, such as USD). ` +
				`Conversion Value amount "ten" is not a decimal string (digits with an optional fraction, such as "100.05"). ` +
				`User Info countryCode "D1" is not an ISO 3166-1 alpha-2 country code (two letters, such as US).`,
			"/conversionValue/currencyCode", ReasonInvalidCurrency, 3},
		{"long values are cut in messages", `{` + ok + `,"conversionValue":{"currencyCode":"ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLMNOPQRSTUVWXYZ","amount":"1"}}`, "", StageLocal,
			`Conversion Value currencyCode "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLMN"… is not an ISO 4217 currency code (three letters, such as USD).`,
			"/conversionValue/currencyCode", ReasonInvalidCurrency, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.rule
			switch r {
			case "":
				r = rule
			case "-":
				r = ""
			}
			var fields map[string]any
			if tt.name != "nil fields" {
				fields = decode(t, tt.fields)
			}
			c, err := BuildConversion(fields, r, specNow)
			if err == nil {
				t.Fatalf("got %+v, want error %q", c, tt.want)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("message\n got %q\nwant %q", got, tt.want)
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error is %T, want *ValidationError", err)
			}
			if ve.Stage != tt.stage || len(ve.Errors) != tt.nErrors {
				t.Errorf("stage %s with %d errors, want %s with %d", ve.Stage, len(ve.Errors), tt.stage, tt.nErrors)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatal("errors.As(*FieldError) failed")
			}
			if fe.Field != tt.field || fe.Reason != tt.reason {
				t.Errorf("first problem %q %s, want %q %s", fe.Field, fe.Reason, tt.field, tt.reason)
			}
			if !errors.Is(err, ErrInvalidConversion) || ve.Code() != CodePayloadValidationFailed || ve.Status() != 400 {
				t.Error("error does not carry ErrInvalidConversion / PAYLOAD_VALIDATION_FAILED / 400")
			}
		})
	}
}

func TestBuilderConfig(t *testing.T) {
	if _, err := NewBuilder(BuilderConfig{Window: -1, FutureTolerance: -1}); err == nil ||
		!strings.Contains(err.Error(), "window") || !strings.Contains(err.Error(), "future tolerance") {
		t.Fatalf("NewBuilder(negative) err = %v, want both problems", err)
	}
	b, err := NewBuilder(BuilderConfig{Window: 30 * 24 * time.Hour, FutureTolerance: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		at   time.Duration
		want string // "" = accepted
	}{
		{"inside 30 days", -29 * 24 * time.Hour, ""},
		{"past 30 days", -30*24*time.Hour - time.Millisecond, "Timestamp should be within the past 30 days."},
		{"inside an hour ahead", 59 * time.Minute, ""},
		{"past an hour ahead", time.Hour + time.Millisecond, "Timestamp should not be in the future."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := map[string]any{FieldConversionHappenedAt: json.Number(strconv.FormatInt(specNow.Add(tt.at).UnixMilli(), 10)), FieldLinkedInUUID: "x"}
			_, err := b.Build(f, rule, specNow)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	b2, _ := NewBuilder(BuilderConfig{Window: 36 * time.Hour})
	_, err = b2.Build(map[string]any{FieldConversionHappenedAt: "1000", FieldLinkedInUUID: "x"}, rule, specNow)
	if err == nil || err.Error() != "Timestamp should be within the past 36h0m0s." {
		t.Errorf("odd window message = %v", err)
	}
}

// Go values other than the JSON decoder's (float64, int) are accepted too.
func TestBuildConversionGoValues(t *testing.T) {
	f := map[string]any{
		FieldConversionHappenedAt: float64(1767139200000),
		FieldConversionValue:      map[string]any{"currencyCode": "USD", "amount": 49.9},
		FieldLinkedInUUID:         "x",
		FieldEventID:              7,
	}
	c, err := BuildConversion(f, rule, specNow)
	if err != nil {
		t.Fatal(err)
	}
	if c.ConversionValue.Amount != "49.9" || c.EventID != "7" || c.ConversionHappenedAt != 1767139200000 {
		t.Errorf("got %+v", c)
	}
}

func TestRuleURN(t *testing.T) {
	tests := []struct{ in, want string }{
		{"22833300", "urn:lla:llaPartnerConversion:22833300"},
		{" 22833300 ", "urn:lla:llaPartnerConversion:22833300"},
		{"urn:lla:llaPartnerConversion:1", "urn:lla:llaPartnerConversion:1"},
		{"urn:li:llaPartnerConversion:1", "urn:lla:llaPartnerConversion:1"},
		{"", ""}, {"0", ""}, {"-5", ""}, {"12a", ""}, {"urn:lla:llaPartnerConversion:", ""},
		{"urn:li:sponsoredCampaign:435901", ""}, {"12345678901234567890", ""},
	}
	// Twice: the second round reads what the first one kept.
	for range 2 {
		for _, tt := range tests {
			got, err := RuleURN(tt.in)
			if (err == nil) != (tt.want != "") || got != tt.want {
				t.Errorf("RuleURN(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		}
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = RuleURN("22833300") }); n != 0 {
		t.Errorf("RuleURN of a known rule allocates %.0f times, want 0", n)
	}
}

func FuzzBuildConversion(f *testing.F) {
	f.Add(`{"conversionHappenedAt":1767139200000,"conversionValue":{"currencyCode":"usd","amount":1.5e2},"email":" A@B.c ","userInfo":{"firstName":"J","lastName":"D","countryCode":"de"},"externalIds":["x"]}`)
	f.Add(`{"conversionHappenedAt":"2025-12-31","linkedInUUID":7,"conversionValue":{"currencyCode":"EUR","amount":"0.50"}}`)
	f.Add(`{"conversionHappenedAt":"1767139200","acxiomID":"a","conversionValue":{"currencyCode":"EUR","amount":-1e-400}}`)
	f.Fuzz(func(t *testing.T, s string) {
		d := json.NewDecoder(strings.NewReader(s))
		d.UseNumber()
		var fields map[string]any
		if d.Decode(&fields) != nil {
			return
		}
		c, err := BuildConversion(fields, rule, specNow)
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || len(ve.Errors) == 0 || ve.Error() == "" {
				t.Fatalf("bad error %#v", err)
			}
			return
		}
		// Whatever is accepted satisfies LinkedIn's rules.
		if len(c.User.UserIDs) == 0 || c.Conversion != "urn:lla:llaPartnerConversion:22833300" {
			t.Fatalf("accepted without identity or rule: %+v", c)
		}
		for _, id := range c.User.UserIDs {
			if id.IDValue == "" || id.IDValue != trimSpace(id.IDValue) {
				t.Fatalf("bad idValue %q", id.IDValue)
			}
			if id.IDType == IDSHA256Email && !isSHA256Hex(id.IDValue) {
				t.Fatalf("bad email hash %q", id.IDValue)
			}
		}
		if v := c.ConversionValue; v != nil {
			if !isUpperLetters(v.CurrencyCode, 3) || !isDecimalString(v.Amount) {
				t.Fatalf("bad value %+v", v)
			}
			// A numeric amount keeps its exact value.
			if cv, _ := fields[FieldConversionValue].(map[string]any); cv != nil {
				if n, ok := cv["amount"].(json.Number); ok {
					want, ok1 := new(big.Rat).SetString(string(n))
					got, ok2 := new(big.Rat).SetString(v.Amount)
					if !ok1 || !ok2 || want.Cmp(got) != 0 {
						t.Fatalf("amount %s became %s", n, v.Amount)
					}
				}
			}
		}
		if ui := c.User.UserInfo; ui != nil && (ui.FirstName == "" || ui.LastName == "" ||
			(ui.CountryCode != "" && !isUpperLetters(ui.CountryCode, 2))) {
			t.Fatalf("bad userInfo %+v", ui)
		}
		if ms := c.ConversionHappenedAt; ms < specNow.UnixMilli()-DefaultWindow.Milliseconds() ||
			ms > specNow.UnixMilli()+DefaultFutureTolerance.Milliseconds() {
			t.Fatalf("time %d outside window", ms)
		}
		if !json.Valid(c.AppendJSON(nil)) {
			t.Fatal("invalid JSON")
		}
	})
}

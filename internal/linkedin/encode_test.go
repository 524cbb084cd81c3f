package linkedin

import (
	"encoding/json"
	"testing"
)

// Mirror types without methods: what encoding/json makes of the struct tags.
type (
	plainConversion struct {
		Conversion           string           `json:"conversion"`
		ConversionHappenedAt int64            `json:"conversionHappenedAt"`
		ConversionValue      *ConversionValue `json:"conversionValue,omitempty"`
		EventID              string           `json:"eventId,omitempty"`
		User                 User             `json:"user"`
	}
)

func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	tests := []struct {
		name string
		c    Conversion
	}{
		{"minimal", Conversion{Conversion: "urn:lla:llaPartnerConversion:1", User: User{UserIDs: []UserID{}}}},
		{"everything", Conversion{
			Conversion: "urn:lla:llaPartnerConversion:1", ConversionHappenedAt: -5,
			ConversionValue: &ConversionValue{"USD", "1.00"}, EventID: "e",
			User: User{UserIDs: []UserID{{IDSHA256Email, "ab"}, {IDOracleMoat, "o"}},
				UserInfo:    &UserInfo{"a", "b", "c", "d", "EE"},
				ExternalIDs: []string{"x", "y"}},
		}},
		{"escaping", Conversion{
			Conversion: "q\"\\/<>&\u2028\u2029\x00\x1f\b\f\n\r\t\x7f", EventID: "é😀\xff\xfe", User: User{UserIDs: []UserID{},
				UserInfo: &UserInfo{FirstName: "\u00a0", LastName: "\ufeff"}},
		}},
		{"empty userInfo optional fields", Conversion{User: User{UserIDs: []UserID{}, UserInfo: &UserInfo{}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.c.AppendJSON(nil)
			want, err := json.Marshal((*plainConversion)(&tt.c))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Errorf("AppendJSON\n got %s\nwant %s", got, want)
			}
		})
	}
}

func TestAppendJSONNilUserIDs(t *testing.T) {
	c := Conversion{Conversion: "u"}
	if got, want := string(c.AppendJSON(nil)), `{"conversion":"u","conversionHappenedAt":0,"user":{"userIds":[]}}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func FuzzAppendJSON(f *testing.F) {
	f.Add("urn:lla:llaPartnerConversion:1", int64(1767139200000), "USD", "1.5", "evt", "ab", "Jane", "Doe", "x")
	f.Add("\x00<>&\u2028", int64(-1), "", "", "", "\xff", "\"", "\\", "")
	f.Fuzz(func(t *testing.T, rule string, at int64, cur, amt, eventID, id, first, last, ext string) {
		c := Conversion{Conversion: rule, ConversionHappenedAt: at, EventID: eventID,
			User: User{UserIDs: []UserID{{IDLinkedInUUID, id}}}}
		if cur != "" || amt != "" {
			c.ConversionValue = &ConversionValue{cur, amt}
		}
		if first != "" || last != "" {
			c.User.UserInfo = &UserInfo{FirstName: first, LastName: last, Title: ext}
		}
		if ext != "" {
			c.User.ExternalIDs = []string{ext}
		}
		got := c.AppendJSON(nil)
		want, err := json.Marshal((*plainConversion)(&c))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Fatalf("AppendJSON\n got %q\nwant %q", got, want)
		}
	})
}

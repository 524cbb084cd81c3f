package importer

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseField(t *testing.T) {
	tests := []struct {
		in   string
		want Field
		err  string
	}{
		{in: "email", want: FieldEmail},
		{in: "E-Mail", want: FieldEmail},
		{in: "First Name", want: FieldFirstName},
		{in: "firstname", want: FieldFirstName},
		{in: "USER_ID", want: FieldUserID},
		{in: "id", want: FieldMessageID},
		{in: "value", want: FieldRevenue},
		{in: "LI_FAT_ID", want: FieldLiFatID},
		{in: "properties.order_id", want: "properties.order_id"},
		{in: "traits.plan", want: "traits.plan"},
		{in: "skip", want: FieldSkip},
		{in: "properties.", err: `unknown field "properties."`},
		{in: "phone", err: `unknown field "phone"; known fields: userId, anonymousId`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseField(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestParseMap(t *testing.T) {
	m, err := ParseMap([]string{"Contact Email=email", "Amount = revenue", "notes=skip"})
	if err != nil {
		t.Fatal(err)
	}
	if m["contactemail"] != FieldEmail || m["amount"] != FieldRevenue || m["notes"] != FieldSkip {
		t.Errorf("got %v", m)
	}
	for _, bad := range []struct{ spec, err string }{
		{"email", "want COLUMN=FIELD"},
		{"=email", "want COLUMN=FIELD"},
		{"a=", "want COLUMN=FIELD"},
		{"a=nope", `unknown field "nope"`},
	} {
		if _, err := ParseMap([]string{bad.spec}); err == nil || !strings.Contains(err.Error(), bad.err) {
			t.Errorf("%q: err = %v, want %q", bad.spec, err, bad.err)
		}
	}
	if _, err := ParseMap([]string{"a=email", "A=userId"}); err == nil || !strings.Contains(err.Error(), "already mapped") {
		t.Errorf("a column mapped twice: err = %v", err)
	}
}

func TestNewLayout(t *testing.T) {
	l, err := newLayout([]string{"User ID", " E_mail ", "Deal Value", "Stage", "Amount"}, map[string]Field{"dealvalue": FieldRevenue, "amount": "properties.amount_usd"})
	if err != nil {
		t.Fatal(err)
	}
	if l.pos[FieldUserID] != 0 || l.pos[FieldEmail] != 1 || l.pos[FieldRevenue] != 2 || l.pos[FieldEvent] != -1 {
		t.Errorf("positions %v", l.pos)
	}
	if l.cols[3].prop != "Stage" || l.cols[4].prop != "amount_usd" {
		t.Errorf("columns %+v", l.cols)
	}
	tests := []struct {
		name   string
		header []string
		over   map[string]Field
		err    string
	}{
		{"two columns on one field", []string{"email", "E-Mail"}, nil, `columns "email" and "E-Mail" both map to email`},
		{"an override naming no column", []string{"email"}, map[string]Field{"amount": FieldRevenue}, `the header has no column "amount"`},
		{"id and messageId", []string{"id", "messageId"}, nil, "both map to messageId"},
		{"a property twice", []string{"note", "note"}, nil, `columns "note" and "note" both become properties.note`},
		{"a property over a field", []string{"revenue", "amount"}, map[string]Field{"amount": "properties.revenue"}, `columns "revenue" and "amount" both become properties.revenue`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newLayout(tt.header, tt.over)
			var ue *UsageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("err = %v, want a UsageError with %q", err, tt.err)
			}
		})
	}
}

func TestParseTimestamp(t *testing.T) {
	tests := []struct {
		in   string
		want string // RFC 3339 in UTC; "" for an error
	}{
		{"2026-09-01T10:34:56Z", "2026-09-01T10:34:56Z"},
		{"2026-09-01T12:34:56.123456789+02:00", "2026-09-01T10:34:56.123456789Z"},
		{"2026-09-01", "2026-09-01T00:00:00Z"},
		{"2026-09-01 10:34:56", "2026-09-01T10:34:56Z"},
		{"2026-09-01T10:34:56", "2026-09-01T10:34:56Z"},
		{" 1788258896 ", "2026-09-01T10:34:56Z"},      // Unix seconds
		{"1788258896789", "2026-09-01T10:34:56.789Z"}, // Unix milliseconds
		{"99999999999", ""},                           // seconds after 2100
		{"4102444800", "2100-01-01T00:00:00Z"},        // seconds, the last allowed
		{"0", "1970-01-01T00:00:00Z"},
		{"4102444800001", ""}, // after 2100
		{"2026-09-01 10:34", ""},
		{"01/09/2026", ""},
		{"yesterday", ""},
		{"1788258896.5", ""},
		{"-1788258896", ""},
		{"", ""},
		{"99999999999999999999", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseTimestamp(tt.in)
			if tt.want == "" {
				if err == nil {
					t.Errorf("got %s, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s := got.Format(time.RFC3339Nano); s != tt.want {
				t.Errorf("got %s, want %s", s, tt.want)
			}
		})
	}
}

func FuzzParseTimestamp(f *testing.F) {
	for _, s := range []string{"2026-09-01", "2026-09-01 10:34:56", "1788258896", "1788258896789", "2026-09-01T10:34:56.1+02:00", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ts, err := ParseTimestamp(s)
		if err == nil && (ts.Location() != time.UTC || ts.Year() > 9999) {
			t.Errorf("%q: %v", s, ts)
		}
	})
}

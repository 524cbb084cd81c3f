package linkedin

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestFieldDefaults(t *testing.T) {
	tests := []struct {
		name string
		want string // "" means no default
	}{
		{FieldConversionHappenedAt, `{"@path":"$.timestamp"}`},
		{FieldConversionValue, `{"currencyCode":{"@path":"$.properties.currency"},"amount":{"@path":"$.properties.revenue"}}`},
		{FieldEventID, `{"@path":"$.messageId"}`},
		{FieldEmail, `{"@path":"$.traits.email"}`},
		{FieldLinkedInUUID, ""},
		{FieldAcxiomID, ""},
		{FieldOracleID, ""},
		{FieldUserInfo, ""},
		{FieldExternalIDs, ""},
		{FieldEnableBatching, `true`},
		{FieldBatchSize, `5000`},
	}
	fields := Fields()
	if len(fields) != len(tests) {
		t.Fatalf("Fields() has %d fields, want %d", len(fields), len(tests))
	}
	defaults := DefaultFields()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := fields[i].Name; got != tt.name {
				t.Errorf("Fields()[%d].Name = %q, want %q (spec order)", i, got, tt.name)
			}
			if got := string(fields[i].Default); got != tt.want {
				t.Errorf("Default = %s, want %s", got, tt.want)
			}
			got, ok := defaults[tt.name]
			if ok != (tt.want != "") || string(got) != tt.want {
				t.Errorf("DefaultFields()[%q] = %s, %v; want %s", tt.name, got, ok, tt.want)
			}
			if tt.want != "" && !json.Valid(got) {
				t.Errorf("default is not valid JSON: %s", got)
			}
		})
	}
}

func TestFieldSchema(t *testing.T) {
	tests := []struct {
		name     string
		typ      string
		required bool
		multiple bool
		props    []string // required sub-fields marked with a trailing '!'
	}{
		{FieldConversionHappenedAt, TypeString, true, false, nil},
		{FieldConversionValue, TypeObject, false, false, []string{"currencyCode!", "amount!"}},
		{FieldEventID, TypeString, false, false, nil},
		{FieldEmail, TypeString, false, false, nil},
		{FieldLinkedInUUID, TypeString, false, false, nil},
		{FieldAcxiomID, TypeString, false, false, nil},
		{FieldOracleID, TypeString, false, false, nil},
		{FieldUserInfo, TypeObject, false, false, []string{"firstName!", "lastName!", "companyName", "title", "countryCode"}},
		{FieldExternalIDs, TypeString, false, true, nil},
		{FieldEnableBatching, TypeBoolean, false, false, nil},
		{FieldBatchSize, TypeNumber, false, false, nil},
	}
	for i, f := range Fields() {
		tt := tests[i]
		t.Run(tt.name, func(t *testing.T) {
			if f.Type != tt.typ || f.Required != tt.required || f.Multiple != tt.multiple {
				t.Errorf("got type %s required %v multiple %v, want %s %v %v", f.Type, f.Required, f.Multiple, tt.typ, tt.required, tt.multiple)
			}
			var got []string
			for _, p := range f.Properties {
				n := p.Name
				if p.Required {
					n += "!"
				}
				got = append(got, n)
			}
			if len(got) != len(tt.props) {
				t.Fatalf("properties = %v, want %v", got, tt.props)
			}
			for j := range got {
				if got[j] != tt.props[j] {
					t.Errorf("properties = %v, want %v", got, tt.props)
				}
			}
			if f.Label == "" {
				t.Error("missing label")
			}
		})
	}
}

func TestFieldsReturnsCopies(t *testing.T) {
	a := Fields()
	a[0].Name = "changed"
	a[1].Properties[0].Name = "changed"
	b := Fields()
	if b[0].Name != FieldConversionHappenedAt || b[1].Properties[0].Name != "currencyCode" {
		t.Fatal("Fields() shares state between calls")
	}
}

func TestDefaultMapping(t *testing.T) {
	got := string(DefaultMapping())
	want := `{"conversionHappenedAt":{"@path":"$.timestamp"},` +
		`"conversionValue":{"currencyCode":{"@path":"$.properties.currency"},"amount":{"@path":"$.properties.revenue"}},` +
		`"eventId":{"@path":"$.messageId"},"email":{"@path":"$.traits.email"},"enable_batching":true,"batch_size":5000}`
	if got != want {
		t.Errorf("DefaultMapping() =\n%s\nwant\n%s", got, want)
	}
}

func TestBatchingFrom(t *testing.T) {
	tests := []struct {
		name    string
		fields  string
		want    Batching
		wantErr string
	}{
		{"absent: Segment semantics", `{}`, Batching{Enabled: false, Size: 5000}, ""},
		{"defaults", `{"enable_batching":true,"batch_size":5000}`, Batching{true, 5000}, ""},
		{"disabled", `{"enable_batching":false,"batch_size":10}`, Batching{false, 10}, ""},
		{"null values", `{"enable_batching":null,"batch_size":null}`, Batching{false, 5000}, ""},
		{"clamped above 5000", `{"enable_batching":true,"batch_size":10000}`, Batching{true, 5000}, ""},
		{"exactly 5000", `{"batch_size":5000}`, Batching{false, 5000}, ""},
		{"one", `{"batch_size":1}`, Batching{false, 1}, ""},
		{"numeric string coerced", `{"enable_batching":"true","batch_size":"250"}`, Batching{true, 250}, ""},
		{"integral float", `{"batch_size":100.0}`, Batching{false, 100}, ""},
		{"zero", `{"batch_size":0}`, Batching{}, "Batch Size must be a whole number between 1 and 5000."},
		{"negative", `{"batch_size":-5}`, Batching{}, "Batch Size must be a whole number between 1 and 5000."},
		{"fraction", `{"batch_size":2.5}`, Batching{}, "Batch Size must be a whole number between 1 and 5000."},
		{"not a number", `{"batch_size":"many"}`, Batching{}, "Batch Size must be a whole number between 1 and 5000."},
		{"bool batch size", `{"batch_size":true}`, Batching{}, "Batch Size must be a whole number between 1 and 5000."},
		{"bad enable_batching", `{"enable_batching":"yes"}`, Batching{}, "The value at /enable_batching must be a boolean but it was a string."},
		{"object enable_batching", `{"enable_batching":{}}`, Batching{}, "The value at /enable_batching must be a boolean but it was an object."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := BatchingFrom(decode(t, tt.fields))
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if !errors.Is(err, ErrInvalidConversion) {
					t.Error("error does not match ErrInvalidConversion")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestClampBatchSize(t *testing.T) {
	tests := []struct{ in, want int }{{-1, 5000}, {0, 5000}, {1, 1}, {4999, 4999}, {5000, 5000}, {5001, 5000}, {1 << 40, 5000}}
	for _, tt := range tests {
		if got := ClampBatchSize(tt.in); got != tt.want {
			t.Errorf("ClampBatchSize(%d) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

package linkedin

import (
	"encoding/json"
	"strconv"
	"strings"
)

// Mapped is one action field's value as the builder reads it: its JSON type
// and, for a string or a number, its text (a number's exact JSON text).
// The zero Mapped is absent: a missing key and null are read alike.
type Mapped struct {
	// Type is TypeString, TypeNumber, TypeBoolean, TypeObject, TypeArray, or
	// "" when absent or null.
	Type string
	// Text is a string's text or a number's JSON text.
	Text string
	// Bool is a boolean's value.
	Bool bool
	// opaque marks a Go number of a type the builder does not read
	// (float32, int32, uint…, only from Go callers of Build): named a
	// number in error messages, but refused as a string or number value.
	opaque bool
}

// MappedString returns the Mapped of a string.
func MappedString(s string) Mapped { return Mapped{Type: TypeString, Text: s} }

// MappedNumber returns the Mapped of a number with the JSON text n.
func MappedNumber(n string) Mapped { return Mapped{Type: TypeNumber, Text: n} }

// text coerces f for a string field, as scalarText does: a string's or a
// number's text, "" when absent; false for any other type.
func (f Mapped) text() (string, bool) {
	switch f.Type {
	case "":
		return "", true
	case TypeString, TypeNumber:
		return f.Text, !f.opaque
	}
	return "", false
}

// isNumber reports whether f is a number the builder reads.
func (f Mapped) isNumber() bool { return f.Type == TypeNumber && !f.opaque }

// kind names f's JSON type for an error message.
func (f Mapped) kind() string {
	if f.Type == "" {
		return "null"
	}
	return f.Type
}

// Blank reports whether f is absent or a string that is empty after
// trimming white space: nothing, for a field capstan may fill.
func (f Mapped) Blank() bool {
	return f.Type == "" || f.Type == TypeString && strings.TrimSpace(f.Text) == ""
}

// ActionFields are the action fields (§20.1) the builder reads from a
// mapping's output, typed: a caller that holds the output in its own form
// (delivery: an event.Value) fills them without building a map. Object
// fields carry their Type and, when objects, the parts the builder reads.
type ActionFields struct {
	HappenedAt, EventID, Email, LinkedInUUID, AcxiomID, OracleID Mapped

	ConversionValue  Mapped // its Type; Currency and Amount when an object
	Currency, Amount Mapped

	UserInfo      Mapped    // its Type; UserInfoParts when an object
	UserInfoParts [5]Mapped // in the order of UserInfoKeys

	ExternalIDs    Mapped   // a string or an array: then ExternalIDList
	ExternalIDList []Mapped // the array's elements

	// HookRuleID is onMappingSave.outputs.id (absent when onMappingSave or
	// its outputs is no object).
	HookRuleID Mapped

	EnableBatching, BatchSize Mapped
}

// UserInfoKeys are the parts of userInfo the builder reads, in the order of
// ActionFields.UserInfoParts.
var UserInfoKeys = userInfoKeys

// ActionFieldsOf reads the action fields from a mapping's output as plain
// Go values (internal/mapping's output, event.Value.Any).
func ActionFieldsOf(fields map[string]any) ActionFields {
	af := ActionFields{
		HappenedAt:      fieldOf(fields[FieldConversionHappenedAt]),
		EventID:         fieldOf(fields[FieldEventID]),
		Email:           fieldOf(fields[FieldEmail]),
		LinkedInUUID:    fieldOf(fields[FieldLinkedInUUID]),
		AcxiomID:        fieldOf(fields[FieldAcxiomID]),
		OracleID:        fieldOf(fields[FieldOracleID]),
		ConversionValue: fieldOf(fields[FieldConversionValue]),
		UserInfo:        fieldOf(fields[FieldUserInfo]),
		ExternalIDs:     fieldOf(fields[FieldExternalIDs]),
		EnableBatching:  fieldOf(fields[FieldEnableBatching]),
		BatchSize:       fieldOf(fields[FieldBatchSize]),
	}
	if v, ok := fields[FieldConversionValue].(map[string]any); ok {
		af.Currency, af.Amount = fieldOf(v["currencyCode"]), fieldOf(v["amount"])
	}
	if v, ok := fields[FieldUserInfo].(map[string]any); ok {
		for i, k := range userInfoKeys {
			af.UserInfoParts[i] = fieldOf(v[k])
		}
	}
	if v, ok := fields[FieldExternalIDs].([]any); ok {
		af.ExternalIDList = make([]Mapped, len(v))
		for i, e := range v {
			af.ExternalIDList[i] = fieldOf(e)
		}
	}
	hook, _ := fields[FieldHook].(map[string]any)
	out, _ := hook["outputs"].(map[string]any)
	af.HookRuleID = fieldOf(out["id"])
	return af
}

// fieldOf types one plain Go value.
func fieldOf(v any) Mapped {
	switch x := v.(type) {
	case nil:
		return Mapped{}
	case string:
		return MappedString(x)
	case bool:
		return Mapped{Type: TypeBoolean, Bool: x}
	case json.Number:
		return MappedNumber(string(x))
	case float64:
		return MappedNumber(strconv.FormatFloat(x, 'f', -1, 64))
	case int:
		return MappedNumber(strconv.Itoa(x))
	case int64:
		return MappedNumber(strconv.FormatInt(x, 10))
	case float32, int32, uint, uint64, uint32:
		return Mapped{Type: TypeNumber, opaque: true}
	case []any:
		return Mapped{Type: TypeArray}
	case map[string]any:
		return Mapped{Type: TypeObject}
	}
	return Mapped{Type: "unsupported value"}
}

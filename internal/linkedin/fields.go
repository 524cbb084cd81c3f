package linkedin

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
)

// Names of the action fields of Segment's "Stream Conversion Event" action
// (spec linkedin-capi.md §20.1), in the order of the spec's table.
const (
	FieldConversionHappenedAt = "conversionHappenedAt"
	FieldConversionValue      = "conversionValue"
	FieldEventID              = "eventId"
	FieldEmail                = "email"
	FieldLinkedInUUID         = "linkedInUUID"
	FieldAcxiomID             = "acxiomID"
	FieldOracleID             = "oracleID"
	FieldUserInfo             = "userInfo"
	FieldExternalIDs          = "externalIds"
	FieldEnableBatching       = "enable_batching"
	FieldBatchSize            = "batch_size"

	// FieldHook is the key under which a Segment mapping stores its
	// onMappingSave hook data; outputs.id is the conversion rule id.
	FieldHook = "onMappingSave"
)

// MaxBatchSize is LinkedIn's limit of elements per BATCH_CREATE request
// (§9.1) and the default batch_size (§20.1).
const MaxBatchSize = 5000

// Field types, as Segment names them.
const (
	TypeString  = "string"
	TypeObject  = "object"
	TypeBoolean = "boolean"
	TypeNumber  = "number"
	TypeArray   = "array"
)

// Field describes one action field. Values returned by [Fields] are fresh
// copies owned by the caller.
type Field struct {
	// Name is the key in a mapping ("conversionHappenedAt").
	Name string
	// Label is Segment's display label ("Timestamp"); schema messages use it.
	Label string
	// Type is TypeString, TypeObject, TypeBoolean or TypeNumber.
	Type string
	// Required fields must resolve to a value or the event is rejected.
	Required bool
	// Multiple fields accept an array; a single value is wrapped.
	Multiple bool
	// Default is the Segment default mapping as mapping-kit JSON; nil means
	// the field has no default.
	Default json.RawMessage
	// Description is the help text shown in generated docs.
	Description string
	// Properties lists the sub-fields of an object field, in order.
	Properties []Field
}

// fieldTable is the single source of the action's field list. It returns a
// new slice on every call so callers cannot mutate shared state.
func fieldTable() []Field {
	return []Field{
		{
			Name: FieldConversionHappenedAt, Label: "Timestamp", Type: TypeString, Required: true,
			Default: json.RawMessage(`{"@path":"$.timestamp"}`),
			Description: "When the conversion happened: epoch milliseconds, epoch seconds (values below 10^11) " +
				"or an ISO 8601 date-time. Sent as conversionHappenedAt in epoch milliseconds.",
		},
		{
			Name: FieldConversionValue, Label: "Conversion Value", Type: TypeObject,
			Default: json.RawMessage(`{"currencyCode":{"@path":"$.properties.currency"},"amount":{"@path":"$.properties.revenue"}}`),
			Description: "The monetary value of the conversion, e.g. {\"currencyCode\": \"USD\", \"amount\": \"50.0\"}. " +
				"Omitted when both parts resolve to nothing; one part alone is an error.",
			Properties: []Field{
				{Name: "currencyCode", Label: "Currency Code", Type: TypeString, Required: true,
					Description: "ISO 4217 currency code (three letters, e.g. USD)."},
				{Name: "amount", Label: "Amount", Type: TypeString, Required: true,
					Description: "Value of the conversion as a non-negative decimal string; numbers are converted (100 becomes \"100\")."},
			},
		},
		{
			Name: FieldEventID, Label: "Event ID", Type: TypeString,
			Default:     json.RawMessage(`{"@path":"$.messageId"}`),
			Description: "Unique id of the event, used by LinkedIn to deduplicate against the Insight Tag.",
		},
		{
			Name: FieldEmail, Label: "Email", Type: TypeString,
			Default: json.RawMessage(`{"@path":"$.traits.email"}`),
			Description: "Email address of the converting person; trimmed, lower-cased and SHA-256 hashed " +
				"(a 64-hex value is taken as already hashed). One of email, LinkedIn UUID, Acxiom ID or Oracle ID is required.",
		},
		{
			Name: FieldLinkedInUUID, Label: "LinkedIn First Party Ads Tracking UUID", Type: TypeString,
			Description: "The li_fat_id click id, sent raw (trimmed only). One of email, LinkedIn UUID, Acxiom ID or Oracle ID is required.",
		},
		{
			Name: FieldAcxiomID, Label: "Acxiom ID", Type: TypeString,
			Description: "Acxiom / LiveRamp id, sent as ACXIOM_ID (trimmed only). One of email, LinkedIn UUID, Acxiom ID or Oracle ID is required.",
		},
		{
			Name: FieldOracleID, Label: "Oracle ID", Type: TypeString,
			Description: "Oracle MOAT id, sent as ORACLE_MOAT_ID (trimmed only). One of email, LinkedIn UUID, Acxiom ID or Oracle ID is required.",
		},
		{
			Name: FieldUserInfo, Label: "User Info", Type: TypeObject,
			Description: "Plain-text person details for matching; when present, firstName and lastName are required.",
			Properties: []Field{
				{Name: "firstName", Label: "First Name", Type: TypeString, Required: true},
				{Name: "lastName", Label: "Last Name", Type: TypeString, Required: true},
				{Name: "companyName", Label: "Company Name", Type: TypeString},
				{Name: "title", Label: "Title", Type: TypeString},
				{Name: "countryCode", Label: "Country Code", Type: TypeString,
					Description: "ISO 3166-1 alpha-2 country code; upper-cased before sending."},
			},
		},
		{
			Name: FieldExternalIDs, Label: "External IDs", Type: TypeString, Multiple: true,
			Description: "Advertiser-owned ids; a single string is wrapped, and only the first non-empty id is sent.",
		},
		{
			Name: FieldEnableBatching, Label: "Enable Batching", Type: TypeBoolean,
			Default:     json.RawMessage(`true`),
			Description: "Send events in BATCH_CREATE requests instead of one request per event.",
		},
		{
			Name: FieldBatchSize, Label: "Batch Size", Type: TypeNumber,
			Default:     json.RawMessage(`5000`),
			Description: "Maximum number of events per batch request; values above 5000 are clamped to 5000.",
		},
	}
}

// Fields returns the action fields of §20.1 in the spec's order. The slice
// and everything in it are new on each call.
func Fields() []Field { return fieldTable() }

// DefaultFields returns the Segment default mapping of every field that has
// one, keyed by field name. Iterate [Fields] for a stable order.
func DefaultFields() map[string]json.RawMessage {
	m := make(map[string]json.RawMessage)
	for _, f := range fieldTable() {
		if f.Default != nil {
			m[f.Name] = f.Default
		}
	}
	return m
}

// DefaultMapping returns the defaults of [DefaultFields] as one mapping-kit
// JSON object whose keys follow the order of [Fields], for `capstan config
// print` and generated docs.
func DefaultMapping() json.RawMessage {
	var b bytes.Buffer
	b.WriteByte('{')
	first := true
	for _, f := range fieldTable() {
		if f.Default == nil {
			continue
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		b.WriteString(strconv.Quote(f.Name))
		b.WriteByte(':')
		b.Write(f.Default)
	}
	b.WriteByte('}')
	return b.Bytes()
}

// Batching is how a mapping wants its conversions sent (§17.4).
type Batching struct {
	// Enabled selects BATCH_CREATE requests; false sends one single create
	// per conversion.
	Enabled bool
	// Size is the maximum number of conversions per batch, 1..MaxBatchSize.
	Size int
}

// ClampBatchSize returns n limited to 1..MaxBatchSize, where n <= 0 means
// the default, MaxBatchSize.
func ClampBatchSize(n int) int {
	if n <= 0 || n > MaxBatchSize {
		return MaxBatchSize
	}
	return n
}

// BatchingFrom reads enable_batching and batch_size from a mapping's action
// fields (or from the mapping itself: both are plain values).
//
// enable_batching is a boolean (the strings "true" and "false" are coerced,
// as Segment's schema does); absent or null means false, as in Segment,
// where a mapping is complete as given. capstan's YAML gets true from
// [DefaultFields]. batch_size is a whole number (a numeric string is
// coerced); absent or null means MaxBatchSize, values above MaxBatchSize are
// clamped, and values below 1 are an error.
func BatchingFrom(fields map[string]any) (Batching, error) {
	return BatchingOf(&ActionFields{EnableBatching: fieldOf(fields[FieldEnableBatching]), BatchSize: fieldOf(fields[FieldBatchSize])})
}

// BatchingOf is BatchingFrom for typed action fields.
func BatchingOf(fields *ActionFields) (Batching, error) {
	b := Batching{Size: MaxBatchSize}
	var errs []*FieldError
	switch v := fields.EnableBatching; v.Type {
	case "":
	case TypeBoolean:
		b.Enabled = v.Bool
	case TypeString:
		switch strings.TrimSpace(v.Text) {
		case "true":
			b.Enabled = true
		case "false", "":
		default:
			errs = append(errs, typeError("/"+FieldEnableBatching, TypeBoolean, v.kind()))
		}
	default:
		errs = append(errs, typeError("/"+FieldEnableBatching, TypeBoolean, v.kind()))
	}
	if v := fields.BatchSize; v.Type != "" {
		n, ok := wholeNumber(v)
		switch {
		case !ok:
			errs = append(errs, &FieldError{Field: "/" + FieldBatchSize, Reason: ReasonInvalidBatchSize,
				Message: "Batch Size must be a whole number between 1 and 5000."})
		case n < 1:
			errs = append(errs, &FieldError{Field: "/" + FieldBatchSize, Reason: ReasonInvalidBatchSize,
				Message: "Batch Size must be a whole number between 1 and 5000."})
		default:
			b.Size = int(min(n, MaxBatchSize))
		}
	}
	if errs != nil {
		return Batching{}, &ValidationError{Stage: StageSchema, Errors: errs}
	}
	return b, nil
}

// wholeNumber reads an integral number from a number or a numeric string. Values beyond ±2^53 are reported as not whole.
func wholeNumber(v Mapped) (int64, bool) {
	var text string
	switch {
	case v.isNumber():
		text = v.Text
	case v.Type == TypeString:
		text = strings.TrimSpace(v.Text)
	default:
		return 0, false
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil {
		return 0, false
	}
	if math.IsNaN(f) || math.IsInf(f, 0) || f != math.Trunc(f) || math.Abs(f) > maxSafeInteger {
		return 0, false
	}
	return int64(f), true
}

// maxSafeInteger is JavaScript's Number.MAX_SAFE_INTEGER, 2^53 − 1.
const maxSafeInteger = 1<<53 - 1

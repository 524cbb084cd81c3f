package linkedin

import (
	"errors"
	"strings"
)

// ErrInvalidConversion matches (with errors.Is) every *ValidationError: the
// event cannot become a LinkedIn conversion and must not be retried.
var ErrInvalidConversion = errors.New("invalid conversion")

// CodePayloadValidationFailed is the error code Segment reports for events
// rejected by an action's validation (§20.3); every *ValidationError carries
// it, with HTTP status 400.
const CodePayloadValidationFailed = "PAYLOAD_VALIDATION_FAILED"

// Stage says which validation step rejected an event. Stages run in this
// order and the first failing stage answers.
type Stage string

// Validation stages.
const (
	// StageSchema is Segment's field schema: required fields and types. All
	// schema problems of an event are reported together.
	StageSchema Stage = "schema"
	// StageAction is the action's own checks of §20.3, in the order
	// timestamp validity, 90-day window, future tolerance, identifier
	// presence, rule id. Only the first failure is reported.
	StageAction Stage = "action"
	// StageLocal is capstan's local copy of LinkedIn's 400 rules (§8.2,
	// §10.2): currency, amount, country code. All problems are reported.
	StageLocal Stage = "local"
)

// Reason is a stable, machine-readable cause of a FieldError, suitable for
// metrics labels and DLQ records.
type Reason string

// Reasons.
const (
	ReasonMissing          Reason = "missing"            // required field absent or empty
	ReasonType             Reason = "wrong_type"         // JSON type not accepted for the field
	ReasonInvalidDate      Reason = "invalid_date"       // "Timestamp is not a valid date."
	ReasonTooOld           Reason = "too_old"            // older than the 90-day window
	ReasonInFuture         Reason = "in_future"          // beyond now + future tolerance
	ReasonNoIdentifier     Reason = "no_identifier"      // no email, UUID, Acxiom or Oracle id
	ReasonNoRule           Reason = "no_rule"            // no conversion rule id
	ReasonInvalidRule      Reason = "invalid_rule"       // rule id is not a LinkedIn id
	ReasonInvalidCurrency  Reason = "invalid_currency"   // not an ISO 4217 code shape
	ReasonInvalidAmount    Reason = "invalid_amount"     // not a decimal string
	ReasonNegativeAmount   Reason = "negative_amount"    // amount below zero
	ReasonInvalidCountry   Reason = "invalid_country"    // not an ISO 3166-1 alpha-2 shape
	ReasonInvalidBatchSize Reason = "invalid_batch_size" // batch_size not a whole number >= 1
)

// FieldError is one problem with one action field.
type FieldError struct {
	// Field is the JSON pointer of the action field ("/userInfo/firstName",
	// "/onMappingSave/outputs/id"); empty for the cross-field identifier rule.
	Field string `json:"field,omitempty"`
	// Reason is the stable cause.
	Reason Reason `json:"reason"`
	// Message is the exact user-facing sentence (§20.3 where the spec gives
	// one), ending with a full stop.
	Message string `json:"message"`
}

func (e *FieldError) Error() string { return e.Message }

// ValidationError reports why an event's action fields cannot become a
// conversion. Errors holds at least one problem, in report order; Error()
// joins their messages with a space, exactly as Segment does
// ("User Info is missing the required field 'firstName'. User Info is
// missing the required field 'lastName'.").
type ValidationError struct {
	Stage  Stage
	Errors []*FieldError
}

func (e *ValidationError) Error() string {
	if len(e.Errors) == 1 {
		return e.Errors[0].Message
	}
	var b strings.Builder
	for i, fe := range e.Errors {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(fe.Message)
	}
	return b.String()
}

// Code returns CodePayloadValidationFailed.
func (e *ValidationError) Code() string { return CodePayloadValidationFailed }

// Status returns 400, the status Segment reports for such events.
func (e *ValidationError) Status() int { return 400 }

// Details returns the individual problems (dead letters and preview show
// them as the event's per-field errors).
func (e *ValidationError) Details() any { return e.Errors }

// Is reports whether target is ErrInvalidConversion.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalidConversion }

// Unwrap returns the individual problems, so errors.As finds the first
// *FieldError.
func (e *ValidationError) Unwrap() []error {
	out := make([]error, len(e.Errors))
	for i, fe := range e.Errors {
		out[i] = fe
	}
	return out
}

// Messages of §20.3, verbatim.
const (
	msgInvalidDate  = "Timestamp is not a valid date."
	msgTooOld       = "Timestamp should be within the past 90 days."
	msgInFuture     = "Timestamp should not be in the future."
	msgNoIdentifier = "One of email or LinkedIn UUID or Acxiom ID or Oracle ID is required."
	msgNoRule       = "Conversion Rule ID is required."
)

// missingRoot is the schema message for a missing top-level field.
func missingRoot(name string) *FieldError {
	return &FieldError{Field: "/" + name, Reason: ReasonMissing,
		Message: "The root value is missing the required field '" + name + "'."}
}

// missingIn is the schema message for a missing sub-field of an object
// field, using the object's label ("User Info", "Conversion Value").
func missingIn(parent, label, name string) *FieldError {
	return &FieldError{Field: "/" + parent + "/" + name, Reason: ReasonMissing,
		Message: label + " is missing the required field '" + name + "'."}
}

// typeError reports a value of the wrong JSON type, in the wording of
// Segment's schema errors: "The value at /eventId must be a string but it
// was an object."
func typeError(ptr, want, gotKind string) *FieldError {
	return &FieldError{Field: ptr, Reason: ReasonType,
		Message: "The value at " + ptr + " must be " + article(want) + " but it was " + article(gotKind) + "."}
}

func article(kind string) string {
	switch kind[0] {
	case 'a', 'e', 'i', 'o', 'u':
		return "an " + kind
	}
	return "a " + kind
}

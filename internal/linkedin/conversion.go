package linkedin

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Conversion is one conversion event as LinkedIn's POST /rest/conversionEvents
// takes it (§8.1); fields are declared, and encoded, in LinkedIn's order.
// Build it with BuildConversion or Builder.Build, which guarantee a valid
// value; a Conversion assembled by hand is encoded as is.
type Conversion struct {
	// Conversion is the rule URN, urn:lla:llaPartnerConversion:{id}.
	Conversion string `json:"conversion"`
	// ConversionHappenedAt is epoch milliseconds.
	ConversionHappenedAt int64 `json:"conversionHappenedAt"`
	// ConversionValue is nil when the event carries no value.
	ConversionValue *ConversionValue `json:"conversionValue,omitempty"`
	// EventID is omitted when empty.
	EventID string `json:"eventId,omitempty"`
	// User always encodes userIds, as "[]" when there are none (§20.1).
	User User `json:"user"`
}

// ConversionValue is the monetary value of a conversion.
type ConversionValue struct {
	// CurrencyCode is an ISO 4217 code, "USD".
	CurrencyCode string `json:"currencyCode"`
	// Amount is a non-negative decimal string, "149.00".
	Amount string `json:"amount"`
}

// User identifies the converting person.
type User struct {
	// UserIDs are in the order email, LinkedIn UUID, Acxiom, Oracle. A nil
	// slice is encoded as [].
	UserIDs []UserID `json:"userIds"`
	// UserInfo is nil when the event carries none.
	UserInfo *UserInfo `json:"userInfo,omitempty"`
	// ExternalIDs holds at most one id (§8.2); omitted when empty.
	ExternalIDs []string `json:"externalIds,omitempty"`
}

// UserID is one identifier.
type UserID struct {
	IDType  IDType `json:"idType"`
	IDValue string `json:"idValue"`
}

// UserInfo is plain-text person data. FirstName and LastName are required;
// the optional fields are omitted when empty.
type UserInfo struct {
	FirstName   string `json:"firstName"`
	LastName    string `json:"lastName"`
	CompanyName string `json:"companyName,omitempty"`
	Title       string `json:"title,omitempty"`
	CountryCode string `json:"countryCode,omitempty"`
}

// Validation defaults (§8.2, §18.4).
const (
	// DefaultWindow is how far in the past conversionHappenedAt may lie.
	DefaultWindow = 90 * 24 * time.Hour
	// DefaultFutureTolerance is how far ahead of now conversionHappenedAt
	// may lie (clock skew between the event's source and capstan).
	DefaultFutureTolerance = 5 * time.Minute
)

// BuilderConfig tunes validation. The zero value is LinkedIn's behaviour.
type BuilderConfig struct {
	// Window is how far before now a conversion may have happened; the
	// boundary itself is accepted. Zero means DefaultWindow (90 days);
	// negative is an error.
	Window time.Duration
	// FutureTolerance is how far after now a conversion may be dated; the
	// boundary itself is accepted. Zero means DefaultFutureTolerance
	// (5 minutes); negative is an error. There is no way to accept
	// arbitrarily future-dated events: LinkedIn rejects them (§19 Q13).
	FutureTolerance time.Duration
}

// Builder turns action fields into conversions. It is immutable and safe
// for concurrent use.
type Builder struct {
	window, tolerance time.Duration
}

// NewBuilder returns a Builder for cfg, or an error naming every invalid
// setting.
func NewBuilder(cfg BuilderConfig) (*Builder, error) {
	var errs []error
	if cfg.Window < 0 {
		errs = append(errs, fmt.Errorf("window: must not be negative, got %s", cfg.Window))
	}
	if cfg.FutureTolerance < 0 {
		errs = append(errs, fmt.Errorf("future tolerance: must not be negative, got %s", cfg.FutureTolerance))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("linkedin builder: %w", err)
	}
	b := &Builder{window: cfg.Window, tolerance: cfg.FutureTolerance}
	if b.window == 0 {
		b.window = DefaultWindow
	}
	if b.tolerance == 0 {
		b.tolerance = DefaultFutureTolerance
	}
	return b, nil
}

var defaultBuilder = Builder{window: DefaultWindow, tolerance: DefaultFutureTolerance}

// BuildConversion is Builder.Build with the default configuration.
func BuildConversion(fields map[string]any, ruleID string, now time.Time) (Conversion, error) {
	return defaultBuilder.Build(fields, ruleID, now)
}

// Build turns one event's action fields (§20.1; the output of
// internal/mapping as plain Go values) into a conversion for rule ruleID at
// time now, or returns a *ValidationError.
//
// ruleID is the conversion rule: a decimal id or a rule URN (either
// urn:lla: or urn:li: namespace, §19 Q9). When empty, the rule comes from
// the fields' onMappingSave.outputs.id (string or number), as Segment reads
// it; an explicit id wins because it comes from the operator (capstan's own
// rule creation, or preview --conversion-rule).
//
// Checks run in three stages, the first failing stage answering (see
// Stage): Segment's schema (all problems together), the action checks of
// §20.3 in their order (first problem only), then capstan's copies of
// LinkedIn's 400 rules, so that events LinkedIn would refuse never leave.
//
// Empty values: absent keys, null, and strings that are empty after
// trimming white space count as "nothing" everywhere. An object field whose
// parts are all nothing is omitted (the spec's rule for conversionValue,
// applied to userInfo as well, so a default userInfo mapping on an event
// without names does not fail the event); an object with only some of its
// required parts is a schema error.
func (b *Builder) Build(fields map[string]any, ruleID string, now time.Time) (Conversion, error) {
	af := ActionFieldsOf(fields)
	return b.BuildFields(&af, ruleID, now)
}

// BuildFields is Build for action fields already typed (delivery reads them
// from the mapping's output without a map).
func (b *Builder) BuildFields(fields *ActionFields, ruleID string, now time.Time) (Conversion, error) {
	var in input
	if errs := in.read(fields); errs != nil {
		return Conversion{}, &ValidationError{Stage: StageSchema, Errors: errs}
	}
	c := Conversion{EventID: in.eventID}

	// Action checks, in the order of §20.3.
	ms, ok := parseTimeText(in.happenedAt.Text)
	if !ok {
		return Conversion{}, actionError("/"+FieldConversionHappenedAt, ReasonInvalidDate, msgInvalidDate)
	}
	nowMs := now.UnixMilli()
	if ms < nowMs-b.window.Milliseconds() {
		return Conversion{}, actionError("/"+FieldConversionHappenedAt, ReasonTooOld, b.tooOldMessage())
	}
	if ms > nowMs+b.tolerance.Milliseconds() {
		return Conversion{}, actionError("/"+FieldConversionHappenedAt, ReasonInFuture, msgInFuture)
	}
	c.ConversionHappenedAt = ms

	ids := make([]UserID, 0, 4)
	if v, ok := HashEmail(in.email); ok {
		ids = append(ids, UserID{IDType: IDSHA256Email, IDValue: v})
	}
	if v, ok := NormalizeRawID(in.linkedInUUID); ok {
		ids = append(ids, UserID{IDType: IDLinkedInUUID, IDValue: v})
	}
	if v, ok := NormalizeRawID(in.acxiomID); ok {
		ids = append(ids, UserID{IDType: IDAcxiom, IDValue: v})
	}
	if v, ok := NormalizeRawID(in.oracleID); ok {
		ids = append(ids, UserID{IDType: IDOracleMoat, IDValue: v})
	}
	if len(ids) == 0 {
		return Conversion{}, actionError("", ReasonNoIdentifier, msgNoIdentifier)
	}
	c.User.UserIDs = ids

	rulePtr := "/" + FieldHook + "/outputs/id"
	ruleID = trimSpace(ruleID)
	if ruleID == "" {
		if s, ok := fields.HookRuleID.text(); ok {
			ruleID = trimSpace(s)
		}
	} else {
		rulePtr = ""
	}
	if ruleID == "" {
		return Conversion{}, actionError(rulePtr, ReasonNoRule, msgNoRule)
	}
	urn, err := RuleURN(ruleID)
	if err != nil {
		return Conversion{}, actionError(rulePtr, ReasonInvalidRule, err.Error())
	}
	c.Conversion = urn

	// Local copies of LinkedIn's business rules (§10.2 B6–B8).
	var local []*FieldError
	if in.hasValue {
		v, errs := conversionValue(in.currency, in.amount)
		local = append(local, errs...)
		c.ConversionValue = v
	}
	if in.hasUserInfo {
		ui := &UserInfo{
			FirstName:   in.userInfo[0],
			LastName:    in.userInfo[1],
			CompanyName: in.userInfo[2],
			Title:       in.userInfo[3],
			CountryCode: strings.ToUpper(in.userInfo[4]),
		}
		if ui.CountryCode != "" && !isUpperLetters(ui.CountryCode, 2) {
			local = append(local, &FieldError{Field: "/userInfo/countryCode", Reason: ReasonInvalidCountry,
				Message: "User Info countryCode " + quoteShort(in.userInfo[4]) +
					" is not an ISO 3166-1 alpha-2 country code (two letters, such as US)."})
		}
		c.User.UserInfo = ui
	}
	if in.externalID != "" {
		c.User.ExternalIDs = []string{in.externalID}
	}
	if local != nil {
		return Conversion{}, &ValidationError{Stage: StageLocal, Errors: local}
	}
	return c, nil
}

func (b *Builder) tooOldMessage() string {
	if b.window == DefaultWindow {
		return msgTooOld
	}
	if b.window%(24*time.Hour) == 0 {
		return "Timestamp should be within the past " + strconv.FormatInt(int64(b.window/(24*time.Hour)), 10) + " days."
	}
	return "Timestamp should be within the past " + b.window.String() + "."
}

func actionError(field string, reason Reason, msg string) error {
	return &ValidationError{Stage: StageAction, Errors: []*FieldError{{Field: field, Reason: reason, Message: msg}}}
}

// conversionValue applies LinkedIn's currency and amount rules. The
// currency code is trimmed and upper-cased ("usd" → "USD"): unambiguous,
// and LinkedIn requires upper case. A numeric amount becomes its decimal
// string ("100" → "100", 1.5e3 → "1500"); a string amount is trimmed and
// must already be a decimal string, since guessing at "1,000.50" could
// misstate revenue.
func conversionValue(currency string, amount Mapped) (*ConversionValue, []*FieldError) {
	var errs []*FieldError
	v := &ConversionValue{CurrencyCode: strings.ToUpper(trimSpace(currency))}
	if !isUpperLetters(v.CurrencyCode, 3) {
		errs = append(errs, &FieldError{Field: "/conversionValue/currencyCode", Reason: ReasonInvalidCurrency,
			Message: "Conversion Value currencyCode " + quoteShort(currency) +
				" is not an ISO 4217 currency code (three letters, such as USD)."})
	}
	var raw string
	if amount.isNumber() {
		raw = amount.Text
		if d, ok := decimalFromNumber(raw); ok {
			v.Amount = d
		}
	} else {
		raw, _ = amount.text()
		v.Amount = trimSpace(raw)
	}
	switch {
	case strings.HasPrefix(v.Amount, "-") && isDecimalString(v.Amount[1:]):
		errs = append(errs, &FieldError{Field: "/conversionValue/amount", Reason: ReasonNegativeAmount,
			Message: "Conversion Value amount " + quoteShort(raw) + " must not be negative."})
	case !isDecimalString(v.Amount):
		errs = append(errs, &FieldError{Field: "/conversionValue/amount", Reason: ReasonInvalidAmount,
			Message: "Conversion Value amount " + quoteShort(raw) +
				" is not a decimal string (digits with an optional fraction, such as \"100.05\")."})
	}
	return v, errs
}

// input is the schema stage's view of the action fields.
type input struct {
	happenedAt   Mapped
	currency     string
	amount       Mapped // string or number, kept for the amount rule
	hasValue     bool
	eventID      string
	email        string
	linkedInUUID string
	acxiomID     string
	oracleID     string
	userInfo     [5]string // firstName, lastName, companyName, title, countryCode; trimmed
	hasUserInfo  bool
	externalID   string
}

var userInfoKeys = [5]string{"firstName", "lastName", "companyName", "title", "countryCode"}

// read applies Segment's field schema: types, coercion of numbers to
// strings, required fields. It returns every problem, in field order.
func (in *input) read(fields *ActionFields) []*FieldError {
	var errs []*FieldError
	str := func(v Mapped, ptr string) string {
		s, ok := v.text()
		if !ok {
			errs = append(errs, typeError(ptr, TypeString, v.kind()))
		}
		return s
	}

	// conversionHappenedAt: required, a string or a number.
	switch v := fields.HappenedAt; {
	case v.Type == "":
		errs = append(errs, missingRoot(FieldConversionHappenedAt))
	case v.Type == TypeString:
		if trimSpace(v.Text) == "" {
			errs = append(errs, missingRoot(FieldConversionHappenedAt))
		}
		in.happenedAt = v
	default:
		if !v.isNumber() {
			errs = append(errs, typeError("/"+FieldConversionHappenedAt, TypeString, v.kind()))
		}
		in.happenedAt = v
	}

	// conversionValue: optional object; both parts required when one is set.
	switch fields.ConversionValue.Type {
	case "":
	case TypeObject:
		// A part of the wrong type counts as present, so that it is not
		// reported twice.
		cur, curOK := fields.Currency.text()
		if !curOK {
			errs = append(errs, typeError("/conversionValue/currencyCode", TypeString, fields.Currency.kind()))
			cur = "?"
		}
		cur = trimSpace(cur)
		amt := fields.Amount
		amtText, amtOK := amt.text()
		if !amtOK {
			errs = append(errs, typeError("/conversionValue/amount", TypeString, amt.kind()))
			amtText = "?"
		}
		amtText = trimSpace(amtText)
		switch {
		case cur == "" && amtText == "":
			// Every part resolved to nothing: omit (§20.1).
		case cur == "":
			errs = append(errs, missingIn(FieldConversionValue, "Conversion Value", "currencyCode"))
		case amtText == "":
			errs = append(errs, missingIn(FieldConversionValue, "Conversion Value", "amount"))
		default:
			in.hasValue, in.currency, in.amount = true, cur, amt
		}
	default:
		errs = append(errs, typeError("/"+FieldConversionValue, TypeObject, fields.ConversionValue.kind()))
	}

	in.eventID = str(fields.EventID, "/"+FieldEventID)
	if trimSpace(in.eventID) == "" {
		in.eventID = "" // sent as given otherwise: it must equal the Insight Tag's eventId
	}
	in.email = str(fields.Email, "/"+FieldEmail)
	in.linkedInUUID = str(fields.LinkedInUUID, "/"+FieldLinkedInUUID)
	in.acxiomID = str(fields.AcxiomID, "/"+FieldAcxiomID)
	in.oracleID = str(fields.OracleID, "/"+FieldOracleID)

	// userInfo: optional object; firstName and lastName required when set.
	switch fields.UserInfo.Type {
	case "":
	case TypeObject:
		var bad [len(userInfoKeys)]bool
		for i, k := range userInfoKeys {
			part := fields.UserInfoParts[i]
			s, ok := part.text()
			if !ok {
				errs = append(errs, typeError("/userInfo/"+k, TypeString, part.kind()))
				bad[i] = true
			}
			in.userInfo[i] = trimSpace(s)
			if in.userInfo[i] != "" || bad[i] {
				in.hasUserInfo = true
			}
		}
		if in.hasUserInfo {
			if in.userInfo[0] == "" && !bad[0] {
				errs = append(errs, missingIn(FieldUserInfo, "User Info", "firstName"))
			}
			if in.userInfo[1] == "" && !bad[1] {
				errs = append(errs, missingIn(FieldUserInfo, "User Info", "lastName"))
			}
		}
	default:
		errs = append(errs, typeError("/"+FieldUserInfo, TypeObject, fields.UserInfo.kind()))
	}

	// externalIds: a string or an array of strings; the first non-empty one
	// is sent.
	switch fields.ExternalIDs.Type {
	case "":
	case TypeArray:
		for i, e := range fields.ExternalIDList {
			s, ok := e.text()
			if !ok {
				errs = append(errs, typeError("/externalIds/"+strconv.Itoa(i), TypeString, e.kind()))
				continue
			}
			if s = trimSpace(s); s != "" && in.externalID == "" {
				in.externalID = s
			}
		}
	default:
		in.externalID = trimSpace(str(fields.ExternalIDs, "/"+FieldExternalIDs))
	}
	return errs
}

// HookRuleID returns onMappingSave.outputs.id, the conversion rule id that
// Segment's hook saved in a mapping (a string or a number), read from a
// mapping or from its evaluated action fields, and false when there is none.
func HookRuleID(fields map[string]any) (string, bool) {
	hook, _ := fields[FieldHook].(map[string]any)
	out, _ := hook["outputs"].(map[string]any)
	s, ok := scalarText(out["id"])
	if !ok {
		return "", false
	}
	s = trimSpace(s)
	return s, s != ""
}

// Rule URN prefixes (§2.2, §19 Q9).
const (
	ruleURNPrefix   = "urn:lla:llaPartnerConversion:"
	ruleURNPrefixLi = "urn:li:llaPartnerConversion:"
)

// RuleURN returns urn:lla:llaPartnerConversion:{id} for a rule id given as
// a decimal id ("22833300") or a rule URN in the urn:lla: or the tolerated
// urn:li: namespace; capstan always sends urn:lla: (§2.2). Anything else is
// an error whose message names the value.
func RuleURN(id string) (string, error) {
	if urn, ok := (*ruleURNs.Load())[id]; ok {
		return urn, nil
	}
	urn, err := ruleURN(id)
	if err == nil {
		keepRuleURN(id, urn)
	}
	return urn, err
}

// ruleURNs keeps the URNs of the first ruleURNsMax rule ids RuleURN
// accepted (a destination's few rules, converted once per conversion:
// concatenating the URN allocates). The map is never changed once
// published: keepRuleURN publishes a copy.
var (
	ruleURNs   atomic.Pointer[map[string]string]
	ruleURNsMu sync.Mutex
)

const ruleURNsMax = 1024

func init() { ruleURNs.Store(&map[string]string{}) }

func keepRuleURN(id, urn string) {
	ruleURNsMu.Lock()
	defer ruleURNsMu.Unlock()
	old := *ruleURNs.Load()
	if len(old) >= ruleURNsMax {
		return
	}
	m := maps.Clone(old)
	m[id] = urn
	ruleURNs.Store(&m)
}

func ruleURN(id string) (string, error) {
	s := trimSpace(id)
	s = strings.TrimPrefix(strings.TrimPrefix(s, ruleURNPrefix), ruleURNPrefixLi)
	if s == "" || len(s) > 19 || !allDigits(s) || strings.Trim(s, "0") == "" {
		return "", &FieldError{Reason: ReasonInvalidRule,
			Message: "Conversion Rule ID " + quoteShort(id) + " is not a LinkedIn conversion rule id (a number such as 22833300)."}
	}
	return ruleURNPrefix + s, nil
}

// MarshalJSON encodes c exactly as AppendJSON does.
func (c Conversion) MarshalJSON() ([]byte, error) {
	return c.AppendJSON(make([]byte, 0, 512)), nil
}

var _ json.Marshaler = Conversion{}

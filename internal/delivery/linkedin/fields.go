package linkedin

import (
	"github.com/capstan-gw/capstan/internal/event"
	capi "github.com/capstan-gw/capstan/internal/linkedin"
)

// actionFields reads the action fields the builder needs straight from a
// mapping's output, as capi.ActionFieldsOf reads them from its plain Go
// values (event.Value.Any), without building those: the maps, boxed strings
// and numbers cost ~9 allocations per conversion.
func actionFields(v event.Value) capi.ActionFields {
	af := capi.ActionFields{
		HappenedAt:      mapped(v.Get(capi.FieldConversionHappenedAt)),
		EventID:         mapped(v.Get(capi.FieldEventID)),
		Email:           mapped(v.Get(capi.FieldEmail)),
		LinkedInUUID:    mapped(v.Get(capi.FieldLinkedInUUID)),
		AcxiomID:        mapped(v.Get(capi.FieldAcxiomID)),
		OracleID:        mapped(v.Get(capi.FieldOracleID)),
		ConversionValue: mapped(v.Get(capi.FieldConversionValue)),
		UserInfo:        mapped(v.Get(capi.FieldUserInfo)),
		ExternalIDs:     mapped(v.Get(capi.FieldExternalIDs)),
		HookRuleID:      mapped(v.Get(capi.FieldHook).Get("outputs").Get("id")),
		EnableBatching:  mapped(v.Get(capi.FieldEnableBatching)),
		BatchSize:       mapped(v.Get(capi.FieldBatchSize)),
	}
	if cv := v.Get(capi.FieldConversionValue); cv.Kind() == event.Object {
		af.Currency, af.Amount = mapped(cv.Get("currencyCode")), mapped(cv.Get("amount"))
	}
	if ui := v.Get(capi.FieldUserInfo); ui.Kind() == event.Object {
		for i, k := range capi.UserInfoKeys {
			af.UserInfoParts[i] = mapped(ui.Get(k))
		}
	}
	if ext := v.Get(capi.FieldExternalIDs); ext.Kind() == event.Array {
		af.ExternalIDList = make([]capi.Mapped, ext.Len())
		for i, e := range ext.Elems() {
			af.ExternalIDList[i] = mapped(e)
		}
	}
	return af
}

// mapped types one value; Undefined and null are absent, as in Any's maps.
func mapped(v event.Value) capi.Mapped {
	switch v.Kind() {
	case event.String:
		s, _ := v.Str()
		return capi.MappedString(s)
	case event.Number:
		n, _ := v.Number()
		return capi.MappedNumber(string(n))
	case event.Bool:
		b, _ := v.Bool()
		return capi.Mapped{Type: capi.TypeBoolean, Bool: b}
	case event.Array:
		return capi.Mapped{Type: capi.TypeArray}
	case event.Object:
		return capi.Mapped{Type: capi.TypeObject}
	}
	return capi.Mapped{}
}

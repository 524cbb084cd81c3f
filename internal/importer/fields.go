package importer

import (
	"fmt"
	"sort"
	"strings"
)

// Field is where a CSV column lands in the Segment track event a row
// becomes. The named fields are the constants below; a column may also go
// to a property or trait of its own name ("properties.NAME",
// "traits.NAME") or be left out (FieldSkip).
type Field string

// The fields a CSV column maps to, and where each lands in the event (the
// places the default LinkedIn mapping, spec §20.1, and the identity graph
// read; segment-ingest.md §2.9 for the trait names).
const (
	FieldUserID      Field = "userId"      // userId
	FieldAnonymousID Field = "anonymousId" // anonymousId
	FieldMessageID   Field = "messageId"   // messageId (LinkedIn's eventId)
	FieldEvent       Field = "event"       // event (the track event's name)
	FieldTimestamp   Field = "timestamp"   // timestamp (conversionHappenedAt)
	FieldEmail       Field = "email"       // traits.email (hashed for LinkedIn)
	FieldFirstName   Field = "first_name"  // traits.firstName
	FieldLastName    Field = "last_name"   // traits.lastName
	FieldTitle       Field = "title"       // traits.title
	FieldCompany     Field = "company"     // traits.company.name
	FieldCountry     Field = "country"     // traits.address.country
	FieldLiFatID     Field = "li_fat_id"   // properties.li_fat_id
	FieldRevenue     Field = "revenue"     // properties.revenue (a number)
	FieldCurrency    Field = "currency"    // properties.currency (ISO 4217)
	// FieldSkip leaves a column out of the event.
	FieldSkip Field = "skip"
)

// namedFields are the named fields, in the order the documentation lists
// them.
var namedFields = []Field{
	FieldUserID, FieldAnonymousID, FieldMessageID, FieldEvent, FieldTimestamp,
	FieldEmail, FieldFirstName, FieldLastName, FieldTitle, FieldCompany,
	FieldCountry, FieldLiFatID, FieldRevenue, FieldCurrency,
}

// headerFields maps a normalised column name (fold) to its field. Besides
// each field's own name: "id" for messageId, "value" for revenue.
var headerFields = func() map[string]Field {
	m := make(map[string]Field, len(namedFields)+2)
	for _, f := range namedFields {
		m[fold(string(f))] = f
	}
	m["id"] = FieldMessageID
	m["value"] = FieldRevenue
	return m
}()

// fold normalises a column or field name for matching: lower case, without
// '_', '-' and spaces, so "First Name", "first_name" and "FirstName" match.
func fold(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range strings.TrimSpace(s) {
		switch r {
		case '_', ' ', '-', '\t':
			continue
		}
		b.WriteString(strings.ToLower(string(r)))
	}
	return b.String()
}

// FieldNames lists what --map accepts, for messages.
func FieldNames() string {
	names := make([]string, 0, len(namedFields)+3)
	for _, f := range namedFields {
		names = append(names, string(f))
	}
	return strings.Join(names, ", ") + ", properties.NAME, traits.NAME, skip"
}

// ParseField parses the FIELD of --map COLUMN=FIELD: a named field (case,
// '_', '-' and spaces ignored, "id" and "value" included),
// "properties.NAME", "traits.NAME" or "skip".
func ParseField(s string) (Field, error) {
	if rest, ok := strings.CutPrefix(s, "properties."); ok && rest != "" {
		return Field(s), nil
	}
	if rest, ok := strings.CutPrefix(s, "traits."); ok && rest != "" {
		return Field(s), nil
	}
	if fold(s) == string(FieldSkip) {
		return FieldSkip, nil
	}
	if f, ok := headerFields[fold(s)]; ok {
		return f, nil
	}
	return "", fmt.Errorf("unknown field %q; known fields: %s", s, FieldNames())
}

// ParseMap parses --map values ("COLUMN=FIELD") into a map from folded
// column name to field.
func ParseMap(specs []string) (map[string]Field, error) {
	m := make(map[string]Field, len(specs))
	for _, spec := range specs {
		col, field, ok := strings.Cut(spec, "=")
		if !ok || strings.TrimSpace(col) == "" || strings.TrimSpace(field) == "" {
			return nil, fmt.Errorf("--map %q: want COLUMN=FIELD", spec)
		}
		f, err := ParseField(strings.TrimSpace(field))
		if err != nil {
			return nil, fmt.Errorf("--map %q: %w", spec, err)
		}
		key := fold(col)
		if prev, ok := m[key]; ok && prev != f {
			return nil, fmt.Errorf("--map %q: column %q is already mapped to %s", spec, col, prev)
		}
		m[key] = f
	}
	return m, nil
}

// fieldKeys are the properties and traits that named fields fill, which a
// column of its own may not fill too.
var fieldKeys = map[Field]string{
	FieldRevenue: "properties.revenue", FieldCurrency: "properties.currency", FieldLiFatID: "properties.li_fat_id",
	FieldEmail: "traits.email", FieldFirstName: "traits.firstName", FieldLastName: "traits.lastName",
	FieldTitle: "traits.title", FieldCompany: "traits.company", FieldCountry: "traits.address",
}

// column is one CSV column and where it lands.
type column struct {
	name  string // the header as written
	field Field  // a named field, properties.X, traits.X or skip
	prop  string // for properties.X / other columns: the property name
	trait string // for traits.X: the trait name
}

// layout is how a CSV file's columns map to the event.
type layout struct {
	cols []column
	// pos of each named field's column, -1 when the file has none.
	pos map[Field]int
}

// newLayout maps header to fields: overrides (from --map, by folded column
// name) first, then the header names, then properties under the header's
// own name. Two columns on one named field, or an override naming no
// column, are errors.
func newLayout(header []string, overrides map[string]Field) (*layout, error) {
	l := &layout{cols: make([]column, len(header)), pos: map[Field]int{}}
	for _, f := range namedFields {
		l.pos[f] = -1
	}
	used := map[string]bool{}
	props := map[string]int{} // properties.X and traits.X: the column that takes it
	var errs []string
	for i, h := range header {
		name := strings.TrimSpace(h)
		c := column{name: name}
		key := fold(name)
		f, over := overrides[key]
		if over {
			used[key] = true
		} else if hf, ok := headerFields[key]; ok {
			f = hf
		}
		switch {
		case f == "" && name == "":
			c.field = FieldSkip // an unnamed column has nowhere to go
		case f == "":
			c.field, c.prop = Field("properties."+name), name
		case strings.HasPrefix(string(f), "properties."):
			c.field, c.prop = f, strings.TrimPrefix(string(f), "properties.")
		case strings.HasPrefix(string(f), "traits."):
			c.field, c.trait = f, strings.TrimPrefix(string(f), "traits.")
		default:
			c.field = f
			if f != FieldSkip {
				if j := l.pos[f]; j >= 0 {
					errs = append(errs, fmt.Sprintf("columns %q and %q both map to %s (use --map COLUMN=skip or --map COLUMN=properties.NAME for one of them)", l.cols[j].name, name, f))
				} else {
					l.pos[f] = i
				}
			}
		}
		if c.prop != "" || c.trait != "" {
			key := string(c.field)
			if j, ok := props[key]; ok {
				errs = append(errs, fmt.Sprintf("columns %q and %q both become %s (use --map COLUMN=properties.NAME to rename one)", l.cols[j].name, name, key))
			} else {
				props[key] = i
			}
		}
		l.cols[i] = c
	}
	for _, f := range namedFields {
		key, ok := fieldKeys[f]
		if !ok {
			continue
		}
		if j, taken := props[key]; l.pos[f] >= 0 && taken {
			i := l.pos[f]
			errs = append(errs, fmt.Sprintf("columns %q and %q both become %s (use --map COLUMN=properties.NAME to rename one)", l.cols[i].name, l.cols[j].name, key))
		}
	}
	var unused []string
	for k := range overrides {
		if !used[k] {
			unused = append(unused, k)
		}
	}
	sort.Strings(unused)
	for _, k := range unused {
		errs = append(errs, fmt.Sprintf("--map: the header has no column %q (columns: %s)", k, strings.Join(header, ", ")))
	}
	if len(errs) > 0 {
		return nil, &UsageError{Msg: strings.Join(errs, "; ")}
	}
	return l, nil
}

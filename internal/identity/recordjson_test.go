package identity

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// TestRecordJSON compares appendJSON with json.Marshal on varied profiles:
// the same bytes when no string holds '<', '>' or '&' (which json.Marshal
// escapes), and the same profile decoded in every case.
func TestRecordJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	strs := []string{"", "a.0f3c", "u.9e1d", "AQHx-li_fat_id", "grp <1> & co", "quote\" back\\slash", "ctl\x01\n\t", "bad \xff utf8",
		"line\u2028sep\u2029", "ünïcödé 日本", strings.Repeat("x", 200)}
	gen := randomRecords(rng, strs, 1<<50)
	for i := range 5000 {
		r := gen(0)
		if i == 0 {
			r = record{}
		}
		want, err := json.Marshal(&r)
		if err != nil {
			t.Fatal(err)
		}
		got := r.marshal()
		if !json.Valid(got) {
			t.Fatalf("profile %d: invalid JSON %s", i, got)
		}
		if !bytes.ContainsAny(want, `<>&`) && !bytes.Contains(want, []byte(`\u003c`)) && !bytes.Contains(want, []byte(`\u003e`)) && !bytes.Contains(want, []byte(`\u0026`)) {
			if !bytes.Equal(got, want) {
				t.Fatalf("profile %d:\n got %s\nwant %s", i, got, want)
			}
		}
		var a, b record
		if err := json.Unmarshal(got, &a); err != nil {
			t.Fatalf("profile %d: %v", i, err)
		}
		if err := json.Unmarshal(want, &b); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("profile %d decodes to\n%+v\nwant\n%+v", i, a, b)
		}
	}
}

// TestRecordJSONCoversEveryField fails when record gains a field that
// appendJSON does not write: every field is set through reflection, so a
// new one is set too, and the keys json.Marshal writes must all be there.
func TestRecordJSONCoversEveryField(t *testing.T) {
	r := everyFieldSet(t, "appendJSON")
	want, err := json.Marshal(&r)
	if err != nil {
		t.Fatal(err)
	}
	var a, b map[string]any
	if err := json.Unmarshal(want, &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(r.marshal(), &b); err != nil {
		t.Fatalf("appendJSON wrote invalid JSON: %v", err)
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			t.Errorf("appendJSON does not write %q, which json.Marshal does", k)
		}
	}
	if !reflect.DeepEqual(a, b) {
		t.Errorf("appendJSON = %v, json.Marshal = %v", b, a)
	}
}

// randomRecords returns a generator of varied profiles for the encodings'
// round-trip tests: each string field one of strs, numbers zero, negative
// or below numMax, lists nil, empty or of one to four strings, and at depth
// 0 half of them with up to three scoped parts (nil ones among them).
func randomRecords(rng *rand.Rand, strs []string, numMax int64) func(depth int) record {
	str := func() string { return strs[rng.IntN(len(strs))] }
	num := func() int64 {
		switch rng.IntN(3) {
		case 0:
			return 0
		case 1:
			return -rng.Int64N(1e6)
		}
		return rng.Int64N(numMax)
	}
	list := func() []string {
		switch rng.IntN(4) {
		case 0:
			return nil
		case 1:
			return []string{}
		}
		l := make([]string, 1+rng.IntN(4))
		for i := range l {
			l[i] = str()
		}
		return l
	}
	var gen func(depth int) record
	gen = func(depth int) record {
		r := record{LiFatID: str(), LiFatAt: num(), Email: str(), EmailAt: num(), Links: list(), AliasOf: str(), Groups: list(), First: num()}
		if depth == 0 && rng.IntN(2) == 0 {
			r.Scoped = map[string]*record{}
			for range rng.IntN(4) {
				if rng.IntN(5) == 0 {
					r.Scoped[str()] = nil
					continue
				}
				p := gen(1)
				r.Scoped[str()] = &p
			}
		}
		return r
	}
	return gen
}

// everyFieldSet returns a record with every field set through reflection,
// so that a field added to record is set too; a field of a kind it cannot
// set fails t, naming the encoder (enc) to teach with it.
func everyFieldSet(t *testing.T, enc string) record {
	t.Helper()
	var r record
	v := reflect.ValueOf(&r).Elem()
	for i := range v.NumField() {
		switch f := v.Field(i); f.Kind() {
		case reflect.String:
			f.SetString("x")
		case reflect.Int64, reflect.Int:
			f.SetInt(1)
		case reflect.Slice:
			f.Set(reflect.ValueOf([]string{"x"}))
		case reflect.Map:
			f.Set(reflect.ValueOf(map[string]*record{"web": {LiFatID: "y"}}))
		default:
			t.Fatalf("record.%s: kind %s not filled by this test; teach it and %s", v.Type().Field(i).Name, f.Kind(), enc)
		}
	}
	return r
}

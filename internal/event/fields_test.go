package event

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// TestFields: fields' get, set and del (members added kept apart, in
// extra) and its JSON are those of the object they change, as an object
// of its own members (set appends a key absent or deleted) gives them:
// random operations on the fields of an event, with and without the keys
// already present.
func TestFields(t *testing.T) {
	bodies := []string{
		`{"type":"track","userId":"u","context":{"a":1},"timestamp":"t","x":[1,2]}`,
		`{"x":1,"messageId":"m","y" : {"z":null} ,"sentAt":"s","receivedAt":"r","event":"e"}`,
		`{}`,
	}
	r := rand.New(rand.NewPCG(1, 2))
	for _, body := range bodies {
		for range 500 {
			obj, _ := parseObject([]byte(body))
			ref := append(object(nil), obj...)
			var extra [numFields]member
			f := fields{obj: obj, extra: extra[:0]}
			f.find()
			added := 0
			for range 1 + r.IntN(12) {
				k := r.IntN(numFields)
				i := ref.index(fieldNames[k])
				switch r.IntN(3) {
				case 0:
					if got, want := f.get(k), ref.get(fieldNames[k]); !bytes.Equal(got, want) {
						t.Fatalf("%s: get %s = %s, want %s", body, fieldNames[k], got, want)
					}
				case 1:
					if i < 0 && added == numFields {
						continue // normalize adds each field at most once
					}
					v := []byte(`"v` + string(rune('a'+r.IntN(26))) + `"`)
					f.set(k, v)
					if i >= 0 {
						ref[i].Value = v
					} else {
						ref = append(ref, member{rawKey: quotedFieldNames[k], Value: v})
						added++
					}
				case 2:
					f.del(k)
					if i >= 0 {
						ref[i].Value = nil
					}
				}
			}
			want := ref.appendJSON(nil)
			if got := f.appendJSON(nil); !bytes.Equal(got, want) {
				t.Fatalf("%s: %s, want %s", body, got, want)
			}
			if n := f.jsonLen(); n != len(want) {
				t.Fatalf("%s: jsonLen %d, want %d (%s)", body, n, len(want), want)
			}
		}
	}
}

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
		`{"\u0074ype":"page","type":"track","u\u0073erId":1, "context" :{},"x":2,"x":3,"anonymousId":"a","y":{}}`,
		`{}`,
	}
	r := rand.New(rand.NewPCG(1, 2))
	for _, body := range bodies {
		for range 500 {
			checkFields(t, []byte(body), r)
		}
	}
}

// FuzzFields is TestFields on any object, with operations drawn from seed.
func FuzzFields(f *testing.F) {
	f.Add([]byte(`{"type":"track","userId":"u","context":{"a":1},"timestamp":"t","x":[1,2]}`), uint64(1))
	f.Add([]byte(` { "context" : {"b":2} , "\u0063ontext":{"c":3},"event":"e" } `), uint64(7))
	f.Fuzz(func(t *testing.T, body []byte, seed uint64) {
		if ok, _ := validJSON(body); !ok {
			return
		}
		if _, isObj := parseObject(body); !isObj {
			return
		}
		r := rand.New(rand.NewPCG(seed, 2))
		for range 20 {
			checkFields(t, body, r)
		}
	})
}

// checkFields applies random operations to the fields of body and to
// parseObject's members of it, and compares their JSON.
func checkFields(t *testing.T, body []byte, r *rand.Rand) {
	t.Helper()
	ref, _ := parseObject(body)
	spans, _ := parseSpansInto(nil, body)
	f := fields{text: body, obj: spans}
	f.find()
	added := 0
	for range 1 + r.IntN(12) {
		k := r.IntN(numFields)
		i := ref.index(fieldNames[k])
		switch r.IntN(4) {
		case 0:
			got := f.get(k)
			if k == fContext && f.tail != nil {
				got = append(got[:len(got):len(got)], f.tail...) // the context as written
			}
			if want := ref.get(fieldNames[k]); !bytes.Equal(got, want) {
				t.Fatalf("%s: get %s = %s, want %s", body, fieldNames[k], got, want)
			}
		case 1, 3:
			if i < 0 && added == numFields {
				continue // normalize adds each field at most once
			}
			v := []byte(`"v` + string(rune('a'+r.IntN(26))) + `"`)
			var tail []byte
			if r.IntN(4) == 3 {
				// The context with ip spliced in, as normalize sets it.
				k, v, tail = fContext, []byte(`{"a":1`), []byte(`,"ip":"x"}`)
				i = ref.index(fieldNames[k])
				if i < 0 && added == numFields {
					continue
				}
			}
			f.set(k, v) // clears the tail when k is the context
			if tail != nil {
				f.tail = tail
			}
			v = append(v[:len(v):len(v)], tail...)
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

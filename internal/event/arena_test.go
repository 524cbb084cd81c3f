package event

import (
	"strings"
	"testing"
)

// arenaDocs are documents of every shape: nested containers, escapes,
// repeated keys, scalars, empty containers.
var arenaDocs = []string{
	benchEvent,
	`{"a":1,"b":[1,2,{"c":"d"}],"e":{}}`,
	`{"k":"v\u00e9\n","k":"last","arr":[[],[[]],{"x":null}]}`,
	`"just a string"`,
	`12.5e3`,
	`[]`,
	`{}`,
	`[{"a":[1,{"b":[true,false,null]}]}]`,
}

// TestArena: documents parsed from one Arena read exactly as ParseString's,
// also those parsed before others filled and replaced the Arena's block,
// until Reset; and after Reset the Arena's memory is reused.
func TestArena(t *testing.T) {
	var a Arena
	var got []Value
	var want []string
	for range 3 * arenaBlock / 8 { // several blocks' worth
		for _, d := range arenaDocs {
			v, err := a.ParseString(d)
			if err != nil {
				t.Fatal(err)
			}
			w, err := ParseString(d)
			if err != nil {
				t.Fatal(err)
			}
			got, want = append(got, v), append(want, string(w.AppendJSON(nil)))
		}
	}
	for i, v := range got {
		if s := string(v.AppendJSON(nil)); s != want[i] {
			t.Fatalf("document %d reads %s, want %s", i, s, want[i])
		}
	}
	// A document that does not parse takes nothing that is reused before
	// Reset, and the Arena goes on.
	if _, err := a.ParseString(`{"a":[1,2,`); err == nil {
		t.Fatal("no error for a truncated document")
	}
	v, err := a.ParseString(arenaDocs[1])
	if err != nil || string(v.AppendJSON(nil)) != `{"a":1,"b":[1,2,{"c":"d"}],"e":{}}` {
		t.Fatalf("after an error: %s, %v", v.AppendJSON(nil), err)
	}

	a.Reset()
	if len(a.m) != 0 || cap(a.m) == 0 {
		t.Fatalf("after Reset: len %d cap %d, want an empty, kept block", len(a.m), cap(a.m))
	}
	if raceEnabled {
		return // the race detector's sync.Pool drops parsers: allocations vary
	}
	allocs := testing.AllocsPerRun(100, func() {
		a.Reset()
		if _, err := a.ParseString(benchEvent); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per parse from a reset Arena, want 0", allocs)
	}
}

// TestArenaKeep: Reset lets go of a block larger than arenaKeep.
func TestArenaKeep(t *testing.T) {
	var a Arena
	big := "[" + strings.Repeat("1,", arenaKeep) + "1]"
	if _, err := a.ParseString(big); err != nil {
		t.Fatal(err)
	}
	a.Reset()
	if a.m != nil {
		t.Fatalf("kept a block of %d members", cap(a.m))
	}
}

func BenchmarkParseArena(b *testing.B) {
	b.SetBytes(int64(len(benchEvent)))
	b.ReportAllocs()
	var a Arena
	for b.Loop() {
		a.Reset()
		if _, err := a.ParseString(benchEvent); err != nil {
			b.Fatal(err)
		}
	}
}

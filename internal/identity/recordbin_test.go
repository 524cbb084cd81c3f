package identity

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

// normalised is r as a decoder returns it: empty lists and maps are absent.
func normalised(r record) record {
	if len(r.Links) == 0 {
		r.Links = nil
	}
	if len(r.Groups) == 0 {
		r.Groups = nil
	}
	if len(r.Scoped) == 0 {
		r.Scoped = nil
		return r
	}
	scoped := make(map[string]*record, len(r.Scoped))
	for src, p := range r.Scoped {
		scoped[src] = nil
		if p != nil {
			n := normalised(*p)
			scoped[src] = &n
		}
	}
	r.Scoped = scoped
	return r
}

// TestRecordBinary: the compact encoding decodes to the same profile, for
// varied profiles (hashes and keys, which it stores as 32 bytes, and
// strings that only look like them: uppercase hex, one digit short).
func TestRecordBinary(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	h64 := "0f3c9e1d" + strings.Repeat("a1b2c3d4", 7)
	strs := []string{"", h64, "u." + h64, "a." + h64, "x." + h64, strings.ToUpper(h64), h64[:63], "a." + h64[:63] + "g",
		"AQHx-li_fat_id", "quote\" back\\slash", "bad \xff utf8", "ünïcödé 日本", strings.Repeat("x", 200), "\x01"}
	gen := randomRecords(rng, strs, 1<<62)
	for i := range 2000 {
		r := gen(0)
		if i == 0 {
			r = record{}
		}
		enc := r.encodeBinary()
		if enc[0] != recordBinary {
			t.Fatalf("profile %d: first byte %#x", i, enc[0])
		}
		var got record
		if err := decodeRecord(enc, &got); err != nil {
			t.Fatalf("profile %d: %v (%x)", i, err, enc)
		}
		if want := normalised(r); !reflect.DeepEqual(got, want) {
			t.Fatalf("profile %d decodes to\n%+v\nwant\n%+v", i, got, want)
		}
		if !bytes.Equal(got.encodeBinary(), enc) {
			t.Fatalf("profile %d: encoding not stable", i)
		}
		// Every shorter prefix and a trailing byte are errors, not panics.
		for n := range len(enc) {
			if err := decodeRecord(enc[:n], &record{}); err == nil && n > 0 {
				t.Fatalf("profile %d: a prefix of %d bytes of %d decoded", i, n, len(enc))
			}
		}
		if err := decodeRecord(append(enc, 0), &record{}); err == nil {
			t.Fatalf("profile %d: a trailing byte decoded", i)
		}
	}
}

// TestRecordBinaryCoversEveryField fails when record gains a field that
// the compact encoding drops (set through reflection, as in
// TestRecordJSONCoversEveryField).
func TestRecordBinaryCoversEveryField(t *testing.T) {
	r := everyFieldSet(t, "appendFields")
	var got record
	if err := decodeRecord(r.encodeBinary(), &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Errorf("decodes to %+v, want %+v", got, r)
	}
}

// TestRecordBinarySize: a new visitor's profiles, compact, take well under
// half of their JSON's bytes (what the local store writes and compacts).
func TestRecordBinarySize(t *testing.T) {
	now := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC).UnixMilli()
	user, anon := profileKeyOf(userPrefix, "user_1"), profileKeyOf(anonPrefix, "anon-1")
	recs := []record{
		{LiFatID: "3f0b0c3e-9c1d-4f1e-a1e7-000000000001", LiFatAt: now, First: now},
		{Email: emailHash, EmailAt: now, Links: []string{anon}, First: now},
		{Links: []string{user}, First: now},
	}
	var js, bin int
	for _, r := range recs {
		js += len(r.marshal())
		bin += len(r.encodeBinary())
	}
	t.Logf("JSON %d bytes, compact %d", js, bin)
	if bin*2 > js {
		t.Errorf("compact %d bytes, JSON %d", bin, js)
	}
}

// TestDecodeRecordJSON: profiles written as JSON (the bucket's, and the
// local store's before format 2) still decode.
func TestDecodeRecordJSON(t *testing.T) {
	r := record{Email: emailHash, Links: []string{profileKeyOf(anonPrefix, "a")}, First: 5, Scoped: map[string]*record{"web": {LiFatID: "L"}}}
	for _, data := range [][]byte{r.marshal(), []byte(" \n" + string(r.marshal()))} {
		var got record
		if err := decodeRecord(data, &got); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Errorf("%s decodes to %+v", data, got)
		}
	}
}

// TestLocalFormatUpgrade: a local store written by format 1 (JSON
// profiles) opens: its marker becomes format 2, its profiles are read, and
// the next change of one writes it compact. Without the upgrade, the open
// fails (format "…-1", want "…-2").
func TestLocalFormatUpgrade(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l, err := OpenLocal(LocalConfig{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	// As format 1 left it: its marker, and a JSON profile.
	if err := l.db.Set(formatKey, []byte(localFormat1), nil); err != nil {
		t.Fatal(err)
	}
	user := profileKeyOf(userPrefix, userU)
	old := record{LiFatID: "123456", LiFatAt: 1, First: 1}
	if _, err := l.put(ctx, user, old.marshal(), 0, time.Now()); err != nil {
		t.Fatal(err)
	}
	_ = l.Close()

	if l, err = OpenLocal(LocalConfig{Dir: dir}); err != nil {
		t.Fatalf("open a store of format 1: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	v, c, err := l.db.Get(formatKey)
	if err != nil {
		t.Fatal(err)
	}
	if string(v) != localFormat {
		t.Errorf("format %q after the open, want %q", v, localFormat)
	}
	_ = c.Close()
	g := openGraph(t, nil, Config{Store: l, MemoTTL: -1})
	if got := enrich(t, g, trackU); got.LiFatID != "123456" {
		t.Fatalf("the JSON profile enriches %+v", got)
	}
	observe(t, g, identAU) // links the user to a browser and sets its email
	s, err := l.get(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.data) == 0 || s.data[0] != recordBinary {
		t.Fatalf("the changed profile is not compact: %q", s.data)
	}
	var got record
	if err := decodeRecord(s.data, &got); err != nil {
		t.Fatal(err)
	}
	if got.LiFatID != "123456" || got.Email != emailHash || len(got.Links) != 1 {
		t.Errorf("changed profile %+v", got)
	}
	// Through Remote, tools (of any version) read JSON.
	if js := jsonRecord(s.data); !json.Valid(js) {
		t.Errorf("jsonRecord: %q", js)
	}
}

// BenchmarkRecordEncoding is a new user's profile (an email, a link)
// encoded and decoded as JSON and compact.
func BenchmarkRecordEncoding(b *testing.B) {
	r := record{Email: emailHash, EmailAt: 1796083200000, Links: []string{profileKeyOf(anonPrefix, "a")}, First: 1796083200000}
	js, bin := r.marshal(), r.encodeBinary()
	b.Run("marshal/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = r.marshal()
		}
	})
	b.Run("marshal/compact", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = r.encodeBinary()
		}
	})
	for _, c := range []struct {
		name string
		data []byte
	}{{"json", js}, {"compact", bin}} {
		b.Run("decode/"+c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.ReportMetric(float64(len(c.data)), "bytes")
			for b.Loop() {
				var got record
				if err := decodeRecord(c.data, &got); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

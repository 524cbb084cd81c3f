package linkedin

import (
	"strconv"
	"strings"
	"testing"
)

// benchFields is a realistic mapping output: hashed-by-us email, click id,
// value and names.
func benchFields(tb testing.TB) map[string]any {
	return decode(tb, `{"conversionHappenedAt":"2025-12-31T10:34:56.789Z",
		"conversionValue":{"currencyCode":"USD","amount":149.5},"eventId":"ajs-next-1788258896789-5b1c2f3e",
		"email":"Jane.Doe@Example.com","linkedInUUID":"8a1f0c52-6d3e-4b7a-9c21-5e4f7d2a9b10",
		"userInfo":{"firstName":"Jane","lastName":"Doe","companyName":"Acme Corp","title":"VP Engineering","countryCode":"us"},
		"enable_batching":true,"batch_size":5000,"onMappingSave":{"outputs":{"id":"22833300"}}}`)
}

func BenchmarkBuildConversion(b *testing.B) {
	fields := benchFields(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := BuildConversion(fields, "", specNow); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNewBatchRequests(b *testing.B) {
	c, err := BuildConversion(benchFields(b), "", specNow)
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{1, 100, 5000} {
		cs := make([]Conversion, n)
		for i := range cs {
			cs[i] = c
			cs[i].EventID = "evt-" + strconv.Itoa(i)
		}
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			reqs, err := NewBatchRequests(RequestConfig{AccessToken: token}, cs, MaxBatchSize)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(reqs[0].Body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := NewBatchRequests(RequestConfig{AccessToken: token}, cs, MaxBatchSize); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkClassify422(b *testing.B) {
	r := Response{Status: 422, Body: []byte(`{"message":"Index: 0, ERROR :: /conversionValue/amount :: field is required but not found and has no default value\nIndex: 2, ERROR :: /user/userIds/0/idType :: \"SHA256_PHONE\" is not an enum symbol\n","status":422}`)}
	b.ReportAllocs()
	for b.Loop() {
		Classify(r, 5000, specNow)
	}
}

// BenchmarkClassifyBatch200 classifies a 200 answer to a 5,000-element
// BATCH_CREATE, every element stored (the sandbox's and, in shape,
// LinkedIn's).
func BenchmarkClassifyBatch200(b *testing.B) {
	body := []byte(`{"elements":[` + strings.Repeat(`{"status":201},`, 4999) + `{"status":201}]}`)
	r := Response{Status: 200, Body: body}
	b.ReportAllocs()
	for b.Loop() {
		if o := Classify(r, 5000, specNow); o.Class != ClassSuccess {
			b.Fatal(o.Class)
		}
	}
}

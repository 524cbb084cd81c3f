package sandbox

import (
	"bytes"
	"fmt"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"
)

// benchEvent is one event as capstan encodes it (internal/linkedin
// Conversion.AppendJSON): hashed email, click id, value and user info. The
// eight x's are overwritten with a per-request stamp so eventIds stay unique.
func benchEvent(i int) string {
	return fmt.Sprintf(`{"conversion":%q,"conversionHappenedAt":%d,"conversionValue":{"currencyCode":"USD","amount":"149.50"},`+
		`"eventId":"ajs-xxxxxxxx-%06d","user":{"userIds":[{"idType":"SHA256_EMAIL","idValue":%q},`+
		`{"idType":"LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID","idValue":"8a1f0c52-6d3e-4b7a-9c21-5e4f7d2a9b10"}],`+
		`"userInfo":{"firstName":"Jane","lastName":"Doe","companyName":"Acme Corp","title":"VP Engineering","countryCode":"US"}}}`,
		ruleURNStr, specNow.UnixMilli()-86_400_000-int64(i), i, emailHash)
}

// benchBatchBody returns a BATCH_CREATE body of n events and the offsets of
// their eventId stamps.
func benchBatchBody(n int) ([]byte, []int) {
	var b bytes.Buffer
	var stamps []int
	b.WriteString(`{"elements":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		e := benchEvent(i)
		stamps = append(stamps, b.Len()+bytes.Index([]byte(e), []byte("xxxxxxxx")))
		b.WriteString(e)
	}
	b.WriteString("]}")
	return b.Bytes(), stamps
}

// BenchmarkConversionEvents posts valid BATCH_CREATE bodies as capstan sends
// them, and single events, through the handler. ns/conv is wall time per
// conversion, cpu-ns/conv the process's CPU time (all threads, GC included)
// per conversion, where the OS reports it.
func BenchmarkConversionEvents(b *testing.B) {
	for _, n := range []int{1, 100, 5000} {
		b.Run("batch-"+strconv.Itoa(n), func(b *testing.B) { benchConversionEvents(b, n, true, 0) })
	}
	b.Run("single", func(b *testing.B) { benchConversionEvents(b, 1, false, 0) })
	// As bench/delivery.sh runs the sandbox: every conversion kept.
	b.Run("batch-5000-keep", func(b *testing.B) { benchConversionEvents(b, 5000, true, 5_000_000) })
}

// benchConversionEvents posts batches of n events (a single create when
// batch is false) to a sandbox keeping maxConv conversions (0: the default).
func benchConversionEvents(b *testing.B, n int, batch bool, maxConv int) {
	srv, err := New(Config{Now: func() time.Time { return specNow }, Tokens: []TokenSpec{{Token: tok}},
		RatePerMinute: -1, RatePerDay: -1, MaxConversions: maxConv}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Close)
	h := srv.Handler()
	body, stamps := benchBatchBody(n)
	want := 200
	if !batch {
		body, stamps = []byte(benchEvent(0)), stamps[:1]
		stamps[0] -= len(`{"elements":[`)
		want = 201
	}
	headers := restHeaders(tok)
	if batch {
		headers["X-RestLi-Method"] = "BATCH_CREATE"
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	iter := 0
	cpu0, cpuKnown := processCPU()
	for b.Loop() {
		iter++
		stamp := fmt.Appendf(nil, "%08x", iter)
		for _, off := range stamps {
			copy(body[off:], stamp)
		}
		req := httptest.NewRequest("POST", "/rest/conversionEvents", bytes.NewReader(body))
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			b.Fatalf("status %d: %.300s", rec.Code, rec.Body)
		}
	}
	convs := float64(b.N * n)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/convs, "ns/conv")
	if cpu1, ok := processCPU(); ok && cpuKnown {
		b.ReportMetric((cpu1-cpu0)/convs, "cpu-ns/conv")
	}
}

package importer

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"
)

// benchCSV is a CRM export of n rows like bench/import.sh's.
func benchCSV(n int) []byte {
	var b bytes.Buffer
	b.WriteString("userId,email,first_name,last_name,company,revenue,currency,timestamp,order_id\n")
	now := time.Now().Unix()
	for i := range n {
		fmt.Fprintf(&b, "user-%07d,user%07d@example.com,Ann,Lee,Acme Corp,%d.%02d,USD,%d,order-%07d\n", i, i, i%5000, i%100, now-int64(i%7000000), i)
	}
	return b.Bytes()
}

// BenchmarkConvertCSV measures reading and converting rows (a dry run):
// CSV parsing, the event document, ingest's normalisation.
func BenchmarkConvertCSV(b *testing.B) {
	in := benchCSV(10000)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		_, err := Run(context.Background(), bytes.NewReader(in), Options{
			Name: "b.csv", Format: FormatCSV, Source: "crm", Event: "Order Completed",
			DryRun: func([]byte) error { return nil },
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*10000)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkImportCSV measures an import into a real embedded engine
// (fsync always) through stream.Writer.
func BenchmarkImportCSV(b *testing.B) {
	for _, c := range []struct{ batch, inflight int }{{500, 4}, {1000, 4}, {500, 8}, {1000, 8}} {
		b.Run(fmt.Sprintf("batch=%d/inflight=%d", c.batch, c.inflight), func(b *testing.B) { benchImport(b, c.batch, c.inflight) })
	}
}

func benchImport(b *testing.B, batch, inflight int) {
	in := benchCSV(20000)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	rows := 0
	for b.Loop() {
		b.StopTimer()
		_, w := openStore(b)
		b.StartTimer()
		sum, err := Run(context.Background(), bytes.NewReader(in), Options{
			Name: "b.csv", Format: FormatCSV, Source: "crm", Event: "Order Completed", Store: w,
			BatchSize: batch, Inflight: inflight,
		})
		if err != nil || sum.Stored != 20000 {
			b.Fatal(err, sum)
		}
		rows += sum.Stored
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}

package dedup

import "github.com/prometheus/client_golang/prometheus"

// Collector returns a Prometheus collector that reads the index's Stats at
// each scrape: capstan_dedup_keys (an estimate: table entries, replaced and
// expired ones until compaction drops them), capstan_dedup_disk_bytes,
// capstan_dedup_covered_sequence, and the counters since Open
// capstan_dedup_checked_keys_total, capstan_dedup_found_keys_total (the
// duplicates found) and capstan_dedup_added_keys_total. A scrape after
// Close reports none of them. It is safe for concurrent use; the caller
// registers it (cmd/capstan owns the registry).
func (x *Index) Collector() prometheus.Collector {
	d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }
	return &collector{
		x:       x,
		keys:    d("capstan_dedup_keys", "Entries in the de-duplication index's tables (an estimate: replaced and expired ones count until compaction drops them)."),
		disk:    d("capstan_dedup_disk_bytes", "Disk space of the de-duplication index's files."),
		covered: d("capstan_dedup_covered_sequence", "EVENTS stream sequence up to which every event is in the de-duplication index."),
		checked: d("capstan_dedup_checked_keys_total", "Keys looked up in the de-duplication index."),
		found:   d("capstan_dedup_found_keys_total", "Keys looked up and found in the de-duplication index: duplicates."),
		added:   d("capstan_dedup_added_keys_total", "Keys written to the de-duplication index."),
	}
}

type collector struct {
	x                                          *Index
	keys, disk, covered, checked, found, added *prometheus.Desc
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.keys, c.disk, c.covered, c.checked, c.found, c.added} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s, err := c.x.stats()
	if err != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.keys, prometheus.GaugeValue, float64(s.Keys))
	ch <- prometheus.MustNewConstMetric(c.disk, prometheus.GaugeValue, float64(s.DiskBytes))
	ch <- prometheus.MustNewConstMetric(c.covered, prometheus.GaugeValue, float64(s.Covered))
	ch <- prometheus.MustNewConstMetric(c.checked, prometheus.CounterValue, float64(s.Checked))
	ch <- prometheus.MustNewConstMetric(c.found, prometheus.CounterValue, float64(s.Found))
	ch <- prometheus.MustNewConstMetric(c.added, prometheus.CounterValue, float64(s.Added))
}

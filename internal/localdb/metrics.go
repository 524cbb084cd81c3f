package localdb

import "github.com/prometheus/client_golang/prometheus"

// Metrics names a store's metrics (Collector). The names are part of the
// operators' dashboards: a store keeps its prefix.
type Metrics struct {
	// Prefix of the four names: "capstan_identity_store".
	Prefix string
	// Owner names the store in three helps: "the identity graph's" (local
	// store tables, local store files).
	Owner string
	// Removed is the help of <Prefix>_expired_removed_total: what the
	// sweeps remove.
	Removed string
}

// Collector returns a Prometheus collector that reads the store's figures
// at each scrape (Figures): <Prefix>_keys (an estimate: table entries,
// deleted and replaced ones until compaction drops them; the memtables
// are not counted), <Prefix>_disk_bytes and
// <Prefix>_expired_removed_total (the keys Sweep removed since Open) and
// <Prefix>_filter_rebuilds_total (the rebuilds of its Filter since Open). A
// scrape after Close, or whose figures cannot be read, reports none. The
// caller registers it.
func (d *DB) Collector(m Metrics) prometheus.Collector {
	desc := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(m.Prefix+"_"+name, help, nil, nil) }
	return &collector{
		d:       d,
		keys:    desc("keys", "Entries in "+m.Owner+" local store tables (an estimate: deleted and replaced ones count until compaction drops them)."),
		disk:    desc("disk_bytes", "Disk space of "+m.Owner+" local store files."),
		removed: desc("expired_removed_total", m.Removed),
		rebuilds: desc("filter_rebuilds_total", "Rebuilds of "+m.Owner+" local store's filter of absent keys from the keys it holds "+
			"(once the sweeps removed half of the keys the full filter held)."),
	}
}

type collector struct {
	d                   *DB
	keys, disk, removed *prometheus.Desc
	rebuilds            *prometheus.Desc
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.keys
	ch <- c.disk
	ch <- c.removed
	ch <- c.rebuilds
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	keys, disk, err := c.d.Figures()
	if err != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.keys, prometheus.GaugeValue, float64(keys))
	ch <- prometheus.MustNewConstMetric(c.disk, prometheus.GaugeValue, float64(disk))
	ch <- prometheus.MustNewConstMetric(c.removed, prometheus.CounterValue, float64(c.d.swept.Load()))
	ch <- prometheus.MustNewConstMetric(c.rebuilds, prometheus.CounterValue, float64(c.d.rebuilds.Load()))
}

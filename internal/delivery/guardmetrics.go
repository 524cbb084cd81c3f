package delivery

import "github.com/prometheus/client_golang/prometheus"

// Collector returns a Prometheus collector that reads the local guard
// store's figures at each scrape: capstan_eventid_store_keys (an estimate:
// table entries, deleted and replaced ones until compaction drops them;
// the memtables are not counted), capstan_eventid_store_disk_bytes and
// capstan_eventid_store_expired_removed_total (claims and bitmaps the
// sweeps removed). A scrape after Close reports none. The caller
// registers it.
func (l *GuardLocal) Collector() prometheus.Collector {
	d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }
	return &guardCollector{
		l:       l,
		keys:    d("capstan_eventid_store_keys", "Entries in the eventId guard's local store tables (an estimate: deleted and replaced ones count until compaction drops them)."),
		disk:    d("capstan_eventid_store_disk_bytes", "Disk space of the eventId guard's local store files."),
		removed: d("capstan_eventid_store_expired_removed_total", "Expired eventId claims and sent-conversion records removed from the local store by its sweeps."),
	}
}

type guardCollector struct {
	l                   *GuardLocal
	keys, disk, removed *prometheus.Desc
}

func (c *guardCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.keys
	ch <- c.disk
	ch <- c.removed
}

func (c *guardCollector) Collect(ch chan<- prometheus.Metric) {
	c.l.mu.RLock()
	defer c.l.mu.RUnlock()
	if c.l.closed {
		return
	}
	keys, disk, err := c.l.store.Figures()
	if err != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.keys, prometheus.GaugeValue, float64(keys))
	ch <- prometheus.MustNewConstMetric(c.disk, prometheus.GaugeValue, float64(disk))
	ch <- prometheus.MustNewConstMetric(c.removed, prometheus.CounterValue, float64(c.l.removed.Load()))
}

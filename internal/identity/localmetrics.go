package identity

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Collector returns a Prometheus collector that reads the local store's
// figures at each scrape: capstan_identity_store_keys (an estimate: table
// entries, deleted and replaced ones until compaction drops them; the
// memtables are not counted), capstan_identity_store_disk_bytes and
// capstan_identity_store_expired_removed_total (profiles the sweeps
// removed). A scrape after Close reports none. The caller registers it.
func (l *Local) Collector() prometheus.Collector {
	d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }
	return &localCollector{
		l:       l,
		keys:    d("capstan_identity_store_keys", "Entries in the identity graph's local store tables (an estimate: deleted and replaced ones count until compaction drops them)."),
		disk:    d("capstan_identity_store_disk_bytes", "Disk space of the identity graph's local store files."),
		removed: d("capstan_identity_store_expired_removed_total", "Expired identity profiles removed from the local store by its sweeps."),
	}
}

type localCollector struct {
	l                   *Local
	keys, disk, removed *prometheus.Desc
}

func (c *localCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.keys
	ch <- c.disk
	ch <- c.removed
}

func (c *localCollector) Collect(ch chan<- prometheus.Metric) {
	keys, disk, err := c.l.figures()
	if err != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.keys, prometheus.GaugeValue, float64(keys))
	ch <- prometheus.MustNewConstMetric(c.disk, prometheus.GaugeValue, float64(disk))
	ch <- prometheus.MustNewConstMetric(c.removed, prometheus.CounterValue, float64(c.l.removed.Load()))
}

// figures returns the table entries and the disk space of the store.
func (l *Local) figures() (keys, disk int64, err error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return 0, 0, errLocalClosed
	}
	return l.store.Figures()
}

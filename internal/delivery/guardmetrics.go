package delivery

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/capstan-gw/capstan/internal/localdb"
)

// Collector returns a Prometheus collector that reads the local guard
// store's figures at each scrape: capstan_eventid_store_keys (an estimate:
// table entries, deleted and replaced ones until compaction drops them;
// the memtables are not counted), capstan_eventid_store_disk_bytes and
// capstan_eventid_store_expired_removed_total (claims and bitmaps the
// sweeps removed). A scrape after Close reports none. The caller
// registers it.
func (l *GuardLocal) Collector() prometheus.Collector {
	return l.store.Collector(localdb.Metrics{
		Prefix:  "capstan_eventid_store",
		Owner:   "the eventId guard's",
		Removed: "Expired eventId claims and sent-conversion records removed from the local store by its sweeps.",
	})
}

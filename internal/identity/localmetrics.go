package identity

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/capstan-gw/capstan/internal/localdb"
)

// Collector returns a Prometheus collector that reads the local store's
// figures at each scrape: capstan_identity_store_keys (an estimate: table
// entries, deleted and replaced ones until compaction drops them; the
// memtables are not counted), capstan_identity_store_disk_bytes and
// capstan_identity_store_expired_removed_total (profiles the sweeps
// removed). A scrape after Close reports none. The caller registers it.
func (l *Local) Collector() prometheus.Collector {
	return l.store.Collector(localdb.Metrics{
		Prefix:  "capstan_identity_store",
		Owner:   "the identity graph's",
		Removed: "Expired identity profiles removed from the local store by its sweeps.",
	})
}

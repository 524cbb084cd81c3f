package stream

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
)

// StoreCollector returns a Prometheus collector that reads, at each scrape,
// how full the store is: capstan_store_used_bytes and
// capstan_store_limit_bytes, with scope "events" (the EVENTS stream against
// engine.max_bytes, reported only when that is set) and scope "engine"
// (everything JetStream stores for capstan — events, dead letters, buckets
// — against the account's storage limit, or the embedded server's
// JetStream store limit: by default 75% of the disk free when it started,
// at most 1 TB). When either is reached, ingest answers 503. A limit that
// is not known (an external cluster without an account limit) is not
// reported. A scrape that cannot read the engine reports nothing. It is
// safe for concurrent use.
func (e *Engine) StoreCollector() prometheus.Collector {
	return &storeCollector{
		e: e,
		used: prometheus.NewDesc("capstan_store_used_bytes",
			"Bytes stored: scope events is the EVENTS stream, scope engine all that JetStream stores for capstan (streams and buckets).", []string{"scope"}, nil),
		limit: prometheus.NewDesc("capstan_store_limit_bytes",
			"Limit of capstan_store_used_bytes of the same scope (events: engine.max_bytes; engine: the JetStream storage limit); ingest answers 503 when it is reached.", []string{"scope"}, nil),
	}
}

type storeCollector struct {
	e           *Engine
	used, limit *prometheus.Desc
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.used
	ch <- c.limit
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), dlqScrapeTimeout)
	defer cancel()
	s, err := c.e.StoreState(ctx)
	if err != nil {
		c.e.log.Debug("store metrics: state not available", "error", err)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.used, prometheus.GaugeValue, float64(s.EventsBytes), "events")
	if s.EventsLimit > 0 {
		ch <- prometheus.MustNewConstMetric(c.limit, prometheus.GaugeValue, float64(s.EventsLimit), "events")
	}
	ch <- prometheus.MustNewConstMetric(c.used, prometheus.GaugeValue, float64(s.EngineBytes), "engine")
	if s.EngineLimit > 0 {
		ch <- prometheus.MustNewConstMetric(c.limit, prometheus.GaugeValue, float64(s.EngineLimit), "engine")
	}
}

// StoreState is how much the store holds and may hold; a limit of 0 is
// none, or none known.
type StoreState struct {
	// EventsBytes is the EVENTS stream's size, EventsLimit its max_bytes.
	EventsBytes uint64
	EventsLimit int64
	// EngineBytes is all JetStream stores for capstan's account,
	// EngineLimit the account's storage limit or, without one, the
	// embedded server's.
	EngineBytes uint64
	EngineLimit int64
}

// StoreState reads the EVENTS stream's and the JetStream account's storage
// use and limits.
func (e *Engine) StoreState(ctx context.Context) (StoreState, error) {
	var st StoreState
	s, err := e.js.Stream(ctx, EventsStream)
	if err != nil {
		return st, err
	}
	info := s.CachedInfo()
	st.EventsBytes = info.State.Bytes
	st.EventsLimit = max(info.Config.MaxBytes, 0)
	ai, err := e.js.AccountInfo(ctx)
	if err != nil {
		return st, err
	}
	st.EngineBytes = ai.Store
	st.EngineLimit = max(ai.Limits.MaxStore, 0)
	if st.EngineLimit == 0 && e.ns != nil {
		st.EngineLimit = max(e.ns.JetStreamConfig().MaxStore, 0)
	}
	return st, nil
}

package ingest

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	requests *prometheus.CounterVec
	events   *prometheus.CounterVec
	drops    *prometheus.CounterVec
	// verifications counts browser events that carried a userHash, by
	// source and result (verified, failed).
	verifications *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	// storeWait is the part of duration spent in the store's Append, for
	// requests with events to store: encoding, the group-commit queue,
	// publishing, the acknowledgement and the fsync.
	storeWait *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer, b *budget) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "capstan_ingest_requests_total",
			Help: "Tracking API requests by source, endpoint and HTTP status.",
		}, []string{"source", "endpoint", "status"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "capstan_ingest_events_total",
			Help: "Events by source and result (accepted, duplicate, dropped).",
		}, []string{"source", "result"}),
		drops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "capstan_ingest_dropped_events_total",
			Help: "Events dropped by per-event validation, by source and code.",
		}, []string{"source", "code"}),
		verifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "capstan_ingest_identity_verifications_total",
			Help: "Browser events carrying context.capstan.userHash, by source and result (verified, failed).",
		}, []string{"source", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "capstan_ingest_request_duration_seconds",
			Help:    "Time from request start to response, durable write included.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"endpoint"}),
		storeWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "capstan_ingest_store_wait_seconds",
			Help:    "Time a request with events to store waited for them to be durable (encoding, group-commit queue, publish, acknowledgement, fsync): the store's part of capstan_ingest_request_duration_seconds.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"endpoint"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.events, m.drops, m.verifications, m.duration, m.storeWait, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "capstan_ingest_inflight_body_bytes",
			Help: "Request body bytes held by requests in progress (counted as they arrive, in 16 KiB grants); at server.max_inflight_body_bytes requests get 503 with Retry-After.",
		}, func() float64 { return float64(b.inflight()) }))
	}
	return m
}

package delivery

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the delivery metrics of every destination. Create one with
// NewMetrics and share it between runners.
type Metrics struct {
	events      *prometheus.CounterVec
	conversions *prometheus.CounterVec
	deadLetters *prometheus.CounterVec
	requests    *prometheus.CounterVec
	retries     *prometheus.CounterVec
	limited     *prometheus.CounterVec
	batchSize   *prometheus.HistogramVec
	latency     *prometheus.HistogramVec
	endToEnd    *prometheus.HistogramVec
	paused      *prometheus.GaugeVec
	tokenExpiry *prometheus.GaugeVec
	collisions  *prometheus.CounterVec
	alreadySent *prometheus.CounterVec
}

// NewMetrics registers the delivery metrics on reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "capstan_delivery_events_total",
			Help: "Events seen by a destination, by outcome: received, delivered, not_matched, filtered_source, filtered_integrations, filtered_consent, suppressed, invalid, dead_lettered, skipped_unusable (a stored event that does not parse, from a source the destination does not take: not dead-lettered), held (the identity graph did not answer: delivered again later, counted each time).",
		}, []string{"destination", "outcome"}),
		conversions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "capstan_delivery_conversions_total",
			Help: "Conversions delivered (accepted by the destination), by mapping and by the identifiers they carried (match coverage): li_fat_id, email (hash), both or neither.",
		}, []string{"destination", "mapping", "ids"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "capstan_dlq_events_total",
			Help: "Conversions written to the dead-letter queue, by reason.",
		}, []string{"destination", "reason"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "capstan_delivery_requests_total",
			Help: "Requests sent to LinkedIn, by result class.",
		}, []string{"destination", "class"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "capstan_delivery_retries_total",
			Help: "Requests sent again after a retryable failure.",
		}, []string{"destination"}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "capstan_delivery_rate_limited_total",
			Help: "Requests held back by capstan's own rate limiter (local) or refused by LinkedIn with 429 (remote).",
		}, []string{"destination", "by"}),
		batchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "capstan_delivery_batch_size",
			Help:    "Conversions per request sent to LinkedIn.",
			Buckets: []float64{1, 2, 5, 10, 50, 100, 500, 1000, 2500, 5000},
		}, []string{"destination"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "capstan_delivery_request_duration_seconds",
			Help:    "LinkedIn's answer time per request.",
			Buckets: prometheus.DefBuckets,
		}, []string{"destination"}),
		endToEnd: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "capstan_delivery_end_to_end_seconds",
			Help:    "From the event's receivedAt to LinkedIn's 2xx.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2, 3, 5, 10, 15, 20, 30, 45, 60, 90, 120, 300, 900, 3600},
		}, []string{"destination"}),
		paused: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "capstan_delivery_paused",
			Help: "1 while a destination is paused (revoked token, unsupported API version, missing permission).",
		}, []string{"destination"}),
		tokenExpiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "capstan_destination_token_expiry_seconds",
			Help: "Seconds until the destination's access token expires (when known).",
		}, []string{"destination"}),
		collisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "capstan_delivery_event_id_collisions_total",
			Help: "Conversions that repeated the eventId of another conversion of the same rule with different content within 7 days, by action: suffix (sent under a derived eventId) or dead_letter.",
		}, []string{"destination", "mapping", "action"}),
		alreadySent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "capstan_delivery_already_sent_total",
			Help: "Conversions not sent because the destination had already accepted the same conversion (same rule, eventId and content) within 7 days: their event was read again after a lost acknowledgement, a crash, a delivery lease move or a replay.",
		}, []string{"destination", "mapping"}),
	}
	if reg != nil {
		reg.MustRegister(m.events, m.conversions, m.deadLetters, m.requests, m.retries, m.limited, m.batchSize, m.latency, m.endToEnd, m.paused, m.tokenExpiry, m.collisions, m.alreadySent)
	}
	return m
}

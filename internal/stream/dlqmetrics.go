package stream

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DLQCollector returns a Prometheus collector that reads the DLQ stream's
// state at each scrape: capstan_dlq_messages and capstan_dlq_bytes, what
// it holds, and capstan_dlq_removed_total, the dead letters written and no
// longer kept: replayed (capstan dlq replay), or dropped oldest first by
// the stream's limits (engine.dlq.max_age, engine.dlq.max_bytes). JetStream
// counts no limit drops of its own; `nats stream info DLQ` shows the same
// state (First Sequence - 1 messages are gone from the front). A scrape
// that cannot read the stream reports none of the three. It is safe for
// concurrent use.
func (e *Engine) DLQCollector() prometheus.Collector {
	return &dlqCollector{
		e:        e,
		messages: prometheus.NewDesc("capstan_dlq_messages", "Dead letters held in the DLQ stream.", nil, nil),
		bytes:    prometheus.NewDesc("capstan_dlq_bytes", "Size of the DLQ stream (limit: engine.dlq.max_bytes).", nil, nil),
		removed: prometheus.NewDesc("capstan_dlq_removed_total",
			"Dead letters written and no longer kept: replayed, or dropped oldest first by engine.dlq.max_age or engine.dlq.max_bytes.", nil, nil),
	}
}

type dlqCollector struct {
	e                        *Engine
	messages, bytes, removed *prometheus.Desc
}

// dlqScrapeTimeout bounds the stream info request of one scrape.
const dlqScrapeTimeout = 2 * time.Second

func (c *dlqCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.messages
	ch <- c.bytes
	ch <- c.removed
}

func (c *dlqCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), dlqScrapeTimeout)
	defer cancel()
	s, err := c.e.DLQState(ctx)
	if err != nil {
		c.e.log.Debug("DLQ metrics: stream state not available", "error", err)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.messages, prometheus.GaugeValue, float64(s.Messages))
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(s.Bytes))
	ch <- prometheus.MustNewConstMetric(c.removed, prometheus.CounterValue, float64(s.Removed))
}

// DLQState is what the DLQ stream holds and has let go.
type DLQState struct {
	// Messages and Bytes are the dead letters held and their size.
	Messages, Bytes uint64
	// Removed counts the dead letters written and no longer held:
	// replayed, or dropped by the stream's age and size limits.
	Removed uint64
	// MaxBytes and MaxAge are the stream's limits (MaxBytes -1: none).
	MaxBytes int64
	MaxAge   time.Duration
}

// DLQState reads the DLQ stream's state and limits.
func (e *Engine) DLQState(ctx context.Context) (DLQState, error) {
	s, err := e.js.Stream(ctx, DLQStream)
	if err != nil {
		return DLQState{}, fmt.Errorf("stream %s: %w", DLQStream, err)
	}
	info := s.CachedInfo()
	st := DLQState{Messages: info.State.Msgs, Bytes: info.State.Bytes, MaxBytes: info.Config.MaxBytes, MaxAge: info.Config.MaxAge}
	if info.State.LastSeq > st.Messages {
		st.Removed = info.State.LastSeq - st.Messages
	}
	return st, nil
}

package main

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"mailq/metrics"
	"mailq/queue"
)

// The queue gauges of docs/observability.md "Metrics". They are read from the
// store at scrape time rather than kept in step by every path that changes
// a message, so they can never drift from what `mailqctl stats` shows.
var (
	queueMessagesDesc = prometheus.NewDesc("mailq_queue_messages",
		"Messages in the queue by status (queued, active, deferred, held, done, damaged); the same counts as `mailqctl stats`.",
		[]string{"status"}, nil)
	queueOldestDesc = prometheus.NewDesc("mailq_queue_oldest_message_age_seconds",
		"Age of the oldest message not yet done, in seconds; 0 when the queue is empty.",
		nil, nil)
)

// queueCollector reports the queue gauges from Store.Stats at each scrape.
type queueCollector struct {
	store queue.Store
	log   zerolog.Logger
}

func (c queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueMessagesDesc
	ch <- queueOldestDesc
}

// Collect leaves the gauges out of this scrape when the store cannot be
// read (for instance while it closes at shutdown): a missing series is
// what Prometheus alerts (absent()) expect, whereas an error would fail
// the whole scrape and hide the counters too.
func (c queueCollector) Collect(ch chan<- prometheus.Metric) {
	st, err := c.store.Stats()
	if err != nil {
		c.log.Error().Err(err).Msg("cannot read queue counts for /metrics; mailq_queue_* are missing from this scrape")
		return
	}
	for _, s := range []struct {
		status string
		n      int
	}{
		{"queued", st.Queued},
		{"active", st.Active},
		{"deferred", st.Deferred},
		{"held", st.Held},
		{"done", st.Done},
		{"damaged", st.Damaged},
	} {
		ch <- prometheus.MustNewConstMetric(queueMessagesDesc, prometheus.GaugeValue, float64(s.n), s.status)
	}
	ch <- prometheus.MustNewConstMetric(queueOldestDesc, prometheus.GaugeValue, st.OldestAge.Seconds())
}

var (
	queueMetricsMu         sync.Mutex
	registeredQueueMetrics prometheus.Collector
)

// registerQueueMetrics puts the queue gauges for store on metrics.Registry,
// replacing those of a store registered before (only tests start the
// components twice in one process).
func registerQueueMetrics(store queue.Store, log zerolog.Logger) {
	queueMetricsMu.Lock()
	defer queueMetricsMu.Unlock()
	if registeredQueueMetrics != nil {
		metrics.Registry.Unregister(registeredQueueMetrics)
	}
	c := queueCollector{store: store, log: log.With().Str("component", "metrics").Logger()}
	metrics.Registry.MustRegister(c)
	registeredQueueMetrics = c
}

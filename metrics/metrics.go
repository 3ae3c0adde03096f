// Package metrics holds mailq's Prometheus collectors (docs/observability.md "Metrics").
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Registry holds every mailq collector plus the Go runtime and process ones.
var Registry = prometheus.NewRegistry()

var (
	Enqueued = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mailq_enqueued_total", Help: "Messages accepted durably, by intake path.",
	}, []string{"source"})
	Deliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mailq_deliveries_total", Help: "Recipients delivered, by route.",
	}, []string{"route"})
	Deferrals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mailq_deferrals_total", Help: "Recipients deferred for a later retry, by route.",
	}, []string{"route"})
	Bounces = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mailq_bounces_total", Help: "Recipients bounced, by route.",
	}, []string{"route"})
	StatusClass = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mailq_replies_total", Help: "Recipient outcomes by route, decision and enhanced status class (2, 4, 5 or none).",
	}, []string{"route", "decision", "class"})
	AttemptDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "mailq_attempt_duration_seconds", Help: "Duration of delivery attempts, by route.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 12),
	}, []string{"route"})
	ConnectionsOpen = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "mailq_connections_open", Help: "SMTP client connections open, by route.",
	}, []string{"route"})
	MaildropFailed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mailq_maildrop_failed_total", Help: "Maildrop files moved to failed/.",
	})
	TLSPolicy = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mailq_tls_policy_total",
		Help: "Connections of MX routes by TLS policy (none, opportunistic, configured-encrypt, configured-verify, mta-sts-enforce, mta-sts-testing) and result (tls, plaintext, failed, violation).",
	}, []string{"policy", "result"})
	// QueueCommits and QueueCommitWrites show the group commit at work:
	// writes per commit (enqueues share an fsync) is their ratio.
	QueueCommits = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mailq_queue_commits_total", Help: "Durable write transactions (one fsync each) of the queue.",
	})
	QueueCommitWrites = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mailq_queue_commit_writes_total", Help: "Writes (enqueues, outcomes, operator actions) carried by those transactions.",
	})
	DSNSent = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mailq_dsn_sent_total", Help: "Delivery status notifications queued, by action (failed, delayed, relayed).",
	}, []string{"action"})
)

func init() {
	Registry.MustRegister(Enqueued, Deliveries, Deferrals, Bounces, StatusClass,
		AttemptDuration, ConnectionsOpen, MaildropFailed, DSNSent, TLSPolicy, QueueCommits, QueueCommitWrites,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
}

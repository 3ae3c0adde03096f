package metrics

import "github.com/prometheus/client_golang/prometheus"

var (
	WebhookPosts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mailq_webhook_posts_total",
		Help: "Webhook POST tries, by webhook and result (ok, error: retried later, expired: given up after max_age).",
	}, []string{"webhook", "result"})
	WebhookPending = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "mailq_webhook_pending",
		Help: "Events not yet acknowledged by the webhook's endpoint (the log's newest id minus the webhook's cursor).",
	}, []string{"webhook"})
)

func init() { Registry.MustRegister(WebhookPosts, WebhookPending) }

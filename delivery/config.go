package delivery

import (
	"github.com/rs/zerolog"

	"mailq/config"
	"mailq/policy"
	"mailq/queue"
)

// RoutesFromConfig turns the [[route]] tables (already validated, each with
// [retry] merged into its RetryPolicy by config) into routes, in order.
func RoutesFromConfig(routes []config.Route) []Route {
	out := make([]Route, 0, len(routes))
	for _, r := range routes {
		out = append(out, Route{Settings: r.Settings, Retry: RetryPolicyFromConfig(r.RetryPolicy)})
	}
	return out
}

// RetryPolicyFromConfig converts a [retry] table.
func RetryPolicyFromConfig(r config.Retry) policy.RetryPolicy {
	return policy.RetryPolicy{
		Initial:      r.Initial.Duration,
		Multiplier:   r.Multiplier,
		MaxInterval:  r.MaxInterval.Duration,
		Jitter:       r.Jitter,
		MaxLifetime:  r.MaxLifetime.Duration,
		DelayWarning: r.DelayWarning.Duration,
	}
}

// OptionsFromConfig fills Options from a loaded configuration, for the
// daemon: cmd/mailq only adds the store and the logger.
func OptionsFromConfig(c *config.Config, store *queue.Store, log zerolog.Logger) Options {
	return Options{
		Store:                 store,
		Routes:                RoutesFromConfig(c.Routes),
		Workers:               c.Delivery.Workers,
		PerRouteConnections:   c.Delivery.PerRouteConnections,
		MessagesPerConnection: c.Delivery.MessagesPerConnection,
		IdleTimeout:           c.Delivery.IdleTimeout.Duration,
		ShutdownGrace:         c.ShutdownGrace.Duration,
		Hostname:              c.Hostname,
		Logger:                log,
	}
}

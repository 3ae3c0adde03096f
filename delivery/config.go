package delivery

import (
	"path/filepath"

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
		route := Route{Settings: r.Settings, Retry: RetryPolicyFromConfig(r.RetryPolicy)}
		if r.MX {
			count, per, _ := config.ParseRate(r.Rate) // validated by config
			route.MX = &MXRoute{Resolver: r.Resolver, MaxTries: r.MaxMXTries,
				DestinationConnections: r.DestinationConnections, Rate: Rate{Count: count, Per: per}}
		}
		out = append(out, route)
	}
	return out
}

// MXOptionsFromConfig converts [mx] and [[tls_policy]].
func MXOptionsFromConfig(c *config.Config) MXOptions {
	o := MXOptions{
		Resolver:  c.MX.Resolver,
		Timeout:   c.MX.Timeout.Duration,
		CacheSize: c.MX.CacheSize,
		DownFor:   c.MX.HostDown.Duration,
		DownMax:   c.MX.HostDownMax.Duration,
	}
	for _, p := range c.TLSPolicies {
		o.TLSPolicies = append(o.TLSPolicies, TLSPolicy{Domain: p.Domain, Require: p.Require})
	}
	if c.MX.MTASTS {
		o.STS = &STSOptions{CAFile: c.MX.MTASTSCA, CacheFile: filepath.Join(c.DataDir, "mta-sts.json")}
	}
	return o
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
func OptionsFromConfig(c *config.Config, store queue.Store, log zerolog.Logger) Options {
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
		MX:                    MXOptionsFromConfig(c),
	}
}

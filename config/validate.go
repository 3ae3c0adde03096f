package config

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// settingsValidator is smtpproto.Settings' own check of a route's keys
// (impossible combinations, ports, password sources). It is asserted at
// run time so config does not depend on the method's presence.
type settingsValidator interface{ Validate() error }

// Validate reports every value that cannot work, each naming its section
// or route and key.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("config: "+format, args...))
	}
	positive := func(where string, d Duration) {
		if d.Duration <= 0 {
			bad("%s must be a positive duration, got %q", where, d.Duration.String())
		}
	}

	if c.DataDir == "" {
		bad("key \"data_dir\" must not be empty")
	}
	positive("key \"retention\"", c.Retention)
	positive("key \"shutdown_grace\"", c.ShutdownGrace)
	if c.Hostname == "" || strings.ContainsAny(c.Hostname, " \t\r\n") {
		bad("key \"hostname\" must be a host name without spaces, got %q", c.Hostname)
	}
	if c.MaxMessageSize < 1 {
		bad("key \"max_message_size\" must be at least 1 byte, got %d", c.MaxMessageSize)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("key \"log_level\" must be debug, info, warn or error, got %q", c.LogLevel)
	}
	switch c.LogFormat {
	case "json", "console":
	default:
		bad("key \"log_format\" must be json or console, got %q", c.LogFormat)
	}

	if c.Control.Socket == "" {
		bad("[control]: key \"socket\" must not be empty")
	}
	if c.Maildrop.Dir == "" {
		bad("[maildrop]: key \"dir\" must not be empty")
	}
	positive("[maildrop]: key \"poll_interval\"", c.Maildrop.PollInterval)

	atLeastOne := func(where string, n int) {
		if n < 1 {
			bad("%s must be at least 1, got %d", where, n)
		}
	}
	atLeastOne("[delivery]: key \"workers\"", c.Delivery.Workers)
	atLeastOne("[delivery]: key \"per_route_connections\"", c.Delivery.PerRouteConnections)
	atLeastOne("[delivery]: key \"messages_per_connection\"", c.Delivery.MessagesPerConnection)
	positive("[delivery]: key \"idle_timeout\"", c.Delivery.IdleTimeout)

	errs = append(errs, validateRetry("[retry]", c.Retry)...)

	if c.Metrics.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Metrics.Listen); err != nil {
			bad("[metrics]: key \"listen\" must be host:port such as \"127.0.0.1:9125\", got %q", c.Metrics.Listen)
		}
	}

	errs = append(errs, c.validateSubmissions()...)
	errs = append(errs, c.validateRoutes()...)
	errs = append(errs, c.validateMX()...)
	errs = append(errs, c.validateWebhooks()...)
	errs = append(errs, c.validateQueue()...)
	return errors.Join(errs...)
}

func validateRetry(where string, r Retry) []error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("config: %s: "+format, append([]any{where}, args...)...))
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"initial", r.Initial.Duration}, {"max_interval", r.MaxInterval.Duration},
		{"max_lifetime", r.MaxLifetime.Duration}, {"delay_warning", r.DelayWarning.Duration}} {
		if d.v <= 0 {
			bad("key %q must be a positive duration, got %q", d.key, d.v.String())
		}
	}
	if r.Multiplier < 1 {
		bad("key \"multiplier\" must be at least 1 (intervals never shrink), got %v", r.Multiplier)
	}
	if r.Jitter < 0 || r.Jitter >= 1 {
		bad("key \"jitter\" must be at least 0 and below 1 (0.1 = ±10%%), got %v", r.Jitter)
	}
	if r.MaxInterval.Duration > 0 && r.MaxInterval.Duration < r.Initial.Duration {
		bad("key \"max_interval\" (%s) must not be below \"initial\" (%s)", r.MaxInterval.Duration, r.Initial.Duration)
	}
	return errs
}

func (c *Config) validateSubmissions() []error {
	var errs []error
	seen := map[string]bool{}
	for i, s := range c.Submission {
		where := fmt.Sprintf("submission #%d", i+1)
		if s.Listen != "" {
			where = fmt.Sprintf("submission %q", s.Listen)
		}
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("config: %s: "+format, append([]any{where}, args...)...))
		}
		if _, _, err := net.SplitHostPort(s.Listen); err != nil {
			bad("key \"listen\" must be host:port such as \"127.0.0.1:2525\", got %q", s.Listen)
		} else if seen[s.Listen] {
			bad("key \"listen\": another [[submission]] listens on the same address")
		}
		seen[s.Listen] = true
		if (s.TLSCertFile == "") != (s.TLSKeyFile == "") {
			bad("keys \"tls.cert_file\" and \"tls.key_file\" go together: set both or neither")
		}
		if (s.ImplicitTLS || s.RequireTLS) && s.TLSCertFile == "" {
			bad("\"tls.implicit\" and \"require_tls\" need \"tls.cert_file\" and \"tls.key_file\"")
		}
		if s.MaxConns < 1 {
			bad("key \"max_connections\" must be at least 1, got %d", s.MaxConns)
		}
		if s.MaxConnsPerIP < 1 {
			bad("key \"max_connections_per_ip\" must be at least 1, got %d", s.MaxConnsPerIP)
		}
		if s.TransferTimeout.Duration <= 0 {
			bad("key \"transfer_timeout\" must be a positive duration, got %q", s.TransferTimeout.Duration.String())
		}
		if s.MaxRecipients < 1 {
			bad("key \"max_recipients\" must be at least 1, got %d", s.MaxRecipients)
		}
		if s.Timeout.Duration <= 0 {
			bad("key \"timeout\" must be a positive duration, got %q", s.Timeout.Duration.String())
		}
	}
	return errs
}

func (c *Config) validateRoutes() []error {
	if len(c.Routes) == 0 {
		return []error{errors.New("config: no [[route]]: mail could go nowhere; add one with domains = [\"*\"]")}
	}
	var errs []error
	names := map[string]bool{}
	domainOwner := map[string]string{}
	for i := range c.Routes {
		r := &c.Routes[i]
		where := fmt.Sprintf("route %q", r.Name)
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("config: %s: "+format, append([]any{where}, args...)...))
		}
		switch {
		case r.Name == "":
			where = fmt.Sprintf("route #%d", i+1)
			bad("key \"name\" must not be empty (logs, metrics and `show` name routes by it)")
		case names[r.Name]:
			bad("key \"name\": another route has the same name")
		}
		names[r.Name] = true
		if len(r.Domains) == 0 {
			bad("key \"domains\" must list at least one domain, or \"*\" for every other domain")
		}
		for _, d := range r.Domains {
			key := strings.ToLower(d)
			switch {
			case d == "" || strings.ContainsAny(d, " \t@"):
				bad("key \"domains\": %q is not a domain (write \"example.com\", \".example.com\" for subdomains, or \"*\")", d)
			case domainOwner[key] != "":
				bad("key \"domains\": %q is already routed by route %q", d, domainOwner[key])
			default:
				domainOwner[key] = r.Name
			}
		}
		switch {
		case r.MX && r.Host != "":
			bad("key \"host\" and mx = true exclude each other: an MX route finds its hosts in DNS; remove one")
		case !r.MX && r.Host == "":
			bad("key \"host\" must not be empty (or set mx = true to deliver to each domain's mail exchangers)")
		case !r.MX && (r.Resolver != "" || r.MaxMXTries != 0 || r.DestinationConnections != 0 || r.Rate != ""):
			bad("keys \"resolver\", \"max_mx_tries\", \"destination_connections\" and \"rate\" need mx = true")
		}
		errs = append(errs, validateMXRoute(where, r)...)
		if len(r.Retry) > 0 { // an inherited [retry] was checked once already
			errs = append(errs, validateRetry(where+" [route.retry]", r.RetryPolicy)...)
		}
		if v, ok := any(&r.Settings).(settingsValidator); ok {
			// Its errors already name the route and the key.
			errs = append(errs, prefixEach("config: ", v.Validate())...)
		}
	}
	return errs
}

// prefixEach splits a joined error into its parts and prefixes each.
func prefixEach(prefix string, err error) []error {
	if err == nil {
		return nil
	}
	parts := []error{err}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		parts = joined.Unwrap()
	}
	out := make([]error, 0, len(parts))
	for _, e := range parts {
		out = append(out, fmt.Errorf("%s%w", prefix, e))
	}
	return out
}

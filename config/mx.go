package config

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// ParseRate reads a message rate, "N/s", "N/min" or "N/h" ("" = unlimited).
func ParseRate(s string) (count int, per time.Duration, err error) {
	if strings.TrimSpace(s) == "" {
		return 0, 0, nil
	}
	n, unit, ok := strings.Cut(strings.ReplaceAll(s, " ", ""), "/")
	count, err = strconv.Atoi(n)
	if !ok || err != nil || count < 1 {
		return 0, 0, fmt.Errorf("rate %q: want a count per unit such as \"100/min\"", s)
	}
	per = map[string]time.Duration{"s": time.Second, "sec": time.Second, "second": time.Second,
		"m": time.Minute, "min": time.Minute, "minute": time.Minute, "h": time.Hour, "hour": time.Hour}[strings.ToLower(unit)]
	if per == 0 {
		return 0, 0, fmt.Errorf("rate %q: the unit must be s, min or h", s)
	}
	return count, per, nil
}

// validResolver accepts "host:port", an IP address or a host name.
func validResolver(v string) bool {
	if h, p, err := net.SplitHostPort(v); err == nil {
		n, err := strconv.Atoi(p)
		return h != "" && err == nil && n > 0 && n < 65536
	}
	return v != "" && !strings.ContainsAny(v, " /")
}

func validateMXRoute(where string, r *Route) []error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("config: %s: "+format, append([]any{where}, args...)...))
	}
	if r.Resolver != "" && !validResolver(r.Resolver) {
		bad("key \"resolver\" must be host:port such as \"127.0.0.1:53\", got %q", r.Resolver)
	}
	if r.MaxMXTries < 0 {
		bad("key \"max_mx_tries\" must be at least 1 (0 = default 5), got %d", r.MaxMXTries)
	}
	if r.DestinationConnections < 0 {
		bad("key \"destination_connections\" must be at least 1 (0 = default 8), got %d", r.DestinationConnections)
	}
	if _, _, err := ParseRate(r.Rate); err != nil {
		bad("key \"rate\": %v", err)
	}
	return errs
}

func (c *Config) validateMX() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("config: "+format, args...)) }
	if c.MX.Resolver != "" && !validResolver(c.MX.Resolver) {
		bad("[mx]: key \"resolver\" must be host:port such as \"127.0.0.1:53\", got %q", c.MX.Resolver)
	}
	if c.MX.Timeout.Duration <= 0 {
		bad("[mx]: key \"timeout\" must be a positive duration, got %q", c.MX.Timeout.Duration.String())
	}
	if c.MX.CacheSize < 1 {
		bad("[mx]: key \"cache_size\" must be at least 1, got %d", c.MX.CacheSize)
	}
	if c.MX.HostDown.Duration <= 0 {
		bad("[mx]: key \"host_down\" must be a positive duration, got %q", c.MX.HostDown.Duration.String())
	}
	if c.MX.HostDownMax.Duration < c.MX.HostDown.Duration {
		bad("[mx]: key \"host_down_max\" (%s) must not be below \"host_down\" (%s)", c.MX.HostDownMax.Duration, c.MX.HostDown.Duration)
	}
	seen := map[string]bool{}
	for i, p := range c.TLSPolicies {
		where := fmt.Sprintf("tls_policy #%d", i+1)
		d := strings.ToLower(strings.TrimSpace(p.Domain))
		switch {
		case d == "" || d == "." || strings.ContainsAny(d, " \t@*"):
			bad("%s: key \"domain\" must be a domain (\"example.com\", or \".example.com\" for its subdomains), got %q", where, p.Domain)
		case seen[d]:
			bad("%s: domain %q has another [[tls_policy]]", where, p.Domain)
		}
		seen[d] = true
		switch p.Require {
		case "verify", "encrypt", "none":
		default:
			bad("%s: key \"require\" must be verify, encrypt or none, got %q", where, p.Require)
		}
	}
	return errs
}

// Package delivery drains the queue: it routes recipients, keeps SMTP connections per route, and records every outcome.
package delivery

import (
	"fmt"
	"strings"

	"mailq/policy"
	"mailq/smtpproto"
)

// Route is one configured next hop: how to talk to it (smtpproto settings,
// including the domains it serves) and its retry policy (the global [retry]
// table with the route's [route.retry] merged over it).
type Route struct {
	Settings smtpproto.Settings
	Retry    policy.RetryPolicy
	// MX, when set, sends each recipient domain's mail to its mail
	// exchangers instead of Settings.Host.
	MX *MXRoute
}

// Name is the route's configured name, or "host:port" when it has none, so
// that logs and metrics always have something to show.
func (r *Route) Name() string {
	if r.Settings.Name != "" {
		return r.Settings.Name
	}
	if r.MX != nil {
		return defaultMXRouteName
	}
	return fmt.Sprintf("%s:%d", r.Settings.Host, r.Settings.Port)
}

// envelopeFrom is the MAIL FROM for a message with this sender on this
// route: the route's `from` (mail.smtp.from) when set, so a relay that
// insists on one return address gets it; else the message's own sender.
// The null sender is never replaced: notices must keep <> so they can
// never cause a bounce loop (RFC 5321 §4.5.5, RFC 3464 §2).
func (r *Route) envelopeFrom(sender string) string {
	if sender == "" || r.Settings.From == "" {
		return sender
	}
	return r.Settings.From
}

// NoRouteStatus is the RFC 3463 status given to a recipient whose domain no
// route serves (no exact, suffix or "*" match). X.4.4 "unable to route"
// (RFC 3463 §3.5) says what happened: mailq has no next hop for the
// domain. It is permanent because the routing table is the operator's
// deliberate choice; retrying would only delay the bounce.
const NoRouteStatus = "5.4.4"

// router maps recipient domains to routes. Matching is case-insensitive:
// an exact domain beats a ".suffix" (longest suffix first), which beats "*".
// ".example.org" matches a.example.org and a.b.example.org but not
// example.org itself.
type router struct {
	exact    map[string]*Route
	suffixes []suffixRoute // longest first
	fallback *Route
}

type suffixRoute struct {
	suffix string // with the leading dot, lower case
	route  *Route
}

// newRouter builds a routing table. Two routes claiming the same domain
// entry is a configuration error (config validates it too; this is a
// second line of defence so a reload cannot silently shadow a route).
func newRouter(routes []Route) (*router, error) {
	rt := &router{exact: make(map[string]*Route)}
	seen := make(map[string]string)
	for i := range routes {
		r := &routes[i]
		if len(r.Settings.Domains) == 0 {
			return nil, fmt.Errorf("delivery: route %q serves no domains: set domains = [\"*\"] or a list of domains", r.Name())
		}
		for _, d := range r.Settings.Domains {
			key := strings.ToLower(strings.TrimSpace(d))
			if key == "" || key == "." {
				return nil, fmt.Errorf("delivery: route %q has an empty domain entry", r.Name())
			}
			if prev, dup := seen[key]; dup {
				return nil, fmt.Errorf("delivery: domain %q is claimed by routes %q and %q: remove it from one of them", d, prev, r.Name())
			}
			seen[key] = r.Name()
			switch {
			case key == "*":
				rt.fallback = r
			case strings.HasPrefix(key, "."):
				rt.suffixes = append(rt.suffixes, suffixRoute{suffix: key, route: r})
			default:
				rt.exact[key] = r
			}
		}
	}
	// Longest suffix first so the most specific one wins.
	for i := 1; i < len(rt.suffixes); i++ {
		for j := i; j > 0 && len(rt.suffixes[j].suffix) > len(rt.suffixes[j-1].suffix); j-- {
			rt.suffixes[j], rt.suffixes[j-1] = rt.suffixes[j-1], rt.suffixes[j]
		}
	}
	return rt, nil
}

// lookup returns the route for a recipient address, or nil when none serves
// its domain.
func (rt *router) lookup(address string) *Route {
	domain := strings.ToLower(domainOf(address))
	if r, ok := rt.exact[domain]; ok {
		return r
	}
	for _, s := range rt.suffixes {
		if strings.HasSuffix(domain, s.suffix) {
			return s.route
		}
	}
	return rt.fallback
}

// domainOf returns the part after the last "@" (RFC 5321 §4.1.2: the
// local part may itself contain a quoted "@"), without a trailing root dot.
func domainOf(address string) string {
	at := strings.LastIndexByte(address, '@')
	if at < 0 {
		return ""
	}
	return strings.TrimSuffix(address[at+1:], ".")
}

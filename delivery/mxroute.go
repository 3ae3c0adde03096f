package delivery

// This file holds what MX routes (route key mx = true) add to the engine:
// their settings, one resolver per DNS server, the host-down memory and
// the per-destination connection pools.

import (
	"sync"
	"time"

	"golang.org/x/time/rate"

	"mailq/mx"
)

// Defaults of MX routes.
const (
	DefaultMXMaxTries             = 5
	DefaultDestinationConnections = 8
	DefaultMXResolverTimeout      = 5 * time.Second
	defaultMXRouteName            = "mx"
)

// MXRoute makes a route deliver to each recipient domain's mail exchangers
// (RFC 5321 §5.1) instead of its host; every other route setting still
// applies to each connection (timeouts, local bind, proxy, EHLO name, AUTH
// when the server offers it and the route has credentials).
type MXRoute struct {
	// Resolver is the DNS server, "host:port"; "" = MXOptions.Resolver.
	Resolver string
	// MaxTries bounds the host addresses one attempt connects to (default 5).
	MaxTries int
	// DestinationConnections bounds the connections open to one MX host,
	// idle ones included (default 8).
	DestinationConnections int
	// Rate bounds the messages sent to one MX host; zero = unlimited.
	Rate Rate
}

// Rate is a message rate such as "100/min".
type Rate struct {
	Count int
	Per   time.Duration
}

// limiter is a token bucket allowing Count messages per Per, in a burst of
// at most Count; nil when unlimited.
func (r Rate) limiter() *rate.Limiter {
	if r.Count <= 0 || r.Per <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(float64(r.Count)/r.Per.Seconds()), r.Count)
}

// MXOptions are the engine-wide settings of MX routes ([mx] in the config).
type MXOptions struct {
	Resolver  string        // default DNS server "host:port"; "" = /etc/resolv.conf
	Timeout   time.Duration // per DNS exchange; 0 = 5s
	CacheSize int           // DNS answers cached; 0 = mx.DefaultCacheSize
	DownFor   time.Duration // a host that failed to connect is skipped this long, doubling; 0 = 5m
	DownMax   time.Duration // cap of that doubling; 0 = 1h
	// TLSPolicies are the [[tls_policy]] overrides, by recipient domain.
	TLSPolicies []TLSPolicy
	// STS configures MTA-STS (RFC 8461); nil = off.
	STS *STSOptions
	// Shuffle replaces the shuffle of equal MX preferences (tests).
	Shuffle func(n int, swap func(i, j int))
}

// mxState is the engine's shared MX machinery.
type mxState struct {
	opts MXOptions
	now  func() time.Time
	down *mx.DownList

	mu        sync.Mutex
	resolvers map[string]*mx.Resolver // by configured server ("" = default)
	dests     map[string]*destination // by MX host name
	closed    bool
}

func newMXState(opts MXOptions, now func() time.Time) *mxState {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultMXResolverTimeout
	}
	return &mxState{
		opts:      opts,
		now:       now,
		down:      mx.NewDownList(opts.DownFor, opts.DownMax, now),
		resolvers: make(map[string]*mx.Resolver),
		dests:     make(map[string]*destination),
	}
}

// resolver returns the route's resolver, shared (with its cache) by every
// route that names the same server.
func (s *mxState) resolver(r *MXRoute) (*mx.Resolver, error) {
	server := r.Resolver
	if server == "" {
		server = s.opts.Resolver
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if res, ok := s.resolvers[server]; ok {
		return res, nil
	}
	res, err := mx.New(mx.Options{Server: server, Timeout: s.opts.Timeout, CacheSize: s.opts.CacheSize, Now: s.now, Shuffle: s.opts.Shuffle})
	if err != nil {
		return nil, err
	}
	s.resolvers[server] = res
	return res, nil
}

// destination returns the pool of one MX host (by name: two domains
// sharing an exchanger share its connections and its limits).
func (s *mxState) destination(e *Engine, host string, r *MXRoute) *destination {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.dests[host]
	if !ok {
		if len(s.dests) >= maxIdleDestinations {
			s.pruneLocked()
		}
		limit := r.DestinationConnections
		if limit <= 0 {
			limit = DefaultDestinationConnections
		}
		d = &destination{name: host, limit: limit, maxUses: e.opts.MessagesPerConnection,
			idleTimeout: e.opts.IdleTimeout, probe: e.probePolicy(), rate: r.Rate.limiter(), freed: make(chan struct{})}
		if s.closed {
			d.retired = true
		}
		s.dests[host] = d
	}
	return d
}

// maxIdleDestinations is how many MX hosts are remembered before the
// ones without connections (and with a full rate bucket) are forgotten,
// so that mail to many domains does not grow the map forever.
const maxIdleDestinations = 4096

func (s *mxState) pruneLocked() {
	for host, d := range s.dests {
		d.mu.Lock()
		unused := d.open == 0 && (d.rate == nil || d.rate.Tokens() >= float64(d.rate.Burst()))
		d.mu.Unlock()
		if unused {
			delete(s.dests, host)
		}
	}
}

// retire closes every idle MX connection (shutdown).
func (s *mxState) retire() {
	s.mu.Lock()
	s.closed = true
	dests := make([]*destination, 0, len(s.dests))
	for _, d := range s.dests {
		dests = append(dests, d)
	}
	s.mu.Unlock()
	for _, d := range dests {
		d.retire()
	}
}

func (r *MXRoute) maxTries() int {
	if r.MaxTries <= 0 {
		return DefaultMXMaxTries
	}
	return r.MaxTries
}

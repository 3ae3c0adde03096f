package delivery

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"mailq/queue"
	"mailq/smtpproto"
	"mailq/suppression"
)

// Defaults used when an Options field is zero (docs/configuration.md [delivery]).
const (
	DefaultWorkers               = 32
	DefaultPerRouteConnections   = 8
	DefaultMessagesPerConnection = 100
	DefaultIdleTimeout           = 30 * time.Second
	DefaultProbeAfterIdle        = 2 * time.Second
	DefaultShutdownGrace         = 30 * time.Second
)

// Options configures an Engine.
type Options struct {
	Store  queue.Store
	Routes []Route

	// Workers bounds the deliveries in flight at once, all routes together.
	Workers int
	// PerRouteConnections bounds the connections open to one route, and so
	// the workers one route can occupy: a stalled route holds at most this
	// many workers.
	PerRouteConnections int
	// MessagesPerConnection is how many messages one connection carries
	// before it is closed (no RSET between them; a liveness probe only after
	// it sat idle, ProbeAfterIdle).
	MessagesPerConnection int
	// IdleTimeout closes a pooled connection nobody used for this long.
	IdleTimeout time.Duration
	// ProbeAfterIdle: a pooled connection idle at least this long (by Now)
	// gets the liveness probe before reuse; one used more recently is
	// reused at once (probePolicy).
	ProbeAfterIdle time.Duration
	// ShutdownGrace is how long Run waits for deliveries in flight after its
	// context is cancelled before it cuts them off.
	ShutdownGrace time.Duration

	// Hostname is the Reporting-MTA of notices and the domain of their From.
	Hostname string
	Logger   zerolog.Logger
	// Now is the clock for scheduling decisions (tests inject a fake one);
	// default time.Now. Timers still run on real time.
	Now func() time.Time
	// Rand draws retry jitter in [0,1); default math/rand/v2.
	Rand func() float64
	// DialOptions is passed to smtpproto.Dial (tests set a Dialer or ask
	// for transcripts); its Logger is always Logger.
	DialOptions smtpproto.DialOptions
	// MX configures the routes with mx = true (resolver, host-down memory,
	// TLS policies, MTA-STS).
	MX MXOptions
	// Suppression, when set, bounces recipients on the suppression list
	// without contacting a server and adds addresses a server said do not
	// exist (delivery/suppression.go).
	Suppression *suppression.List
}

// Engine drains the queue. Create it with New, start it with Run.
type Engine struct {
	opts  Options
	store queue.Store
	log   zerolog.Logger

	// wake is signalled (non-blocking, cap 1) when the scheduler should look
	// at the queue again: a delivery finished or a test moved the clock.
	wake chan struct{}

	mu      sync.Mutex
	router  *router
	pools   map[string]*routePool // current pool per route name
	working []*routePool          // every pool with queued or active parts (current or retired), in round-robin order
	next    int                   // round-robin position in working
	busy    int                   // parts being delivered (workers in use)
	waiting int                   // parts leased and queued behind a saturated route
	runs    sync.WaitGroup        // leases not yet recorded
	closed  bool
	bounces map[queue.ID]chan struct{} // BounceNow requests not yet leased
	bounced map[queue.ID]chan struct{} // leased for an operator bounce, not yet recorded

	// MX routes: resolvers, host-down memory and destination pools,
	// MTA-STS, and the [[tls_policy]] entries in force (guarded by mu).
	mx          *mxState
	sts         *stsState
	tlsPolicies []TLSPolicy
	// bounceOnly narrows a bounce request to the recipients matching a
	// pattern (queue.MatchAddress); absent means every pending recipient.
	bounceOnly map[queue.ID]string
}

// New checks the options and builds an engine; it starts nothing.
func New(opts Options) (*Engine, error) {
	if opts.Store == nil {
		return nil, errors.New("delivery: Options.Store is nil: open the queue first")
	}
	if opts.Workers <= 0 {
		opts.Workers = DefaultWorkers
	}
	if opts.PerRouteConnections <= 0 {
		opts.PerRouteConnections = DefaultPerRouteConnections
	}
	if opts.MessagesPerConnection <= 0 {
		opts.MessagesPerConnection = DefaultMessagesPerConnection
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.ShutdownGrace <= 0 {
		opts.ShutdownGrace = DefaultShutdownGrace
	}
	if opts.ProbeAfterIdle <= 0 {
		opts.ProbeAfterIdle = DefaultProbeAfterIdle
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Rand == nil {
		opts.Rand = rand.Float64
	}
	if opts.Hostname == "" {
		opts.Hostname = "localhost"
	}
	opts.Routes = append([]Route(nil), opts.Routes...)
	rt, err := newRouter(opts.Routes)
	if err != nil {
		return nil, err
	}
	e := &Engine{
		opts:   opts,
		store:  opts.Store,
		log:    opts.Logger,
		wake:   make(chan struct{}, 1),
		router: rt,
		pools:  make(map[string]*routePool),
		mx:     newMXState(opts.MX, opts.Now),
		sts:    &stsState{},

		tlsPolicies: append([]TLSPolicy(nil), opts.MX.TLSPolicies...),
	}
	for i := range opts.Routes {
		r := &opts.Routes[i]
		e.pools[r.Name()] = e.newPool(r)
	}
	// Route pointers in the router must be the pool's, so lookups find them.
	e.router = rebindRouter(rt, e.pools)
	return e, nil
}

// SetRoutes replaces the routing table (SIGHUP reload). Attempts that start
// from now on use the new routes; connections of routes that were removed
// or changed are closed as soon as they are idle. Parts already queued
// behind a route finish on the route they were given.
func (e *Engine) SetRoutes(routes []Route) error {
	routes = append([]Route(nil), routes...)
	rt, err := newRouter(routes)
	if err != nil {
		return err
	}
	var retired []*routePool
	e.mu.Lock()
	fresh := make(map[string]*routePool, len(routes))
	for i := range routes {
		r := &routes[i]
		name := r.Name()
		if old, ok := e.pools[name]; ok && reflect.DeepEqual(*old.route, *r) {
			fresh[name] = old
			continue
		}
		if _, dup := fresh[name]; dup {
			e.mu.Unlock()
			return fmt.Errorf("delivery: two routes are named %q: give each route a distinct name", name)
		}
		fresh[name] = e.newPool(r)
	}
	for name, old := range e.pools {
		if fresh[name] != old {
			retired = append(retired, old)
		}
	}
	e.pools = fresh
	e.router = rebindRouter(rt, fresh)
	e.mu.Unlock()
	for _, p := range retired {
		p.retire()
	}
	e.kick()
	return nil
}

// rebindRouter makes every route pointer in rt the one its pool holds, so
// that the pool found for a recipient and its Route agree.
func rebindRouter(rt *router, pools map[string]*routePool) *router {
	bind := func(r *Route) *Route {
		if r == nil {
			return nil
		}
		if p, ok := pools[r.Name()]; ok {
			return p.route
		}
		return r
	}
	for k, r := range rt.exact {
		rt.exact[k] = bind(r)
	}
	for i := range rt.suffixes {
		rt.suffixes[i].route = bind(rt.suffixes[i].route)
	}
	rt.fallback = bind(rt.fallback)
	return rt
}

// probePolicy is how the pools check a connection before reuse.
func (e *Engine) probePolicy() probePolicy {
	return probePolicy{after: e.opts.ProbeAfterIdle, now: e.opts.Now}
}

// kick wakes the scheduler (non-blocking).
func (e *Engine) kick() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// RouteFor names the route that would carry mail for addr now, "" when no
// route serves its domain (summary --by route).
func (e *Engine) RouteFor(addr string) string {
	e.mu.Lock()
	rt := e.router
	e.mu.Unlock()
	if r := rt.lookup(addr); r != nil {
		return r.Name()
	}
	return ""
}

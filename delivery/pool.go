package delivery

import (
	"context"
	"sync"
	"time"

	"mailq/metrics"
	"mailq/smtpproto"
)

// routePool keeps the SMTP connections of one route and the parts waiting
// for them. The engine's scheduler never lets more than limit parts of a
// route run at once, and a running part holds at most one connection, so a
// route never has more than limit connections open (idle ones included:
// a part dials only when no idle connection is left).
type routePool struct {
	route       *Route
	name        string
	limit       int
	maxUses     int
	idleTimeout time.Duration
	probe       probePolicy
	dialOpts    smtpproto.DialOptions

	// Guarded by Engine.mu: the parts queued for this route and how many run.
	queue  []*part
	active int

	mu      sync.Mutex // guards what follows
	idle    []*pooledConn
	retired bool
}

type pooledConn struct {
	conn      *smtpproto.Conn
	uses      int         // messages sent over it
	timer     *time.Timer // closes it when idle too long; nil while in use
	idleSince time.Time   // when it was put back (probePolicy's clock)
}

// probePolicy decides how a pooled connection is checked before reuse.
// Right after a transaction a connection needs no round trip: Send leaves
// the session ready for the next MAIL (smtpproto.Conn.Ready), and a server
// that closed it or sent 421 meanwhile shows as pending input. Only a
// connection idle for after or longer gets the liveness probe (NOOP, or
// RSET with userset; RFC 5321 §4.1.1.9), which exists for connections a
// server or middlebox may have dropped silently while they sat unused.
type probePolicy struct {
	after time.Duration
	now   func() time.Time
}

// revive readies an idle connection for its next transaction; false means
// it is dead (and closed).
func (pp probePolicy) revive(ctx context.Context, pc *pooledConn) bool {
	if pp.now().Sub(pc.idleSince) < pp.after {
		return pc.conn.Ready()
	}
	return pc.conn.Probe(ctx)
}

func (e *Engine) newPool(r *Route) *routePool {
	// The SMTP client logs what an operator must see (AUTH without TLS to a
	// remote host, a rejected AUTH, each accepted RCPT with reportsuccess,
	// 8-bit mail to a server without 8BITMIME) through the engine's logger.
	dialOpts := e.opts.DialOptions
	dialOpts.Logger = e.log
	limit := e.opts.PerRouteConnections
	if r.MX != nil {
		// An MX route's connections go to many hosts, each bounded by its
		// own destination limit; the route may use every worker.
		limit = e.opts.Workers
	}
	// Every attempt keeps its transcript (AUTH redacted, bounded): it is
	// what `mailqctl show --transcript` shows (interfaces.md).
	dialOpts.Transcript = true
	// hostname is the EHLO name when a route sets no localhost (interfaces.md).
	dialOpts.Hostname = e.opts.Hostname
	return &routePool{
		route:       r,
		name:        r.Name(),
		limit:       limit,
		maxUses:     e.opts.MessagesPerConnection,
		idleTimeout: e.opts.IdleTimeout,
		probe:       e.probePolicy(),
		dialOpts:    dialOpts,
	}
}

// get returns a live connection: the most recently used idle one that is
// still alive (probePolicy), else a new one.
func (p *routePool) get(ctx context.Context) (*pooledConn, error) {
	for {
		p.mu.Lock()
		n := len(p.idle)
		if n == 0 {
			p.mu.Unlock()
			break
		}
		pc := p.idle[n-1]
		p.idle = p.idle[:n-1]
		pc.timer.Stop()
		pc.timer = nil
		p.mu.Unlock()
		if p.probe.revive(ctx, pc) {
			return pc, nil
		}
		p.discard(pc)
	}
	conn, err := smtpproto.Dial(ctx, &p.route.Settings, p.dialOpts)
	if err != nil {
		return nil, err
	}
	metrics.ConnectionsOpen.WithLabelValues(p.name).Inc()
	return &pooledConn{conn: conn}, nil
}

// put hands a connection back after a message. reusable is false after a
// connection-level failure (the Conn is unusable then). No RSET: Send
// leaves the session ready for the next transaction (smtpproto.Conn.Ready).
func (p *routePool) put(pc *pooledConn, reusable bool) {
	pc.uses++
	if !reusable || pc.uses >= p.maxUses {
		p.discard(pc)
		return
	}
	pc.idleSince = p.probe.now()
	p.mu.Lock()
	if p.retired {
		p.mu.Unlock()
		p.discard(pc)
		return
	}
	pc.timer = time.AfterFunc(p.idleTimeout, func() { p.expire(pc) })
	p.idle = append(p.idle, pc)
	p.mu.Unlock()
}

// expire closes pc if it is still idle.
func (p *routePool) expire(pc *pooledConn) {
	p.mu.Lock()
	for i, c := range p.idle {
		if c == pc {
			p.idle = append(p.idle[:i], p.idle[i+1:]...)
			p.mu.Unlock()
			p.discard(pc)
			return
		}
	}
	p.mu.Unlock()
}

// discard closes pc (QUIT per the route's quitwait) and forgets it.
func (p *routePool) discard(pc *pooledConn) {
	_ = pc.conn.Close()
	metrics.ConnectionsOpen.WithLabelValues(p.name).Dec()
}

// retire closes the idle connections and makes put close the others when
// they come back: the route was removed or changed, or the engine stops.
func (p *routePool) retire() {
	p.mu.Lock()
	p.retired = true
	idle := p.idle
	p.idle = nil
	for _, pc := range idle {
		pc.timer.Stop()
	}
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, pc := range idle {
		wg.Add(1)
		go func() { defer wg.Done(); p.discard(pc) }()
	}
	wg.Wait()
}

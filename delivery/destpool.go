package delivery

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"mailq/metrics"
	"mailq/smtpproto"
)

// destination is one MX host's connections: at most limit open at once
// (idle ones included), idle ones kept per address and TLS level so that a
// connection is only reused for mail whose policy it satisfies, and an
// optional message rate.
type destination struct {
	name        string
	limit       int
	maxUses     int
	idleTimeout time.Duration
	probe       probePolicy
	rate        *rate.Limiter // nil = unlimited

	mu      sync.Mutex
	open    int
	idle    []*mxConn     // most recently used last
	freed   chan struct{} // closed (and replaced) when a slot or idle connection frees up
	retired bool
}

// mxConn is one connection to a destination address.
type mxConn struct {
	pooledConn
	key   string // "ip:port tls-level"
	route string // for the connections-open gauge
	info  mxConnInfo
}

// mxConnInfo is what the attempt record says about a connection.
type mxConnInfo struct {
	host   string // MX host name
	remote string // "ip:port"
	tls    string // "TLS1.3 TLS_AES_128_GCM_SHA256" or "plaintext"
	policy string // the TLS policy applied
	note   string // what the policy had to do (fallback, violation), "" if nothing
}

// notifyLocked wakes every waiter.
func (d *destination) notifyLocked() {
	close(d.freed)
	d.freed = make(chan struct{})
}

// get returns a live idle connection with key, else dials one when the
// destination has a free slot, else waits for one (closing an idle
// connection of another key to make room).
func (d *destination) get(ctx context.Context, key string, dial func() (*mxConn, error)) (*mxConn, error) {
	for {
		d.mu.Lock()
		var reuse, evict *mxConn
		for i := len(d.idle) - 1; i >= 0; i-- {
			if d.idle[i].key == key {
				reuse = d.idle[i]
				d.idle = append(d.idle[:i], d.idle[i+1:]...)
				break
			}
		}
		if reuse == nil && d.open >= d.limit && len(d.idle) > 0 {
			evict = d.idle[0]
			d.idle = d.idle[1:]
		}
		switch {
		case reuse != nil:
			reuse.timer.Stop()
			reuse.timer = nil
			d.mu.Unlock()
			if d.probe.revive(ctx, &reuse.pooledConn) {
				return reuse, nil
			}
			d.discard(reuse)
			continue
		case evict != nil:
			evict.timer.Stop()
			evict.timer = nil
			d.mu.Unlock()
			d.discard(evict)
			continue
		case d.open < d.limit:
			d.open++
			d.mu.Unlock()
			mc, err := dial()
			if err != nil {
				d.mu.Lock()
				d.open--
				d.notifyLocked()
				d.mu.Unlock()
				return nil, err
			}
			mc.key = key
			metrics.ConnectionsOpen.WithLabelValues(mc.route).Inc()
			return mc, nil
		}
		freed := d.freed
		d.mu.Unlock()
		select {
		case <-freed:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// put hands a connection back after a message (see routePool.put).
func (d *destination) put(mc *mxConn, reusable bool, transcript bool) {
	mc.uses++
	if !reusable || mc.uses >= d.maxUses {
		d.discard(mc)
		return
	}
	mc.idleSince = d.probe.now()
	d.mu.Lock()
	if d.retired {
		d.mu.Unlock()
		d.discard(mc)
		return
	}
	mc.timer = time.AfterFunc(d.idleTimeout, func() { d.expire(mc) })
	d.idle = append(d.idle, mc)
	d.notifyLocked()
	d.mu.Unlock()
}

func (d *destination) expire(mc *mxConn) {
	d.mu.Lock()
	for i, c := range d.idle {
		if c == mc {
			d.idle = append(d.idle[:i], d.idle[i+1:]...)
			d.mu.Unlock()
			d.discard(mc)
			return
		}
	}
	d.mu.Unlock()
}

// discard closes mc (QUIT per quitwait) and frees its slot.
func (d *destination) discard(mc *mxConn) {
	_ = mc.conn.Close()
	metrics.ConnectionsOpen.WithLabelValues(mc.route).Dec()
	d.mu.Lock()
	d.open--
	d.notifyLocked()
	d.mu.Unlock()
}

// retire closes the idle connections; the others close when they return.
func (d *destination) retire() {
	d.mu.Lock()
	d.retired = true
	idle := d.idle
	d.idle = nil
	for _, mc := range idle {
		mc.timer.Stop()
	}
	d.mu.Unlock()
	var wg sync.WaitGroup
	for _, mc := range idle {
		wg.Add(1)
		go func() { defer wg.Done(); d.discard(mc) }()
	}
	wg.Wait()
}

// openConns is how many connections are open (tests).
func (d *destination) openConns() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.open
}

// dialConn wraps a fresh smtpproto connection.
func newMXConn(conn *smtpproto.Conn, route string, info mxConnInfo) *mxConn {
	return &mxConn{pooledConn: pooledConn{conn: conn}, route: route, info: info}
}

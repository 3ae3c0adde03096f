package delivery

import (
	"context"
	"errors"
	"time"

	"mailq/queue"
)

// maxIdleSleep bounds the scheduler's sleep when nothing is due, only as a
// safety net: every event that can make something due sooner (enqueue,
// flush, retry, release, a finished delivery) wakes it explicitly.
const maxIdleSleep = time.Hour

// retryLeaseError is how long the scheduler waits after the store failed
// to lease before it tries again.
const retryLeaseError = time.Second

// Run delivers until ctx is cancelled. It sleeps until the next due time in
// the queue's schedule index (a timer, no polling), and wakes early when
// the store signals a change or a delivery finishes. Leased messages are
// split into one part per route; each part waits for a slot of its route
// (at most PerRouteConnections) and a worker (at most Workers in all). A
// part waiting for a saturated route holds no worker, so a stalled route
// never holds more than PerRouteConnections workers and cannot starve the
// others.
//
// After ctx is cancelled Run leases nothing more, lets deliveries in flight
// finish for up to ShutdownGrace, then cancels them (their outcome is
// recorded as a connection failure, to be retried) and closes pooled
// connections with QUIT. Parts that never started are recorded as an
// interrupted attempt, due again at once.
func (e *Engine) Run(ctx context.Context) error {
	workCtx, cutOff := context.WithCancel(context.WithoutCancel(ctx))
	defer cutOff()

	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return e.shutdown(workCtx, cutOff)
		case <-timer.C:
		case <-e.store.Changed():
		case <-e.wake:
		}
		wait := e.schedule(workCtx)
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
	}
}

// schedule leases what is due and can be taken now, and returns how long
// to sleep before looking again.
func (e *Engine) schedule(ctx context.Context) time.Duration {
	for {
		free := e.freeSlots()
		if free <= 0 {
			// A finished delivery wakes us.
			return maxIdleSleep
		}
		now := e.opts.Now()
		leases, err := e.store.Lease(now, free)
		if err != nil {
			if errors.Is(err, queue.ErrClosed) {
				return maxIdleSleep
			}
			e.log.Error().Err(err).Msg("cannot lease due messages from the queue; retrying in 1s")
			return retryLeaseError
		}
		for _, l := range leases {
			e.start(ctx, l)
		}
		if len(leases) < free {
			break
		}
	}
	due, ok := e.store.NextDue()
	if !ok {
		return maxIdleSleep
	}
	wait := due.Sub(e.opts.Now())
	if wait < 0 {
		// Due but not leased (all workers busy, or the store raced us):
		// a finished delivery or Changed wakes us; this is the safety net.
		wait = 50 * time.Millisecond
	}
	return min(wait, maxIdleSleep)
}

// freeSlots is how many more messages may be leased now: the workers not
// busy, plus a small read-ahead so a worker that finishes finds its next
// part already leased instead of waiting for the store. Parts queued
// behind saturated routes do not count, so that a stalled route's backlog
// does not stop other routes' mail from being leased; maxWaiting bounds
// that backlog.
func (e *Engine) freeSlots() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return 0
	}
	runnable := 0
	for _, p := range e.working {
		runnable += min(len(p.queue), max(p.limit-p.active, 0))
	}
	free := e.opts.Workers + e.readAhead() - e.busy - runnable
	if room := e.maxWaiting() - e.waiting; room < free {
		free = room
	}
	return free
}

// readAhead is how many runnable parts may wait for a worker.
func (e *Engine) readAhead() int {
	return max(1, e.opts.Workers/2)
}

// maxWaiting bounds the parts leased but queued behind saturated routes.
func (e *Engine) maxWaiting() int {
	return max(100, 4*e.opts.Workers)
}

// enqueuePart queues a part behind its route and starts whatever can run.
func (e *Engine) enqueuePart(ctx context.Context, p *part) {
	e.mu.Lock()
	pool := p.pool
	if len(pool.queue) == 0 && pool.active == 0 {
		e.working = append(e.working, pool)
	}
	pool.queue = append(pool.queue, p)
	e.waiting++
	e.pumpLocked(ctx)
	e.mu.Unlock()
}

// pumpLocked starts queued parts while there are free workers, visiting
// routes round-robin so that no route's backlog goes first every time.
// Called with e.mu held.
func (e *Engine) pumpLocked(ctx context.Context) {
	for e.busy < e.opts.Workers && !e.closed {
		started := false
		first := e.next
		for i := 0; i < len(e.working) && e.busy < e.opts.Workers; i++ {
			idx := (first + i) % len(e.working)
			pool := e.working[idx]
			if len(pool.queue) == 0 || pool.active >= pool.limit {
				continue
			}
			p := pool.queue[0]
			pool.queue[0] = nil
			pool.queue = pool.queue[1:]
			pool.active++
			e.waiting--
			e.busy++
			e.next = idx + 1
			started = true
			go e.runPart(ctx, p)
		}
		if !started {
			return
		}
	}
}

// partFinished releases a part's worker and route slot.
func (e *Engine) partFinished(ctx context.Context, p *part) {
	e.mu.Lock()
	pool := p.pool
	pool.active--
	e.busy--
	if len(pool.queue) == 0 && pool.active == 0 {
		for i, w := range e.working {
			if w == pool {
				e.working = append(e.working[:i], e.working[i+1:]...)
				break
			}
		}
	}
	e.pumpLocked(ctx)
	e.mu.Unlock()
	e.kick()
}

// shutdown stops leasing, waits for deliveries in flight up to the grace,
// cuts off the rest, records never-started parts as interrupted and closes
// every pooled connection.
func (e *Engine) shutdown(workCtx context.Context, cutOff context.CancelFunc) error {
	e.mu.Lock()
	e.closed = true
	var unstarted []*part
	for _, pool := range e.working {
		unstarted = append(unstarted, pool.queue...)
		e.waiting -= len(pool.queue)
		pool.queue = nil
	}
	e.mu.Unlock()
	for _, p := range unstarted {
		p.run.finishPart(e, p, interruptedResult(p, e.opts.Now()))
	}

	done := make(chan struct{})
	go func() { e.runs.Wait(); close(done) }()
	grace := time.NewTimer(e.opts.ShutdownGrace)
	defer grace.Stop()
	var err error
	select {
	case <-done:
	case <-grace.C:
		e.log.Warn().Dur("grace", e.opts.ShutdownGrace).Msg("shutdown grace elapsed: cutting off deliveries in flight; they will be retried")
		cutOff()
		// Cut-off deliveries record a retry as soon as their I/O returns. If
		// one does not return promptly it stays leased in the store and is
		// recovered as interrupted at the next open.
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			err = errors.New("delivery: some deliveries did not stop after the shutdown grace; they stay leased and are retried after restart")
		}
	}
	e.mu.Lock()
	pools := make(map[*routePool]bool)
	for _, p := range e.pools {
		pools[p] = true
	}
	for _, p := range e.working {
		pools[p] = true
	}
	e.mu.Unlock()
	for p := range pools {
		p.retire()
	}
	e.mx.retire()
	return err
}

package delivery

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"mailq/policy"
	"mailq/queue"
	"mailq/smtpproto"
)

// leaseRun is one leased message on its way through delivery: one part per
// route its leased recipients map to. The last part to finish records the
// outcome of all of them in one RecordOutcome, so the attempt Lease wrote
// is completed exactly once.
type leaseRun struct {
	lease queue.Lease

	mu      sync.Mutex
	left    int
	results []partResult
}

// part is the recipients of one leased message that share a route: they go
// in one SMTP transaction (docs/delivery.md "Promises").
type part struct {
	run        *leaseRun
	route      *Route
	pool       *routePool
	recipients []queue.Recipient
	// domain is the recipients' domain on an MX route (each domain has
	// its own exchangers); "" on a route with a fixed host.
	domain string
}

// partKey groups recipients into parts: by route, and on MX routes by
// recipient domain too.
type partKey struct {
	route  *Route
	domain string
}

// partResult is what one part's attempt produced: one attempt record
// (one route, at most one connection).
type partResult struct {
	route      *Route   // nil for recipients no route serves
	recipients []string // the part's recipients, for its attempt record
	remote     string   // address dialled (smtpproto.Session)
	proxy      string
	tls        string
	cipher     string
	errText    string // connection-level failure, when no reply decided the attempt
	start      time.Time
	duration   time.Duration
	decisions  []policy.Decision
	steps      []queue.StepReply
	transcript []string
	// nextHopDSN is whether the server advertised DSN (RFC 3461): then it
	// takes over NOTIFY=SUCCESS and mailq sends no "relayed" notice.
	nextHopDSN bool
}

// start splits a fresh lease into parts per route and queues them. Leased
// recipients no route serves are decided at once (NoRouteStatus).
func (e *Engine) start(ctx context.Context, l queue.Lease) {
	run := &leaseRun{lease: l}
	e.runs.Add(1)
	if ok, pattern := e.takeBounceRequest(l.Message.ID); ok {
		// Recipients the operator did not name get no decision: they go
		// back to the schedule they had (queue.RecordOutcome, ResumeAt).
		run.left = 1
		run.finishPart(e, nil, operatorBounceResult(l, pattern, e.opts.Now()))
		return
	}
	leased := make(map[string]bool, len(l.Recipients))
	for _, a := range l.Recipients {
		leased[a] = true
	}
	e.mu.Lock()
	rt := e.router
	pools := e.pools
	e.mu.Unlock()
	byRoute := make(map[partKey]*part)
	var order []*part
	var unrouted, suppressed []queue.Recipient
	onList := e.suppressedNow(l)
	for _, rc := range l.Message.Recipients {
		if !leased[rc.Address] {
			continue
		}
		delete(leased, rc.Address) // a duplicate address goes once
		r := rt.lookup(rc.Address)
		if _, ok := onList[rc.Address]; ok && e.suppressedApplies(r) {
			suppressed = append(suppressed, rc)
			continue
		}
		if r == nil {
			unrouted = append(unrouted, rc)
			continue
		}
		key := partKey{route: r}
		if r.MX != nil {
			key.domain = strings.ToLower(domainOf(rc.Address))
		}
		p, ok := byRoute[key]
		if !ok {
			p = &part{run: run, route: r, pool: pools[r.Name()], domain: key.domain}
			byRoute[key] = p
			order = append(order, p)
		}
		p.recipients = append(p.recipients, rc)
	}
	run.left = len(order)
	if len(unrouted) > 0 {
		run.left++
	}
	if len(suppressed) > 0 {
		run.left++
	}
	if run.left == 0 {
		// Nothing leased matched the message (cannot happen with a
		// consistent store); complete the lease so nothing stays in flight.
		run.left = 1
		run.finishPart(e, nil, partResult{start: e.opts.Now()})
		return
	}
	if len(unrouted) > 0 {
		run.finishPart(e, nil, noRouteResult(unrouted, e.opts.Now()))
	}
	if len(suppressed) > 0 {
		run.finishPart(e, nil, suppressedResult(suppressed, onList, e.opts.Now()))
	}
	for _, p := range order {
		e.enqueuePart(ctx, p)
	}
}

// runPart is a worker: it delivers one part, hands back its worker and
// route slot, then records the outcome. The slot goes back first so that
// the connection (already back in its pool) carries the next message
// while this outcome waits for its commit: outcomes of many parts then
// share one fsync (queue's group commit) instead of each holding a
// connection idle through its own. The outcome is still durable before
// RecordAttempts returns; until then the lease stays recorded as an
// interrupted attempt, and Run's shutdown waits for it (Engine.runs).
func (e *Engine) runPart(ctx context.Context, p *part) {
	res := e.deliver(ctx, p)
	e.partFinished(ctx, p)
	p.run.finishPart(e, p, res)
}

// finishPart stores a part's result; the last one records the lease.
func (run *leaseRun) finishPart(e *Engine, p *part, res partResult) {
	run.mu.Lock()
	run.results = append(run.results, res)
	run.left--
	last := run.left == 0
	run.mu.Unlock()
	if last {
		defer e.runs.Done()
		e.complete(run)
	}
}

// deliver makes one attempt for a part: a pooled or new connection, the
// body streamed from the store, and a decision per recipient.
func (e *Engine) deliver(ctx context.Context, p *part) partResult {
	if p.route.MX != nil {
		return e.deliverMX(ctx, p)
	}
	m := p.run.lease.Message
	res := partResult{route: p.route, start: e.opts.Now(), recipients: recipientAddrs(p.recipients)}
	began := time.Now()
	addrs := make([]string, len(p.recipients))
	for i, rc := range p.recipients {
		addrs[i] = rc.Address
	}
	env := p.envelope(m)

	pc, err := p.pool.get(ctx)
	if err != nil {
		res.decisions = policy.ConnectionFailure(addrs, err)
		res.steps = stepsOfDialError(err)
		res.errText = err.Error()
		var de *smtpproto.DialError
		if errors.As(err, &de) {
			// The connection may have got far (TLS up, AUTH refused):
			// say where it went and how, not "no connection".
			res.setSession(de.Session)
			res.transcript = de.Transcript
		}
		res.duration = time.Since(began)
		return res
	}
	conn := pc.conn
	res.setSession(conn.Session())
	_, res.nextHopDSN = conn.Extensions()["DSN"]

	// The stored body streams chunk by chunk and can be rewound, so
	// smtpproto can send it again in a further transaction (452 split).
	body, err := e.store.Body(m.ID)
	if err != nil {
		// Nothing was sent; the connection is still good. A store error
		// may be passing: retry and let the lifetime decide.
		res.transcript = conn.TakeTranscript()
		p.pool.put(pc, true)
		res.decisions = policy.ConnectionFailure(addrs, err)
		res.errText = err.Error()
		res.duration = time.Since(began)
		return res
	}
	sent, err := conn.Send(ctx, env, body)
	body.Close()
	// Each message takes its own part of the connection's transcript (the
	// probe, its transaction, the replies), bounded to a few KiB.
	res.transcript = conn.TakeTranscript()
	if err != nil && !reusableAfter(err) {
		res.errText = err.Error()
	}
	if sent == nil {
		// smtpproto promises a complete Result; treat its absence as a
		// broken session.
		res.decisions = policy.ConnectionFailure(addrs, err)
		p.pool.put(pc, false)
	} else {
		res.decisions = policy.Classify(sent, err)
		res.steps = stepsOf(sent)
		p.pool.put(pc, reusableAfter(err))
	}
	res.duration = time.Since(began)
	return res
}

// envelope is the transaction for the part's recipients of m.
func (p *part) envelope(m *queue.Message) smtpproto.Envelope {
	env := smtpproto.Envelope{
		From:     p.route.envelopeFrom(m.Sender),
		EnvID:    m.EnvID,
		Ret:      m.Ret,
		Size:     m.Size,
		SMTPUTF8: m.SMTPUTF8,
		// The store noted 8-bit bytes at enqueue, which decide
		// BODY=8BITMIME (RFC 6152) before MAIL FROM is sent.
		EightBit: m.EightBit,
		LogID:    string(m.ID),
	}
	for _, rc := range p.recipients {
		env.Recipients = append(env.Recipients, smtpproto.Recipient{Address: rc.Address, Notify: rc.Notify, ORCPT: rc.ORCPT})
	}
	return env
}

func (r *partResult) setSession(s smtpproto.Session) {
	r.remote, r.proxy, r.tls, r.cipher = s.Remote, s.Proxy, s.TLS, s.Cipher
}

func recipientAddrs(rcpts []queue.Recipient) []string {
	out := make([]string, len(rcpts))
	for i, rc := range rcpts {
		out[i] = rc.Address
	}
	return out
}

// reusableAfter reports whether a connection may carry another message
// after Send returned err: yes after success and after the transaction-level
// refusals (the session is intact, RSET follows); no after anything else,
// which smtpproto documents as leaving the Conn unusable.
func reusableAfter(err error) bool {
	switch err.(type) {
	case nil, *smtpproto.SenderFailedError, *smtpproto.AddressFailedError, *smtpproto.SendFailedError:
		return true
	}
	return false
}

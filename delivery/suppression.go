package delivery

import (
	"strings"
	"time"

	"mailq/policy"
	"mailq/queue"
	"mailq/suppression"
)

// The suppression list (package suppression) from delivery's side: a
// leased recipient on the list is bounced without contacting the server,
// and a bounce whose reply says the address does not exist puts it on the
// list, in the transaction that records the bounce.

// suppressedNow returns the list's entries for the leased recipients (nil
// when the list is off or empty). A failed lookup is logged and treated as
// "not suppressed": the server then gives its own answer.
func (e *Engine) suppressedNow(l queue.Lease) map[string]queue.Suppression {
	if e.opts.Suppression == nil {
		return nil
	}
	found, err := e.opts.Suppression.Check(l.Recipients)
	if err != nil {
		e.log.Error().Err(err).Str("queue_id", string(l.Message.ID)).Msg("cannot read the suppression list; delivering without it")
		return nil
	}
	return found
}

// suppressedApplies reports whether a suppressed recipient on route r is
// bounced (the list can be switched off per route).
func (e *Engine) suppressedApplies(r *Route) bool {
	name := ""
	if r != nil {
		name = r.Name()
	}
	return e.opts.Suppression.RouteEnabled(name)
}

// suppressedResult bounces recipients on the suppression list: status
// 5.1.1, diagnostic "suppressed: <the reply that put them there>".
func suppressedResult(rcpts []queue.Recipient, entries map[string]queue.Suppression, now time.Time) partResult {
	res := partResult{start: now}
	for _, rc := range rcpts {
		res.decisions = append(res.decisions, policy.Decision{
			Recipient: rc.Address, Action: policy.Bounce,
			Status: suppression.Status, Diagnostic: suppression.Diagnostic(entries[rc.Address]),
		})
	}
	return res
}

// Outcome causes, as the journal reports them (queue.Outcome.Cause).
const (
	causeExpired    = "expired"
	causeOperator   = "operator"
	causeSuppressed = "suppressed"
)

// annotateOutcomes sets each outcome's Cause and, for a bounce whose reply
// means the address does not exist, Suppress.
func (e *Engine) annotateOutcomes(outcomes []queue.Outcome, all []decided) {
	for i, dc := range all {
		d := dc.decision
		if d.Action != policy.Bounce {
			continue
		}
		o := &outcomes[i]
		switch {
		case d.Status == policy.StatusExpired:
			o.Cause = causeExpired
		case d.Status == OperatorBounceStatus && d.Diagnostic == OperatorBounceText:
			o.Cause = causeOperator
		case d.Reply == nil && strings.HasPrefix(d.Diagnostic, "suppressed: "):
			o.Cause = causeSuppressed
		}
		if e.opts.Suppression != nil && d.Reply != nil && d.Reply.Code >= 500 &&
			e.opts.Suppression.MeansNoSuchAddress(d.Reply.Enhanced) && e.suppressedApplies(dc.res.route) {
			o.Suppress = true
		}
	}
}

// Suppressed reports whether a recipient would be bounced as suppressed
// now: it is on the list and its route has the list on. The submission
// listener asks it at RCPT when refuse_at_rcpt is set.
func (e *Engine) Suppressed(addr string) (queue.Suppression, bool) {
	if e.opts.Suppression == nil {
		return queue.Suppression{}, false
	}
	entry, ok, err := e.opts.Suppression.Lookup(addr)
	if err != nil || !ok {
		return queue.Suppression{}, false
	}
	e.mu.Lock()
	rt := e.router
	e.mu.Unlock()
	return entry, e.suppressedApplies(rt.lookup(addr))
}

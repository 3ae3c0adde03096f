package delivery

import (
	"errors"
	"fmt"
	"time"

	"mailq/metrics"
	"mailq/policy"
	"mailq/queue"
	"mailq/smtpproto"
)

// decided is one recipient's final decision with what it came from.
type decided struct {
	rcpt     queue.Recipient
	decision policy.Decision
	res      *partResult
}

// OperatorBounceStatus and OperatorBounceText are what `mailqctl bounce`
// puts in the DSN (RFC 3463 X.0.0: other undefined status).
const (
	OperatorBounceStatus = "5.0.0"
	OperatorBounceText   = "bounced by operator"
)

// complete turns every part's result into per-recipient outcomes: it
// schedules retries, queues notices, records the outcome in the store, then
// logs and counts each recipient.
func (e *Engine) complete(run *leaseRun) {
	l := run.lease
	m := l.Message
	now := e.opts.Now()
	byAddr := make(map[string]queue.Recipient, len(m.Recipients))
	for _, rc := range m.Recipients {
		byAddr[rc.Address] = rc
	}

	var all []decided
	for i := range run.results {
		res := &run.results[i]
		for _, d := range res.decisions {
			rc := byAddr[d.Recipient]
			if d.Action == policy.Retry && res.route != nil {
				deadline := policy.Deadline(m.Arrival, m.HeldFor, res.route.Retry)
				if !now.Before(deadline) && e.heldNow(m.ID) {
					// Held while this attempt was in flight: a held message
					// never expires (docs/cli.md, hold); its lifetime
					// resumes at release, with the time held added.
					deadline = now.Add(max(res.route.Retry.MaxLifetime, time.Minute))
				}
				// Attempts an operator asked for do not advance the backoff
				// (README, retry schedule); the store also keeps the
				// scheduled time such an attempt brought forward.
				failures := max(rc.Attempts-rc.OperatorAttempts, 1)
				d = policy.Schedule([]policy.Decision{d}, failures, now, deadline, res.route.Retry, e.opts.Rand)[0]
				if d.Action == policy.Retry && rc.ResumeAt.After(now) && rc.ResumeAt.Before(d.RetryAt) {
					d.RetryAt = rc.ResumeAt
				}
			}
			all = append(all, decided{rcpt: rc, decision: d, res: res})
		}
	}

	// Notices are queued before the outcome is recorded: a crash in between
	// then repeats the attempt (and may repeat a notice), but never loses
	// one (docs/delivery.md: nothing acknowledged may be lost).
	e.queueFailureNotice(m, all, now)
	// The outcome's own transaction marks the warning sent (one commit
	// fewer than SetDelayWarned); it is durable before then.
	l.MarkDelayWarned = e.queueDelayWarning(m, all, now)

	outcomes := make([]queue.Outcome, 0, len(all))
	for _, dc := range all {
		outcomes = append(outcomes, toOutcome(dc.decision))
	}
	e.annotateOutcomes(outcomes, all)
	attempts := attemptRecords(l, run.results, m.Attempts)
	if err := e.store.RecordAttempts(l, attempts, outcomes); err != nil {
		if l.MarkDelayWarned {
			// The warning is queued even though the outcome is not kept.
			if err := e.store.SetDelayWarned(m.ID); err != nil && !errors.Is(err, queue.ErrNotFound) {
				e.log.Error().Err(err).Str("queue_id", string(m.ID)).Msg("cannot mark the delay warning as sent; a second warning may follow")
			}
		}
		lvl := e.log.Error()
		if errors.Is(err, queue.ErrLeaseLost) {
			// Deleted or bounced by the operator meanwhile: nothing to keep.
			lvl = e.log.Warn()
		}
		lvl.Err(err).Str("queue_id", string(m.ID)).Msg("cannot record the delivery outcome; the attempt stays recorded as interrupted and the recipients are retried")
	}
	for _, dc := range all {
		e.logOutcome(m, dc, now)
		e.count(dc)
	}
	e.bounceRecorded(m.ID)
	e.retakeBounceRequest(m, all)
	for _, r := range run.results {
		if r.route != nil && r.duration > 0 {
			metrics.AttemptDuration.WithLabelValues(r.route.Name()).Observe(r.duration.Seconds())
		}
	}
}

// toOutcome converts a policy decision into the queue's outcome.
func toOutcome(d policy.Decision) queue.Outcome {
	o := queue.Outcome{Recipient: d.Recipient, RetryAt: d.RetryAt, CountsAsAttempt: true}
	switch d.Action {
	case policy.Deliver:
		o.Decision = queue.DecideDelivered
	case policy.Bounce:
		o.Decision = queue.DecideBounce
	default:
		o.Decision = queue.DecideRetry
	}
	if d.Reply != nil {
		r := *d.Reply
		o.Reply = &r
	} else if d.Diagnostic != "" {
		// Keep what happened visible in last_reply even without a server
		// reply (connection refused, timeout, no route).
		o.Reply = &queue.Reply{Enhanced: d.Status, Text: d.Diagnostic}
	}
	return o
}

// attemptRecords gives each part of the lease its own attempt record: one
// per route and connection, with where it went (address dialled, proxy,
// TLS version and cipher), what was said, and why it failed when no reply
// decided it. Parts of different routes ran at the same time; merging them
// would hide which route said what.
func attemptRecords(l queue.Lease, results []partResult, history []queue.Attempt) []queue.Attempt {
	var leased time.Time
	if l.AttemptIndex >= 0 && l.AttemptIndex < len(history) {
		leased = history[l.AttemptIndex].Time
	}
	if len(results) == 0 {
		return []queue.Attempt{{Time: leased, Recipients: append([]string(nil), l.Recipients...)}}
	}
	out := make([]queue.Attempt, 0, len(results))
	for _, r := range results {
		a := queue.Attempt{
			Time: r.start, Remote: r.remote, Proxy: r.proxy, TLS: r.tls, Cipher: r.cipher,
			DurationMS: r.duration.Milliseconds(), Error: r.errText,
			Recipients: append([]string(nil), r.recipients...),
			Transcript: r.transcript,
		}
		if a.Time.IsZero() {
			a.Time = leased
		}
		if r.route != nil {
			a.Route = r.route.Name()
		}
		if len(a.Recipients) == 0 {
			for _, d := range r.decisions {
				a.Recipients = append(a.Recipients, d.Recipient)
			}
		}
		a.Replies = append(a.Replies, r.steps...)
		a.Replies = append(a.Replies, finalReplies(r)...)
		out = append(out, a)
	}
	return out
}

func appendUnique(list []string, v string) []string {
	if v == "" {
		return list
	}
	for _, x := range list {
		if x == v {
			return list
		}
	}
	return append(list, v)
}

// stepsOf copies smtpproto's per-command replies into the history.
func stepsOf(res *smtpproto.Result) []queue.StepReply {
	steps := make([]queue.StepReply, 0, len(res.Steps))
	for _, s := range res.Steps {
		steps = append(steps, queue.StepReply{Command: s.Command, Reply: s.Reply})
	}
	return steps
}

// stepsOfDialError records the reply a failed Dial got, if any (greeting,
// EHLO, STARTTLS or AUTH refusal), so `show` has it.
func stepsOfDialError(err error) []queue.StepReply {
	var pe *smtpproto.ProtocolError
	var te *smtpproto.TLSError
	var ae *smtpproto.AuthError
	switch {
	case errors.As(err, &pe) && pe.Reply != nil:
		cmd := pe.Command
		if cmd == "" {
			cmd = "(greeting)"
		}
		return []queue.StepReply{{Command: cmd, Reply: *pe.Reply}}
	case errors.As(err, &te) && te.Reply != nil:
		return []queue.StepReply{{Command: "STARTTLS", Reply: *te.Reply}}
	case errors.As(err, &ae) && ae.Reply != nil:
		// The AUTH command line is never stored: it may carry credentials.
		return []queue.StepReply{{Command: "AUTH " + ae.Mechanism, Reply: *ae.Reply}}
	}
	return nil
}

// finalReplies adds each recipient's deciding reply to the history, once
// per distinct reply (one end-of-data reply decides every recipient of a
// transaction).
func finalReplies(r partResult) []queue.StepReply {
	var out []queue.StepReply
	seen := make(map[string]bool)
	for _, s := range r.steps {
		seen[fmt.Sprint(s.Reply)] = true
	}
	for _, d := range r.decisions {
		if d.Reply == nil {
			continue
		}
		rep := *d.Reply
		key := fmt.Sprint(rep)
		if seen[key] {
			continue
		}
		seen[key] = true
		cmd := "final reply for <" + d.Recipient + ">"
		if d.Action == policy.Deliver {
			cmd = "end of data" // only the reply to the final dot delivers
		}
		out = append(out, queue.StepReply{Command: cmd, Reply: rep})
	}
	return out
}

// noRouteResult bounces recipients whose domain no route serves.
func noRouteResult(rcpts []queue.Recipient, now time.Time) partResult {
	res := partResult{start: now}
	for _, rc := range rcpts {
		res.decisions = append(res.decisions, policy.Decision{
			Recipient:  rc.Address,
			Action:     policy.Bounce,
			Status:     NoRouteStatus,
			Diagnostic: fmt.Sprintf("no route for domain %q: no route lists it and there is no \"*\" route", domainOf(rc.Address)),
		})
	}
	return res
}

// operatorBounceResult bounces every leased recipient matching pattern
// ("" for all) (`mailqctl bounce [--to]`).
func operatorBounceResult(l queue.Lease, pattern string, now time.Time) partResult {
	res := partResult{start: now}
	for _, a := range l.Recipients {
		if pattern != "" && !queue.MatchAddress(pattern, a) {
			continue
		}
		res.decisions = append(res.decisions, policy.Decision{
			Recipient: a, Action: policy.Bounce, Status: OperatorBounceStatus, Diagnostic: OperatorBounceText,
		})
	}
	return res
}

// interruptedResult is for a part cut off by shutdown before it started:
// no decision, so RecordOutcome makes its recipients due again at once.
func interruptedResult(p *part, now time.Time) partResult {
	return partResult{route: p.route, start: now, recipients: recipientAddrs(p.recipients)}
}

// count updates the Prometheus collectors for one recipient outcome.
func (e *Engine) count(dc decided) {
	route := "none"
	if dc.res.route != nil {
		route = dc.res.route.Name()
	}
	d := dc.decision
	switch d.Action {
	case policy.Deliver:
		metrics.Deliveries.WithLabelValues(route).Inc()
	case policy.Bounce:
		metrics.Bounces.WithLabelValues(route).Inc()
	default:
		metrics.Deferrals.WithLabelValues(route).Inc()
	}
	class := "none"
	if d.Status != "" {
		class = d.Status[:1]
	}
	metrics.StatusClass.WithLabelValues(route, string(d.Action), class).Inc()
}

// heldNow reports whether the operator has held the message since it was
// leased. It is asked only when a retry would expire, so the extra read is rare.
func (e *Engine) heldNow(id queue.ID) bool {
	m, err := e.store.Get(id)
	return err == nil && m.Held
}

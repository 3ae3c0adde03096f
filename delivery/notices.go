package delivery

import (
	"bytes"
	"io"
	"strings"
	"time"

	"mailq/esmtp"
	"mailq/metrics"
	"mailq/policy"
	"mailq/queue"
)

// Notices: policy decides who wants one and composes it; delivery gathers
// the recipients and enqueues the result as an ordinary queue message from
// <> to the original sender (docs/delivery.md "Bounces and warnings"), so notices are as
// durable and retried as any mail. A message from <> never causes one.

// routeNotify is the route's dsn.notify ("" when there is no route).
func routeNotify(r *Route) string {
	if r == nil {
		return ""
	}
	return r.Settings.DSNNotify
}

// queueFailureNotice sends one DSN for this decision batch: Action failed
// for each bounced recipient whose effective NOTIFY includes FAILURE, and
// Action relayed for each delivered one that asked for SUCCESS from a next
// hop that did not take the DSN request itself (RFC 3461 §6.2.1.2).
func (e *Engine) queueFailureNotice(m *queue.Message, all []decided, now time.Time) {
	if policy.IsNullSender(m.Sender) {
		return
	}
	var rcpts []policy.NoticeRecipient
	var ret string
	for _, dc := range all {
		d := dc.decision
		notify := policy.EffectiveNotify(dc.rcpt.Notify, routeNotify(dc.res.route))
		var action string
		switch {
		case d.Action == policy.Bounce && policy.WantsNotice(m.Sender, notify, policy.NoticeFailure):
			action = policy.ActionFailed
		case d.Action == policy.Deliver && policy.SuccessNoticeDue(m.Sender, notify, dc.res.nextHopDSN):
			action = policy.ActionRelayed
		default:
			continue
		}
		if ret == "" && dc.res.route != nil {
			ret = dc.res.route.Settings.DSNRet
		}
		rcpts = append(rcpts, policy.NoticeRecipient{
			Address:     d.Recipient,
			ORCPT:       dc.rcpt.ORCPT,
			Action:      action,
			Status:      statusOrDefault(d),
			RemoteMTA:   remoteHost(dc.res.remote),
			Diagnostic:  d.Diagnostic,
			LastAttempt: now,
		})
	}
	if len(rcpts) == 0 {
		return
	}
	if m.Ret != "" {
		ret = m.Ret
	}
	e.enqueueNotice(m, policy.Notice{Ret: ret, Recipients: rcpts}, now)
}

// queueDelayWarning sends the message's one delay warning when it is due:
// Action delayed for every recipient still to do (retried now, or waiting
// without being leased) whose effective NOTIFY includes DELAY. It reports
// whether a warning was queued, so the caller marks the message warned.
func (e *Engine) queueDelayWarning(m *queue.Message, all []decided, now time.Time) bool {
	if m.DelayWarned || policy.IsNullSender(m.Sender) {
		return false
	}
	e.mu.Lock()
	rt := e.router
	e.mu.Unlock()

	decidedNow := make(map[string]decided, len(all))
	for _, dc := range all {
		decidedNow[dc.rcpt.Address] = dc
	}
	var rcpts []policy.NoticeRecipient
	for _, rc := range m.Recipients {
		if rc.State.Done() {
			continue
		}
		route := rt.lookup(rc.Address)
		rn := policy.NoticeRecipient{Address: rc.Address, ORCPT: rc.ORCPT, Action: policy.ActionDelayed, Status: "4.0.0"}
		if dc, ok := decidedNow[rc.Address]; ok {
			if dc.decision.Action != policy.Retry {
				continue
			}
			route = dc.res.route
			rn.Status = statusOrDefault(dc.decision)
			rn.Diagnostic = dc.decision.Diagnostic
			rn.RemoteMTA = remoteHost(dc.res.remote)
			rn.LastAttempt = now
		} else if rc.LastReply != nil {
			rn.Status = policy.StatusOf(*rc.LastReply)
			rn.Diagnostic = policy.DiagnosticOf(*rc.LastReply)
		}
		if route == nil {
			continue
		}
		if !policy.DelayWarningDue(m.Arrival, m.HeldFor, now, route.Retry, false) {
			continue
		}
		if !policy.WantsNotice(m.Sender, policy.EffectiveNotify(rc.Notify, routeNotify(route)), policy.NoticeDelay) {
			continue
		}
		rn.WillRetryUntil = policy.Deadline(m.Arrival, m.HeldFor, route.Retry)
		rcpts = append(rcpts, rn)
	}
	if len(rcpts) == 0 {
		return false
	}
	// A delay warning carries only the headers: the message is still
	// being delivered, there is nothing to return yet.
	return e.enqueueNotice(m, policy.Notice{Kind: policy.NoticeDelay, Ret: "HDRS", Recipients: rcpts}, now)
}

// enqueueNotice composes n for message m and queues it. It reports success.
func (e *Engine) enqueueNotice(m *queue.Message, n policy.Notice, now time.Time) bool {
	n.ReportingMTA = e.opts.Hostname
	n.EnvID = m.EnvID
	n.Arrival = m.Arrival
	n.Sender = m.Sender
	n.MessageID = string(m.ID)
	n.Now = now
	var original io.Reader
	if body, err := e.store.Body(m.ID); err == nil {
		defer body.Close()
		original = body
	} else {
		e.log.Warn().Err(err).Str("queue_id", string(m.ID)).Msg("cannot read the original for the notice; sending it without the original's headers")
	}
	dsn, err := policy.BuildDSN(n, original)
	if err != nil {
		e.log.Error().Err(err).Str("queue_id", string(m.ID)).Msg("cannot compose the delivery status notification; the sender is not notified")
		return false
	}
	id, err := e.store.Enqueue(queue.Envelope{
		Sender:     "",
		Recipients: []queue.RecipientSpec{{Address: m.Sender}},
		Source:     "dsn",
		SMTPUTF8:   !esmtp.IsASCII(m.Sender),
	}, bytes.NewReader(dsn))
	if err != nil {
		e.log.Error().Err(err).Str("queue_id", string(m.ID)).Msg("cannot queue the delivery status notification; the sender is not notified")
		return false
	}
	e.log.Info().Str("queue_id", string(m.ID)).Str("dsn_id", string(id)).Str("to", m.Sender).
		Str("action", n.Recipients[0].Action).Int("recipients", len(n.Recipients)).Msg("delivery status notification queued")
	// The notice's own story starts here, under its own id.
	e.log.Info().Str("queue_id", string(id)).Str("source", "dsn").Str("cause", string(m.ID)).Str("sender", "").
		Int("size", len(dsn)).Int("recipients", 1).Msg("arrived")
	var actions []string
	for _, r := range n.Recipients {
		actions = appendUnique(actions, r.Action)
	}
	for _, a := range actions {
		metrics.DSNSent.WithLabelValues(a).Inc()
	}
	metrics.Enqueued.WithLabelValues("dsn").Inc()
	return true
}

// statusOrDefault is the decision's RFC 3463 status, or the generic one of
// its class when policy found none.
func statusOrDefault(d policy.Decision) string {
	if d.Status != "" {
		return d.Status
	}
	switch d.Action {
	case policy.Deliver:
		return "2.0.0"
	case policy.Bounce:
		return "5.0.0"
	}
	return "4.0.0"
}

// remoteHost is the host part of "host:port" for Remote-MTA.
func remoteHost(remote string) string {
	if i := strings.LastIndexByte(remote, ':'); i > 0 {
		return strings.Trim(remote[:i], "[]")
	}
	return remote
}

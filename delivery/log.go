package delivery

import (
	"time"

	"github.com/rs/zerolog"

	"mailq/policy"
	"mailq/queue"
)

// logOutcome writes the one line per recipient outcome an operator reads to
// answer "what happened to this mail" (Postfix's smtp log line, as JSON):
// queue_id, recipient, route, remote (host:port), tls, attempt, decision,
// code, enhanced, reply, delay (seconds in the queue) and next_attempt.
// Delivered is info, retry and bounce warn, an operator error (AUTH or TLS
// misconfiguration) error. Nothing here comes from credentials: replies are
// the server's, and smtpproto keeps AUTH exchanges out of them.
func (e *Engine) logOutcome(m *queue.Message, dc decided, now time.Time) {
	d := dc.decision
	var ev *zerolog.Event
	switch {
	case d.OperatorError:
		ev = e.log.Error()
	case d.Action == policy.Deliver:
		ev = e.log.Info()
	default:
		ev = e.log.Warn()
	}
	route := ""
	if dc.res.route != nil {
		route = dc.res.route.Name()
	}
	ev = ev.Str("queue_id", string(m.ID)).
		Str("recipient", d.Recipient).
		Str("route", route).
		Str("remote", dc.res.remote).
		Str("tls", dc.res.tls).
		Int("attempt", dc.rcpt.Attempts).
		Str("decision", string(d.Action)).
		Str("status", d.Status)
	if d.Reply != nil {
		ev = ev.Int("code", d.Reply.Code).Str("enhanced", d.Reply.Enhanced).Str("reply", d.Reply.Text)
	} else {
		ev = ev.Int("code", 0).Str("enhanced", "").Str("reply", d.Diagnostic)
	}
	ev = ev.Float64("delay", now.Sub(m.Arrival).Round(time.Millisecond).Seconds())
	if d.Action == policy.Retry && !d.RetryAt.IsZero() {
		ev = ev.Time("next_attempt", d.RetryAt)
	}
	if d.OperatorError {
		ev = ev.Str("action_needed", "fix the route's credentials or TLS settings; mail is retried meanwhile")
	}
	ev.Msg(string(d.Action))
}

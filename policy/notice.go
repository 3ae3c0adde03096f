package policy

import (
	"strings"
	"time"
)

// NoticeKind is the kind of delivery status notification (RFC 3461 §4.1
// NOTIFY keywords).
type NoticeKind string

const (
	NoticeFailure NoticeKind = "FAILURE" // a recipient bounced (Action: failed)
	NoticeDelay   NoticeKind = "DELAY"   // still retrying after delay_warning (Action: delayed)
	NoticeSuccess NoticeKind = "SUCCESS" // delivered to a next hop that did not take the DSN request (Action: relayed)
)

// DefaultNotify is the effective NOTIFY when neither the recipient nor the
// route says (docs/delivery.md "Bounces and warnings").
const DefaultNotify = "FAILURE,DELAY"

// EffectiveNotify is the recipient's own NOTIFY, else the route's dsn.notify,
// else "FAILURE,DELAY" — normalized to upper case without spaces.
func EffectiveNotify(own, routeDefault string) string {
	for _, v := range []string{own, routeDefault} {
		if n := normalizeNotify(v); n != "" {
			return n
		}
	}
	return DefaultNotify
}

func normalizeNotify(s string) string {
	var keep []string
	for _, k := range strings.Split(s, ",") {
		if k = strings.ToUpper(strings.TrimSpace(k)); k != "" {
			keep = append(keep, k)
		}
	}
	return strings.Join(keep, ",")
}

// IsNullSender reports the null reverse-path (RFC 5321 §4.5.5), which must
// never receive a notification (that is how bounce loops are avoided).
func IsNullSender(sender string) bool {
	s := strings.TrimSpace(sender)
	return s == "" || s == "<>"
}

// WantsNotice reports whether a notice of kind goes to sender for a recipient
// whose effective NOTIFY is notify: never for the null sender; never with
// NEVER (RFC 3461 §4.1); otherwise when notify lists kind. An empty notify
// means the default, FAILURE,DELAY.
func WantsNotice(sender, notify string, kind NoticeKind) bool {
	if IsNullSender(sender) {
		return false
	}
	n := normalizeNotify(notify)
	if n == "" {
		n = DefaultNotify
	}
	found := false
	for _, k := range strings.Split(n, ",") {
		switch NoticeKind(k) {
		case "NEVER":
			return false
		case kind:
			found = true
		}
	}
	return found
}

// SuccessNoticeDue reports whether mailq itself must send a success notice
// (Action: relayed) for a delivered recipient: the sender asked for SUCCESS
// and the next hop did not take the DSN request itself (it did not advertise
// the DSN extension, RFC 3461 §6.2.1.2); when it did, the next hop reports.
func SuccessNoticeDue(sender, notify string, nextHopTookDSN bool) bool {
	return !nextHopTookDSN && WantsNotice(sender, notify, NoticeSuccess)
}

// DelayWarningDue reports whether the message's one delay warning should go
// out now: not yet sent, delay_warning > 0, and now is at or past
// arrival + heldFor + delay_warning (time held does not count, as for the
// lifetime). No warning is due once the deadline is reached, because the
// recipients then bounce instead. Whether the sender wants it is WantsNotice's
// question, asked per recipient with NoticeDelay.
func DelayWarningDue(arrival time.Time, heldFor time.Duration, now time.Time, p RetryPolicy, alreadyWarned bool) bool {
	if alreadyWarned || p.DelayWarning <= 0 {
		return false
	}
	warnAt := arrival.Add(max(heldFor, 0) + p.DelayWarning)
	if now.Before(warnAt) {
		return false
	}
	return p.MaxLifetime <= 0 || now.Before(Deadline(arrival, heldFor, p))
}

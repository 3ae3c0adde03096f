package policy

import (
	"errors"

	"mailq/smtpproto"
)

// Statuses for attempts that ended without a reply deciding the recipient
// (RFC 3463 §3.5 network and routing, §3.8 security). They are all class 4:
// docs/delivery.md retries every connection-level failure.
const (
	StatusNoAnswer      = "4.4.1" // could not connect (refused, unreachable, connect timeout)
	StatusBadConnection = "4.4.2" // connection broke, timed out, or greeting/EHLO went wrong
	StatusSecurity      = "4.7.0" // TLS or AUTH failed: ours to fix, never a bounce
)

// Classify turns one attempt's outcome into one Decision per recipient of
// res, in its order, by the table in docs/delivery.md. The recipient's
// Final reply decides: delivered when end-of-data said 2xx; 5xx (MAIL FROM,
// RCPT, DATA or end-of-data) bounces; 4xx (including a leftover 452)
// retries. A recipient without a final non-2xx reply was cut off by a
// connection-level failure (connect, greeting, TLS, AUTH, timeout, lost
// connection — also after the final dot: delivery is at-least-once) and is
// retried; err, when it is one of smtpproto's connection-level errors,
// supplies the status and diagnostic. Retry decisions get RetryAt from
// Schedule. A nil res yields nil (see ConnectionFailure for Dial errors).
func Classify(res *smtpproto.Result, err error) []Decision {
	if res == nil {
		return nil
	}
	ds := make([]Decision, 0, len(res.Recipients))
	for _, rr := range res.Recipients {
		ds = append(ds, classifyOne(rr, err))
	}
	return ds
}

// ConnectionFailure is Classify for an attempt that never reached a
// transaction (smtpproto.Dial failed): every recipient is retried.
func ConnectionFailure(recipients []string, err error) []Decision {
	res := &smtpproto.Result{Recipients: make([]smtpproto.RecipientResult, len(recipients))}
	for i, a := range recipients {
		res.Recipients[i].Address = a
	}
	return Classify(res, err)
}

func classifyOne(rr smtpproto.RecipientResult, err error) Decision {
	d := Decision{Recipient: rr.Address}
	if rr.Delivered {
		d.Action = Deliver
		d.Status = "2.0.0"
		if rr.Final != nil {
			d.Reply = fromProto(rr.Final)
			d.Status = StatusOf(*d.Reply)
			d.Diagnostic = DiagnosticOf(*d.Reply)
		}
		return d
	}
	if f := rr.Final; f != nil && (f.Permanent() || f.Temporary()) {
		d.Reply = fromProto(f)
		d.Status = StatusOf(*d.Reply)
		d.Diagnostic = DiagnosticOf(*d.Reply)
		d.Action = Retry
		if f.Permanent() {
			d.Action = Bounce
		}
		return d
	}
	if f := rr.Final; f != nil && f.Code/100 != 2 {
		// Not an SMTP outcome at all (1xx, 3xx, garbage): never bounce on it.
		d.Action = Retry
		d.Reply = fromProto(f)
		d.Status = StatusOf(*d.Reply)
		d.Diagnostic = DiagnosticOf(*d.Reply)
		return d
	}
	// No deciding reply: the connection failed before or during the
	// transaction (a 2xx Final without Delivered is an accepted RCPT whose
	// transaction never completed).
	d.Action = Retry
	d.Status, d.Reply, d.Diagnostic, d.OperatorError = connectionFailure(err)
	return d
}

// connectionFailure describes a connection-level error for a retried recipient.
func connectionFailure(err error) (status string, reply *Reply, diagnostic string, operator bool) {
	var (
		authErr  *smtpproto.AuthError
		tlsErr   *smtpproto.TLSError
		connErr  *smtpproto.ConnectError
		protoErr *smtpproto.ProtocolError
	)
	switch {
	case err == nil:
		return StatusBadConnection, nil, "the connection ended before the server replied for this recipient", false
	case errors.As(err, &authErr):
		// Bad credentials are ours to fix: retry, and tell the operator.
		return StatusSecurity, fromProto(authErr.Reply), oneLine(err.Error()), true
	case errors.As(err, &tlsErr):
		// Certificate trust/identity or a STARTTLS the route requires but the
		// server lacks: configuration on one side or the other.
		return StatusSecurity, fromProto(tlsErr.Reply), oneLine(err.Error()), true
	case errors.As(err, &connErr):
		return StatusNoAnswer, nil, oneLine(err.Error()), false
	case errors.As(err, &protoErr) && protoErr.Reply != nil:
		// A refused greeting or EHLO: keep its subject.detail, as class 4.
		r := fromProto(protoErr.Reply)
		return "4" + StatusOf(*r)[1:], r, oneLine(err.Error()), false
	default:
		return StatusBadConnection, nil, oneLine(err.Error()), false
	}
}

func fromProto(r *smtpproto.Reply) *Reply {
	if r == nil {
		return nil
	}
	c := *r
	return &c
}

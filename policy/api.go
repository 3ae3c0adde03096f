// Package policy turns what an SMTP server said into per-recipient queue
// decisions, computes the retry schedule, and composes RFC 3464 delivery
// status notifications. It does no I/O.
package policy

// This file is the contract delivery codes against. The implementation
// lives in the other files of this package.

import (
	"time"

	"mailq/esmtp"
)

// Action is the decision for one recipient after an attempt.
type Action string

const (
	Deliver Action = "delivered"
	Retry   Action = "retry"
	Bounce  Action = "bounce"
)

// Reply is one server reply (the one reply type, owned by esmtp).
type Reply = esmtp.Reply

// Decision is the verdict for one recipient.
type Decision struct {
	Recipient string
	Action    Action
	// Reply is the server reply that decided it; nil for connection-level
	// failures that produced no reply (then Diagnostic says what happened).
	Reply *Reply
	// Status is the RFC 3463 status for a DSN ("5.1.1", "4.4.7", ...):
	// the reply's enhanced code, or one derived from its basic code / the failure.
	Status string
	// Diagnostic is a one-line human explanation ("smtp; 550 5.1.1 no such user"
	// or "connection refused by 127.0.0.1:25").
	Diagnostic string
	// RetryAt is set for Retry.
	RetryAt time.Time
	// OperatorError is set for failures an operator must fix (AUTH rejected,
	// TLS misconfiguration); delivery logs these at error level.
	OperatorError bool
}

// RetryPolicy is the [retry] table (merged with a route's [route.retry]).
type RetryPolicy struct {
	Initial      time.Duration
	Multiplier   float64
	MaxInterval  time.Duration
	Jitter       float64 // 0.1 = ±10%
	MaxLifetime  time.Duration
	DelayWarning time.Duration
}

// Implemented in the other files:
//
//	func DefaultRetryPolicy() RetryPolicy // 5m, 2.0, 1h, 0.1, 120h, 4h
//	func (p RetryPolicy) Backoff(n int) time.Duration // uncapped-by-deadline, unjittered gap after the n-th failure (n>=1), built on cenkalti/backoff/v4
//	func (p RetryPolicy) Next(n int, failedAt, deadline time.Time, rnd func() float64) (next time.Time, expired bool)
//	    // n-th failed attempt at failedAt: next attempt time per docs/delivery.md (jitter
//	    // drawn via rnd in [0,1)); expired when failedAt >= deadline (bounce with 4.4.7).
//	func Deadline(arrival time.Time, heldFor time.Duration, p RetryPolicy) time.Time
//	func Classify(res *smtpproto.Result, err error) []Decision
//	    // per-recipient verdict per docs/delivery.md; Retry decisions carry no RetryAt yet.
//	func Schedule(ds []Decision, attempt int, now, deadline time.Time, p RetryPolicy, rnd func() float64) []Decision
//	    // fills RetryAt for Retry decisions, turns expired ones into Bounce with Status 4.4.7
//	    // and Diagnostic keeping the last reply.
//	func EffectiveNotify(own, routeDefault string) string // own, else route's dsn.notify, else "FAILURE,DELAY"
//	func WantsNotice(sender, notify string, kind NoticeKind) bool // no notice for the null sender; NEVER; FAILURE/DELAY/SUCCESS
//	func BuildDSN(n Notice, original io.Reader) ([]byte, error) // RFC 3464 multipart/report via go-message

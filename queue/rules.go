package queue

// The rules both stores apply to a message's recipients, kept here so that
// bbolt and PostgreSQL cannot come to disagree on them.

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// StatusOf derives a message's status from its recipients (docs/cli.md
// "States"): done when none is left to do, else held, else active while a
// lease is out, else deferred once any recipient still to do was tried.
func StatusOf(rcpts []Recipient, held, leased bool) Status {
	left, tried := false, false
	for _, rc := range rcpts {
		if !rc.State.Done() {
			left = true
			if rc.Attempts > 0 {
				tried = true
			}
		}
	}
	switch {
	case !left:
		return StatusDone
	case held:
		return StatusHeld
	case leased:
		return StatusActive
	case tried:
		return StatusDeferred
	default:
		return StatusQueued
	}
}

// EarliestAttempt is the earliest NextAttempt of the recipients still to
// do; zero when none is left.
func EarliestAttempt(rcpts []Recipient) time.Time {
	var t time.Time
	for _, rc := range rcpts {
		if rc.State.Done() {
			continue
		}
		if t.IsZero() || rc.NextAttempt.Before(t) {
			t = rc.NextAttempt
		}
	}
	return t
}

// MakeDueNow makes every recipient still to do and not in flight (not in
// leased) due at now.
func MakeDueNow(rcpts []Recipient, leased []string, now time.Time) {
	for i := range rcpts {
		rc := &rcpts[i]
		if !rc.State.Done() && !slices.Contains(leased, rc.Address) {
			rc.NextAttempt = now
		}
	}
}

// BringForward is MakeDueNow for an operator's retry or flush: each
// recipient brought forward remembers the attempt it was scheduled for
// (ResumeAt), so that a failed early attempt does not push its schedule
// out.
func BringForward(rcpts []Recipient, leased []string, now time.Time) {
	for i := range rcpts {
		rc := &rcpts[i]
		if rc.State.Done() || slices.Contains(leased, rc.Address) || !rc.NextAttempt.After(now) {
			continue
		}
		if rc.ResumeAt.IsZero() {
			rc.ResumeAt = rc.NextAttempt
		}
		rc.NextAttempt = now
	}
}

// Broadcast wakes every waiter at once: Wait returns a channel that the
// next Fire closes (a store's EventsChanged). The zero value is ready.
type Broadcast struct {
	mu sync.Mutex
	ch chan struct{}
}

// Wait returns the channel the next Fire closes.
func (b *Broadcast) Wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch == nil {
		b.ch = make(chan struct{})
	}
	return b.ch
}

// Fire wakes everyone waiting now.
func (b *Broadcast) Fire() {
	b.mu.Lock()
	if b.ch != nil {
		close(b.ch)
		b.ch = nil
	}
	b.mu.Unlock()
}

// Tally counts what ApplyOutcomes decided, in recipients.
type Tally struct {
	Delivered, Bounced, Deferred int64
	// Due is set when a recipient is to be tried again (the schedule moved).
	Due bool
}

// ApplyOutcomes completes the lease of m whose attempt is m.Attempts[index]:
// that record is replaced by attempts (completed, keeping whether an operator
// asked for it), and each recipient in leased still to do takes its outcome.
// A leased recipient without an outcome is due again at now. An operator's
// early attempt that failed returns a recipient to the schedule it brought
// forward (ResumeAt). It returns the attempt records as stored.
func ApplyOutcomes(m *Message, leased []string, index int, attempts []Attempt, outcomes []Outcome, now time.Time) ([]Attempt, Tally, error) {
	var t Tally
	if index < 0 || index >= len(m.Attempts) {
		return nil, t, fmt.Errorf("message %s: lease attempt index %d out of range (have %d attempts)", m.ID, index, len(m.Attempts))
	}
	decided := map[string]Outcome{}
	for _, o := range outcomes {
		if !slices.Contains(leased, o.Recipient) {
			return nil, t, fmt.Errorf("message %s: outcome for %q, which this lease does not hold (leased: %s)",
				m.ID, o.Recipient, strings.Join(leased, ", "))
		}
		switch o.Decision {
		case DecideDelivered, DecideBounce, DecideRetry:
		default:
			return nil, t, fmt.Errorf("message %s: outcome for %q has unknown decision %q", m.ID, o.Recipient, o.Decision)
		}
		decided[o.Recipient] = o
	}
	done := make([]Attempt, len(attempts))
	operator := m.Attempts[index].Operator
	for i, a := range attempts {
		a.Interrupted = false
		a.Operator = operator
		done[i] = a
	}
	m.Attempts = slices.Replace(m.Attempts, index, index+1, done...)
	for i := range m.Recipients {
		rc := &m.Recipients[i]
		if !slices.Contains(leased, rc.Address) || rc.State.Done() {
			continue
		}
		resume := rc.ResumeAt
		rc.ResumeAt = time.Time{}
		o, ok := decided[rc.Address]
		if !ok {
			rc.State, rc.NextAttempt = Deferred, now
			if resume.After(now) {
				// Brought forward by an operator and left undecided
				// (a bounce of other recipients): back to its schedule.
				rc.NextAttempt = resume
			}
			t.Due = true
			continue
		}
		if o.Reply != nil {
			reply := *o.Reply
			rc.LastReply = &reply
		}
		switch o.Decision {
		case DecideDelivered:
			rc.State, rc.NextAttempt = Delivered, time.Time{}
			t.Delivered++
		case DecideBounce:
			rc.State, rc.NextAttempt = Bounced, time.Time{}
			t.Bounced++
		case DecideRetry:
			rc.State, rc.NextAttempt = Deferred, o.RetryAt
			if o.RetryAt.IsZero() {
				rc.NextAttempt = now
			}
			if resume.After(now) && resume.Before(rc.NextAttempt) {
				// An operator's early attempt failed: back to the
				// schedule it interrupted (README, retry schedule).
				rc.NextAttempt = resume
			}
			t.Deferred++
			t.Due = true
		}
	}
	return done, t, nil
}

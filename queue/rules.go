package queue

// The rules both stores apply to a message's recipients, kept here so that
// bbolt and PostgreSQL cannot come to disagree on them.

import (
	"slices"
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

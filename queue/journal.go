package queue

// The journal's contract: every change an application may want to hear
// about (an arrival, a recipient outcome, a delay warning, an operator
// delete) is handed to Options.Journal inside the very transaction that
// makes it, and what the journal returns is stored with that change. So an
// event exists if and only if its change committed.

import (
	"slices"
	"time"
)

// ChangeKind says what a Change is.
type ChangeKind string

const (
	ChangeArrived     ChangeKind = "arrived"      // Enqueue stored the message
	ChangeOutcome     ChangeKind = "outcome"      // RecordOutcome decided recipients
	ChangeDelayWarned ChangeKind = "delay_warned" // SetDelayWarned: a delay warning was queued
	ChangeDeleted     ChangeKind = "deleted"      // Delete removed the message
)

// Change is one committed-to-be change of a message, as Options.Journal
// sees it. Message is the message after the change (before it, for
// ChangeDeleted); callers must not keep or modify it.
type Change struct {
	Kind     ChangeKind
	Time     time.Time
	Message  *Message
	Attempts []Attempt // ChangeOutcome: the attempt records (one per route and connection)
	Outcomes []Outcome // ChangeOutcome: the outcomes recorded, in the order given
}

// AttemptFor is the attempt record that carried recipient: the last one
// naming it, else the last record (a connection that failed before RCPT
// names nobody), or nil when there is none.
func (c Change) AttemptFor(recipient string) *Attempt {
	for i := len(c.Attempts) - 1; i >= 0; i-- {
		if slices.Contains(c.Attempts[i].Recipients, recipient) {
			return &c.Attempts[i]
		}
	}
	if n := len(c.Attempts); n > 0 {
		return &c.Attempts[n-1]
	}
	return nil
}

// Journal turns a change into event payloads to store with it. It runs in
// the store's writer, inside the transaction: it must be quick, must do no
// I/O and must be deterministic (a rolled-back batch runs it again).
type Journal func(c Change) [][]byte

// StoredEvent is one event of the log: its sequence number (unique, rising
// in commit order), the time of its change and the journal's payload.
type StoredEvent struct {
	Seq  uint64
	Time time.Time
	Data []byte
}

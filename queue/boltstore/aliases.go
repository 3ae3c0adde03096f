// Package boltstore is mailq's embedded queue store: one bbolt file holding
// bodies, envelopes, per-recipient state, a schedule index by next-attempt
// time and the attempt history (the layout is in store.go). It implements
// queue.Store.
package boltstore

// The store speaks queue's types under their own names: these aliases let
// the implementation read as it did when it and the contract were one
// package, while every other package names them queue.X.

import "mailq/queue"

type (
	ID              = queue.ID
	RecipientState  = queue.RecipientState
	Status          = queue.Status
	Reply           = queue.Reply
	RecipientSpec   = queue.RecipientSpec
	Envelope        = queue.Envelope
	Recipient       = queue.Recipient
	StepReply       = queue.StepReply
	Attempt         = queue.Attempt
	Message         = queue.Message
	Decision        = queue.Decision
	Outcome         = queue.Outcome
	Lease           = queue.Lease
	Filter          = queue.Filter
	Stats           = queue.Stats
	Options         = queue.Options
	RebuildProgress = queue.RebuildProgress
	ChangeKind      = queue.ChangeKind
	Change          = queue.Change
	Journal         = queue.Journal
	StoredEvent     = queue.StoredEvent
	Suppression     = queue.Suppression
)

const (
	Pending   = queue.Pending
	Deferred  = queue.Deferred
	Delivered = queue.Delivered
	Bounced   = queue.Bounced

	StatusQueued   = queue.StatusQueued
	StatusActive   = queue.StatusActive
	StatusDeferred = queue.StatusDeferred
	StatusHeld     = queue.StatusHeld
	StatusDone     = queue.StatusDone

	DecideDelivered = queue.DecideDelivered
	DecideRetry     = queue.DecideRetry
	DecideBounce    = queue.DecideBounce

	ChangeArrived     = queue.ChangeArrived
	ChangeOutcome     = queue.ChangeOutcome
	ChangeDelayWarned = queue.ChangeDelayWarned
	ChangeDeleted     = queue.ChangeDeleted

	DefaultRetention = queue.DefaultRetention
)

var (
	ErrNotFound    = queue.ErrNotFound
	ErrClosed      = queue.ErrClosed
	ErrLeaseLost   = queue.ErrLeaseLost
	ErrDone        = queue.ErrDone
	ErrHeld        = queue.ErrHeld
	ErrNotHeld     = queue.ErrNotHeld
	ErrNoRecipient = queue.ErrNoRecipient
	ErrInFlight    = queue.ErrInFlight
	ErrBodyDropped = queue.ErrBodyDropped
)

// MatchAddress is queue.MatchAddress.
func MatchAddress(pattern, addr string) bool { return queue.MatchAddress(pattern, addr) }

// Store implements the contract.
var _ queue.Store = (*Store)(nil)

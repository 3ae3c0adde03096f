// Package queue is the contract of mailq's durable queue: the types every
// other package speaks (messages, recipients, attempts, leases, outcomes)
// and the Store interface two implementations satisfy: queue/boltstore, one
// bbolt file, the embedded default; and queue/pgstore, PostgreSQL, for
// several nodes sharing one queue. queue/queuetest holds the behaviour both
// must show.
package queue

import (
	"errors"
	"time"

	"mailq/esmtp"
)

// ID identifies a message for the life of the spool. IDs sort by arrival and
// are never reused (they come from a persistent sequence, not from a clock).
type ID string

// RecipientState is where one recipient stands.
type RecipientState string

const (
	Pending   RecipientState = "pending"   // not yet tried
	Deferred  RecipientState = "deferred"  // tried, will retry
	Delivered RecipientState = "delivered" // done: accepted by the next hop
	Bounced   RecipientState = "bounced"   // done: failed permanently (or lifetime exceeded)
)

// Done reports whether nothing more will be done for a recipient in this state.
func (s RecipientState) Done() bool { return s == Delivered || s == Bounced }

// Status is the message-level status shown by list/show (docs/cli.md "States").
type Status string

const (
	StatusQueued   Status = "queued"
	StatusActive   Status = "active"
	StatusDeferred Status = "deferred"
	StatusHeld     Status = "held"
	StatusDone     Status = "done"
)

// Reply is one server reply: code, RFC 3463 enhanced status code, text
// (the one reply type, owned by esmtp; stored as {"code","enhanced","text"}).
type Reply = esmtp.Reply

// RecipientSpec is a recipient as submitted.
type RecipientSpec struct {
	Address string `json:"address"`
	Notify  string `json:"notify,omitempty"` // RFC 3461 NOTIFY, e.g. "FAILURE,DELAY" or "NEVER"; "" = unspecified
	ORCPT   string `json:"orcpt,omitempty"`  // RFC 3461 ORCPT, e.g. "rfc822;a@example.com"
}

// Envelope is what is submitted alongside a body.
type Envelope struct {
	Sender     string          `json:"sender"` // "" is the null sender <>
	Recipients []RecipientSpec `json:"recipients"`
	EnvID      string          `json:"envid,omitempty"` // RFC 3461 ENVID
	Ret        string          `json:"ret,omitempty"`   // "", "FULL" or "HDRS"
	SMTPUTF8   bool            `json:"smtputf8,omitempty"`
	Source     string          `json:"source,omitempty"` // intake path: "smtp", "control", "sendmail", "maildrop", "dsn"
	// MessageID is the Message-ID header field; when empty, Enqueue asks
	// Options.MessageIDOf for it.
	MessageID string `json:"message_id,omitempty"`
}

// Recipient is a recipient with its delivery state.
type Recipient struct {
	Address     string         `json:"address"`
	Notify      string         `json:"notify"`
	ORCPT       string         `json:"orcpt"`
	State       RecipientState `json:"state"`
	Attempts    int            `json:"attempts"`
	NextAttempt time.Time      `json:"next_attempt,omitzero"` // omitted when done
	LastReply   *Reply         `json:"last_reply"`            // nil until tried
	// OperatorAttempts counts the attempts an operator asked for (retry,
	// flush); they are in Attempts too but do not advance the backoff.
	OperatorAttempts int `json:"operator_attempts,omitempty"`
	// ResumeAt is the scheduled attempt an operator's retry or flush
	// brought forward; a failed operator attempt returns to it (zero when
	// no request is pending).
	ResumeAt time.Time `json:"resume_at,omitzero"`
}

// StepReply is the reply to one command within an attempt.
type StepReply struct {
	Command string `json:"command"` // e.g. "RCPT TO:<b@example.org>"; AUTH lines are never stored
	Reply
}

// Attempt is one delivery attempt, recorded when it starts (Lease) and
// completed when its outcome is recorded.
type Attempt struct {
	Time       time.Time   `json:"time"`
	Route      string      `json:"route"`
	Remote     string      `json:"remote"`
	TLS        string      `json:"tls"`
	DurationMS int64       `json:"duration_ms"`
	Recipients []string    `json:"recipients"`
	Replies    []StepReply `json:"replies"`
	Transcript []string    `json:"transcript,omitempty"`
	// Proxy is the proxy the connection went through ("socks5 h:p",
	// "http proxy h:p"); Cipher the TLS cipher suite once negotiated;
	// Error why the attempt failed when no server reply decided it
	// (connection refused, TLS or AUTH failure, timeout).
	Proxy  string `json:"proxy,omitempty"`
	Cipher string `json:"cipher,omitempty"`
	Error  string `json:"error,omitempty"`
	// Interrupted is set when the attempt never recorded an outcome (the
	// daemon stopped or crashed mid-delivery); it counts as a failed attempt.
	Interrupted bool `json:"interrupted,omitempty"`
	// Operator is set when an operator's retry or flush made this attempt
	// happen early; it does not advance the backoff schedule.
	Operator bool `json:"operator,omitempty"`
}

// Message is a stored message without its body.
type Message struct {
	ID          ID          `json:"id"`
	Status      Status      `json:"status"`
	Sender      string      `json:"sender"`
	Size        int64       `json:"size"`
	Arrival     time.Time   `json:"arrival"`
	NextAttempt time.Time   `json:"next_attempt,omitzero"` // earliest of the recipients still to do; omitted (zero) when done
	Held        bool        `json:"held"`
	EnvID       string      `json:"envid"`
	Ret         string      `json:"ret"`
	SMTPUTF8    bool        `json:"smtputf8"` // an address or the header section needs SMTPUTF8 (RFC 6531 §3.4)
	EightBit    bool        `json:"eightbit"` // the body has bytes >= 0x80 (BODY=8BITMIME when the server offers it)
	Source      string      `json:"source"`
	Recipients  []Recipient `json:"recipients"`
	Attempts    []Attempt   `json:"attempts,omitempty"`
	// HeldFor is the total time spent held; it extends the lifetime deadline.
	HeldFor time.Duration `json:"held_for_ns"`
	// DelayWarned is set once a delay warning (RFC 3464 Action: delayed) was queued.
	DelayWarned bool      `json:"delay_warned"`
	Finished    time.Time `json:"finished,omitzero"` // when the last recipient became done
	// MessageID is the Message-ID header field, for events.
	MessageID string `json:"message_id,omitempty"`
}

// Decision is what happens to one recipient after an attempt.
type Decision string

const (
	DecideDelivered Decision = "delivered"
	DecideRetry     Decision = "retry"
	DecideBounce    Decision = "bounce"
)

// Outcome is the decision for one recipient of a leased message.
type Outcome struct {
	Recipient string
	Decision  Decision
	RetryAt   time.Time // for DecideRetry
	Reply     *Reply    // the reply that decided it (nil for connection-level failures without reply)
	// CountsAsAttempt is false for outcomes that must not use up an attempt
	// (e.g. a 452 too-many-recipients split); Lease already counted one.
	// Reserved: RecordOutcome currently ignores it.
	CountsAsAttempt bool
	// Cause refines a bounce for the journal: "" (the server or the
	// policy refused), "expired", "operator" or "suppressed".
	Cause string
	// Suppress adds the recipient to the suppression list, with Reply, in
	// the transaction that records the outcome.
	Suppress bool
}

// Lease is a message handed to a worker. Lease has already recorded the
// attempt (Attempt index AttemptIndex in Message.Attempts) and marked the
// leased recipients in flight, so a crash looks like a failed attempt.
type Lease struct {
	Message      *Message
	Recipients   []string // the recipients due now and leased; others stay as they are
	AttemptIndex int
	Token        uint64 // identifies this lease; RecordOutcome checks it
	// MarkDelayWarned, set by the caller before RecordOutcome or
	// RecordAttempts, makes that same transaction do what SetDelayWarned
	// does: one commit fewer when a delay warning went out with the attempt.
	MarkDelayWarned bool
}

// Filter selects messages for List. Zero fields match everything.
type Filter struct {
	Status Status // "" = every status except done
	// Sender and Recipient are an address (case-insensitive), or a domain
	// written "@example.com" or "example.com" (see MatchAddress); Sender
	// "<>" is the null sender. Recipient matches only recipients still to
	// do, unless Status is done.
	Sender    string
	Recipient string
	OlderThan time.Duration // arrival earlier than now-OlderThan
}

// Stats are counts over the live queue.
type Stats struct {
	Queued    int `json:"queued"`
	Active    int `json:"active"`
	Deferred  int `json:"deferred"`
	Held      int `json:"held"`
	Live      int `json:"live"`
	Done      int `json:"done"`
	Damaged   int `json:"damaged"`
	OldestAge time.Duration
	// Since the store was opened, counted in recipients by RecordOutcome.
	DeliveredTotal int64 `json:"delivered_total"`
	BouncedTotal   int64 `json:"bounced_total"`
	DeferredTotal  int64 `json:"deferred_total"`
}

// Options configures Open.
type Options struct {
	Retention time.Duration    // how long done messages stay visible; default 168h
	Now       func() time.Time // clock; default time.Now (tests inject a fake)
	// OnDamaged is called for each record set aside as damaged at open
	// (id and reason); it must not block. May be nil.
	OnDamaged func(id ID, reason error)
	// OnRebuild, if set, is called when Open has to rebuild the indexes
	// (a store from an older version, or indexes that disagree with the
	// counts): once with the reason before it starts, after every batch,
	// and with Done at the end. A rebuild reads every record, so it takes
	// time proportional to the queue; the caller logs it. It must not block.
	OnRebuild func(RebuildProgress)
	// Journal, when set, turns each change into events stored in the same
	// transaction (journal.go).
	Journal Journal
	// MessageIDOf, when set, finds the Message-ID in the first body chunk
	// for an envelope that does not carry it.
	MessageIDOf func(head []byte) string
	// OnPurged is called, after the commit, for each done message Purge
	// removed (the end of its story in the log). May be nil.
	OnPurged func(id ID)
	// OnCommit is called after each fsync'd write transaction with the
	// number of write requests (enqueues, leases, outcomes, ...) it
	// carried: how well group commit groups. It must not block. May be nil.
	OnCommit func(requests int)
}

// RebuildProgress reports an index rebuild at Open.
type RebuildProgress struct {
	Reason  string        // why the indexes are rebuilt
	Checked int           // records read so far
	Elapsed time.Duration // since the rebuild started
	Done    bool
}

// DefaultRetention is how long done messages stay visible to Get when
// Options.Retention is zero (issue 2: "default 7 days").
const DefaultRetention = 168 * time.Hour

var (
	ErrNotFound = errors.New("queue: no such message")
	// ErrBodyDropped is Body's answer for a done message: its body was
	// deleted when it finished; its record stays for Retention.
	ErrBodyDropped = errors.New("the message is done (delivered or bounced) and its body was dropped when it finished; only its record is kept")
	ErrClosed      = errors.New("queue: store is closed")
	// ErrLeaseLost means RecordOutcome was called with a token that is no
	// longer current (the message was deleted or re-leased meanwhile).
	ErrLeaseLost = errors.New("queue: lease no longer held")
	// ErrDone: the message is delivered or bounced; hold and retry have
	// nothing left to act on.
	ErrDone = errors.New("message is done (delivered or bounced)")
	// ErrHeld: retry of a held message does nothing until it is released;
	// hold of a held one changes nothing.
	ErrHeld = errors.New("message is held")
	// ErrNotHeld: release of a message that is not held changes nothing.
	ErrNotHeld = errors.New("message is not held")
	// ErrNoRecipient: no recipient still to do matches the address given.
	ErrNoRecipient = errors.New("no recipient still to do matches")
	// ErrInFlight: the recipient's attempt is running; try again after it.
	ErrInFlight = errors.New("recipient is being delivered right now; try again in a moment")
)

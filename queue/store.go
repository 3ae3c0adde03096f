package queue

import (
	"io"
	"time"
)

// Store is the durable queue. Every method is safe for concurrent use.
//
// The delivery contract: Enqueue returns only once the message is durable;
// Lease records the attempt (as interrupted, until its outcome) before it
// returns, so a crash at any instant looks like a failed attempt and the
// message becomes due again; RecordOutcome and RecordAttempts refuse a lease
// that is no longer current with ErrLeaseLost.
type Store interface {
	// Close stops the store; later calls fail with ErrClosed.
	Close() error

	// Enqueue stores a message and returns its id once it is durable. It
	// reads body as a stream in bounded memory; nothing of the message is
	// visible before the commit.
	Enqueue(env Envelope, body io.Reader) (ID, error)
	// Body streams a stored body chunk by chunk.
	Body(id ID) (io.ReadCloser, error)

	// NextDue is the earliest next attempt of any message neither held nor
	// leased; false when there is none.
	NextDue() (time.Time, bool)
	// Lease hands out up to max messages due at now, earliest first, each
	// with the attempt already recorded.
	Lease(now time.Time, max int) ([]Lease, error)
	// RecordOutcome is RecordAttempts with one attempt record.
	RecordOutcome(l Lease, a Attempt, outcomes []Outcome) error
	// RecordAttempts completes a lease: one attempt record per route and
	// connection, and the decision for each recipient.
	RecordAttempts(l Lease, attempts []Attempt, outcomes []Outcome) error
	// SetDelayWarned notes that a delay warning was queued for id.
	SetDelayWarned(id ID) error
	// Changed is signalled (non-blocking, capacity 1) when something may
	// have become due sooner than NextDue said.
	Changed() <-chan struct{}

	// Hold, Release, Delete and MakeDue act on one message; the Each forms
	// on many, with one error per id, in batched transactions.
	Hold(id ID) error
	Release(id ID) error // due now
	Delete(id ID) error
	MakeDue(id ID) error // retry: due now unless held
	HoldEach(ids []ID) []error
	ReleaseEach(ids []ID) []error
	DeleteEach(ids []ID) []error
	MakeDueEach(ids []ID) []error
	// DeleteRecipients removes the recipients still to do that match
	// pattern (MatchAddress), and the message when none is left.
	DeleteRecipients(id ID, pattern string) ([]string, error)
	// Flush makes every deferred message due now; MakeAllDue every
	// waiting one. Both return how many they changed.
	Flush() (int, error)
	MakeAllDue() (int, error)

	// Get returns a live or retained done message with its attempts.
	Get(id ID) (*Message, error)
	// List streams the messages f selects, in id order.
	List(f Filter, fn func(*Message) error) error
	// Stats returns counts over the queue.
	Stats() (Stats, error)
	// Purge drops done messages older than the retention.
	Purge(now time.Time) (int, error)

	// The event journal: what Options.Journal returned for each change,
	// stored in the change's own transaction, numbered in commit order.
	Events(after uint64, max int) ([]StoredEvent, error)
	EventsChanged() <-chan struct{}
	LastEventSeq() (uint64, error)
	EventSeqBefore(t time.Time) (uint64, error)
	PurgeEvents(limit time.Time, keep uint64) (int, error)
	EventCursor(name string) (seq uint64, ok bool, err error)
	SetEventCursor(name string, seq uint64) error

	// The suppression list.
	Suppress(e Suppression) error
	Unsuppress(addr string) (bool, error)
	Suppressed(addrs []string) (map[string]Suppression, error)
	ListSuppressed(fn func(Suppression) error) error
	PurgeSuppressed(limit time.Time) (int, error)
}

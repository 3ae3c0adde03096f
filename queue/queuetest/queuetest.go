// Package queuetest is the conformance suite of queue stores: every
// behaviour the rest of mailq relies on, run against each implementation
// (bbolt, PostgreSQL) by its own tests through Run.
package queuetest

import (
	"bytes"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"mailq/queue"
)

// Store is the contract under test.
type Store = queue.Store

// Opener opens the store under test on its backing storage (a file, a
// database) with opts. A test calls it again after closing the store (or
// abandoning it without RecordOutcome, like a crash) to reopen the same
// storage: leases the closed store held must then be taken back.
type Opener func(t *testing.T, opts queue.Options) Store

// Backend makes fresh, empty backing storage for one test and returns how
// to open it.
type Backend func(t *testing.T) Opener

// Run runs the suite, each case as a subtest on fresh storage.
func Run(t *testing.T, be Backend) {
	cases := []struct {
		name string
		fn   func(*testing.T, Backend)
	}{
		{"ScheduleOrderAndHeld", testScheduleOrderAndHeld},
		{"LeaseRecordsAttemptBeforeReturn", testLeaseRecordsAttemptBeforeReturn},
		{"RecordOutcomePerRecipient", testRecordOutcomePerRecipient},
		{"RecordOutcomeRejects", testRecordOutcomeRejects},
		{"RecordAttemptsReplacesTheLeasedAttempt", testRecordAttempts},
		{"ChangedSignals", testChangedSignals},
		{"HoldRelease", testHoldRelease},
		{"HoldWhileLeased", testHoldWhileLeased},
		{"DeleteAndNotFound", testDeleteAndNotFound},
		{"MakeDueAndFlush", testMakeDueAndFlush},
		{"MakeAllDue", testMakeAllDue},
		{"BulkActionsReportEachID", testBulkActions},
		{"SetDelayWarned", testSetDelayWarned},
		{"DelayWarnedWithOutcome", testDelayWarnedWithOutcome},
		{"PurgeByRetention", testPurgeByRetention},
		{"ListFilters", testListFilters},
		{"ListToMatchesOnlyPendingRecipients", testListToMatchesOnlyPendingRecipients},
		{"DeleteRecipients", testDeleteRecipients},
		{"ListPagesAndAllowsWrites", testListPagesAndAllowsWrites},
		{"Stats", testStats},
		{"JournalEventsCommitWithTheirChange", testJournalEventsCommitWithTheirChange},
		{"JournalPurgeSinceAndCursor", testJournalPurgeSinceAndCursor},
		{"SuppressFromOutcome", testSuppressFromOutcome},
		{"SuppressionList", testSuppressionList},
		{"EnqueueRoundTrip", testEnqueueRoundTrip},
		{"EnqueueRejects", testEnqueueRejects},
		{"EnqueueFailedBodyStoresNothing", testEnqueueFailedBody},
		{"BodyStreamsMultiMiB", testBodyStreamsMultiMiB},
		{"BodySeeks", testBodySeeks},
		{"ConcurrentEnqueues", testConcurrentEnqueues},
		{"ClosedStore", testClosedStore},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.fn(t, be) })
	}
}

// Clock is a settable clock for Options.Now.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *Clock {
	return &Clock{t: time.Date(2026, 11, 26, 5, 0, 0, 123456789, time.UTC)}
}

func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *Clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// harness is one test's store with its clock; reopen simulates a restart.
type harness struct {
	Store
	open  Opener
	clock *Clock
	opts  queue.Options
}

func newHarness(t *testing.T, be Backend) *harness {
	t.Helper()
	clock := newClock()
	h := &harness{open: be(t), clock: clock, opts: queue.Options{Now: clock.Now}}
	h.reopen(t)
	t.Cleanup(func() { h.Store.Close() })
	return h
}

// reopen closes the store (if open) and opens it again on the same storage.
func (h *harness) reopen(t *testing.T) {
	t.Helper()
	if h.Store != nil {
		h.Store.Close()
	}
	h.Store = h.open(t, h.opts)
}

func envelope(sender string, rcpts ...string) queue.Envelope {
	env := queue.Envelope{Sender: sender, Source: "smtp"}
	for _, r := range rcpts {
		env.Recipients = append(env.Recipients, queue.RecipientSpec{Address: r})
	}
	return env
}

func (h *harness) mustEnqueue(t *testing.T, env queue.Envelope, body string) queue.ID {
	t.Helper()
	id, err := h.Enqueue(env, strings.NewReader(body))
	if err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	return id
}

func (h *harness) mustGet(t *testing.T, id queue.ID) *queue.Message {
	t.Helper()
	m, err := h.Get(id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	return m
}

func (h *harness) mustLease(t *testing.T, now time.Time, max int) []queue.Lease {
	t.Helper()
	ls, err := h.Lease(now, max)
	if err != nil {
		t.Fatalf("Lease: %v", err)
	}
	return ls
}

func (h *harness) body(t *testing.T, id queue.ID) []byte {
	t.Helper()
	rc, err := h.Body(id)
	if err != nil {
		t.Fatalf("Body(%s): %v", id, err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, rc); err != nil {
		t.Fatalf("reading body of %s: %v", id, err)
	}
	return buf.Bytes()
}

func leaseIDs(ls []queue.Lease) []queue.ID {
	var ids []queue.ID
	for _, l := range ls {
		ids = append(ids, l.Message.ID)
	}
	return ids
}

func recipient(t *testing.T, m *queue.Message, addr string) queue.Recipient {
	t.Helper()
	for _, r := range m.Recipients {
		if r.Address == addr {
			return r
		}
	}
	t.Fatalf("message %s has no recipient %s", m.ID, addr)
	return queue.Recipient{}
}

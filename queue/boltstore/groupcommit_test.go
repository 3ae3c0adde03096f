package boltstore

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestOutcomesShareCommits: concurrent RecordOutcome calls go through the
// group-commit writer as enqueues do, so 32 outcomes arriving while a
// commit is on disk share the next fsync'd commit instead of taking one
// each; every one is durable when its call returns (they survive a
// reopen). The commit on disk is held open by a write that waits, so the
// test does not depend on timing.
func TestOutcomesShareCommits(t *testing.T) {
	const n = 32
	ts := openTestStore(t)
	var commits atomic.Int64
	ts.opts.OnCommit = func(int) { commits.Add(1) }
	ts.reopen(t)
	now := ts.clock.Now()
	for i := range n {
		ts.mustEnqueue(t, envelope("s@example.com", fmt.Sprintf("r%d@example.org", i)), "body")
	}
	leases := ts.mustLease(t, now, n)
	if len(leases) != n {
		t.Fatalf("leased %d, want %d in one Lease", len(leases), n)
	}

	// A commit in progress: the writer is busy until release is closed.
	release := make(chan struct{})
	started := make(chan struct{})
	blocker := make(chan error, 1)
	go func() {
		blocker <- ts.write(0, func(*bolt.Tx, *delta) error {
			select {
			case <-started:
			default:
				close(started)
			}
			<-release
			return nil
		})
	}()
	<-started
	before := commits.Load()

	var wg sync.WaitGroup
	errs := make(chan error, n)
	for _, l := range leases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- ts.RecordOutcome(l, Attempt{Time: now, Route: "r", Recipients: l.Recipients},
				[]Outcome{{Recipient: l.Recipients[0], Decision: DecideDelivered, CountsAsAttempt: true}})
		}()
	}
	// Wait until every outcome is queued behind the busy writer.
	deadline := time.Now().Add(10 * time.Second)
	for len(ts.reqs) < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d outcomes reached the writer", len(ts.reqs), n)
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	if err := <-blocker; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("RecordOutcome: %v", err)
		}
	}
	// The blocker's own commit plus the outcomes'.
	outcomeCommits := commits.Load() - before - 1
	if outcomeCommits >= n {
		t.Fatalf("%d outcomes took %d commits; group commit should share them", n, outcomeCommits)
	}
	t.Logf("%d outcomes in %d commit(s)", n, outcomeCommits)

	ts.reopen(t)
	for _, l := range leases {
		if m := ts.mustGet(t, l.Message.ID); m.Recipients[0].State != Delivered {
			t.Fatalf("message %s after reopen: %s, want delivered", l.Message.ID, m.Recipients[0].State)
		}
	}
}

package boltstore

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestBulkActionsAcrossBatches applies each bulk action to more ids than
// one transaction takes (bulkBatch), with an unknown id and a done message
// among them: each id gets its own result, the others are applied, and the
// counts follow.
func TestBulkActionsAcrossBatches(t *testing.T) {
	ts := openTestStore(t)
	n := bulkBatch + 44
	if err := fillDeferred(ts.Store, n, ts.clock.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	done := ts.mustEnqueue(t, envelope("s@example.com", "a@example.org"), "x")
	for _, l := range ts.mustLease(t, ts.clock.Now(), 1) {
		if err := ts.RecordOutcome(l, Attempt{}, []Outcome{{Recipient: "a@example.org", Decision: DecideDelivered}}); err != nil {
			t.Fatal(err)
		}
	}
	var ids []ID
	for i := range n {
		ids = append(ids, formatID(uint64(i+1)))
	}
	unknown := ID("ffffffffffffffff")
	ids = slices.Insert(ids, bulkBatch-1, unknown, done)
	check := func(op string, errs []error, wantStats func(Stats) bool) {
		t.Helper()
		if len(errs) != len(ids) {
			t.Fatalf("%s: %d results for %d ids", op, len(errs), len(ids))
		}
		for i, err := range errs {
			switch {
			case ids[i] == unknown:
				if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), op+" "+string(unknown)) {
					t.Errorf("%s of the unknown id: %v", op, err)
				}
			case ids[i] == done && (op == "hold" || op == "retry"):
				if !errors.Is(err, ErrDone) {
					t.Errorf("%s of a done message: %v, want ErrDone", op, err)
				}
			case ids[i] == done && op == "release":
				if !errors.Is(err, ErrNotHeld) {
					t.Errorf("release of a message not held: %v, want ErrNotHeld", err)
				}
			case err != nil:
				t.Errorf("%s %s: %v", op, ids[i], err)
			}
		}
		if st, _ := ts.Stats(); !wantStats(st) {
			t.Errorf("after %s: %+v", op, st)
		}
	}
	check("hold", ts.HoldEach(ids), func(st Stats) bool { return st.Held == n && st.Deferred == 0 })
	now := ts.clock.Advance(time.Minute)
	check("release", ts.ReleaseEach(ids), func(st Stats) bool { return st.Held == 0 && st.Deferred == n })
	if at, ok := ts.NextDue(); !ok || !at.Equal(now) {
		t.Errorf("after release next due %v, want now %v", at, now)
	}
	check("retry", ts.MakeDueEach(ids), func(st Stats) bool { return st.Deferred == n })
	check("delete", ts.DeleteEach(ids), func(st Stats) bool { return st.Live == 0 && st.Done == 0 })
}

// TestFlushAndRetryAllAcrossBatches: more deferred messages than one batch
// takes all become due, each counted once; retry --all counts the queued
// ones too; held ones stay held.
func TestFlushAndRetryAllAcrossBatches(t *testing.T) {
	ts := openTestStore(t)
	n := 3*dueMinBatch + 7
	if err := fillDeferred(ts.Store, n, ts.clock.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	queued := ts.mustEnqueue(t, envelope("s@example.com", "a@example.org"), "x")
	held := ts.mustEnqueue(t, envelope("s@example.com", "a@example.org"), "x")
	if err := ts.Hold(held); err != nil {
		t.Fatal(err)
	}
	now := ts.clock.Advance(time.Minute)
	if got, err := ts.Flush(); err != nil || got != n {
		t.Fatalf("Flush = %d, %v; want %d", got, err, n)
	}
	leases := ts.mustLease(t, now, n+10)
	if len(leases) != n+1 || leases[0].Message.ID != queued {
		t.Fatalf("after flush %d due (first %s), want all %d deferred and the queued one first", len(leases), leases[0].Message.ID, n)
	}
	for _, l := range leases {
		if err := ts.RecordOutcome(l, Attempt{}, []Outcome{{Recipient: l.Recipients[0], Decision: DecideRetry, RetryAt: now.Add(time.Hour)}}); err != nil {
			t.Fatal(err)
		}
	}
	ts.mustEnqueue(t, envelope("s@example.com", "a@example.org"), "x") // queued, due now
	ts.clock.Advance(time.Minute)
	if got, err := ts.MakeAllDue(); err != nil || got != n+2 {
		t.Fatalf("MakeAllDue = %d, %v; want %d (every deferred and the queued one)", got, err, n+2)
	}
	if got, err := ts.Flush(); err != nil || got != n+1 {
		t.Fatalf("second Flush = %d, %v; want %d deferred, all already due", got, err, n+1)
	}
	if st, _ := ts.Stats(); st.Held != 1 || st.Deferred != n+1 || st.Queued != 1 {
		t.Errorf("stats = %+v", st)
	}
}

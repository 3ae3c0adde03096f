package boltstore

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestHoldRelease(t *testing.T) {
	ts := openTestStore(t)
	id := ts.mustEnqueue(t, envelope("s@example.com", "a@example.org"), "x")
	if err := ts.Hold(id); err != nil {
		t.Fatal(err)
	}
	if m := ts.mustGet(t, id); m.Status != StatusHeld || !m.Held {
		t.Fatalf("after Hold: %+v", m)
	}
	if ls := ts.mustLease(t, ts.clock.Now().Add(time.Hour), 10); len(ls) != 0 {
		t.Fatalf("leased a held message: %v", leaseIDs(ls))
	}
	if err := ts.MakeDue(id); !errors.Is(err, ErrHeld) {
		t.Fatalf("MakeDue of a held message: %v, want ErrHeld", err)
	}
	if err := ts.Hold(id); !errors.Is(err, ErrHeld) {
		t.Fatalf("Hold of a held message: %v, want ErrHeld", err)
	}
	if m := ts.mustGet(t, id); m.Status != StatusHeld {
		t.Fatalf("MakeDue released a held message: %s", m.Status)
	}
	released := ts.clock.Advance(3 * time.Hour)
	if err := ts.Release(id); err != nil {
		t.Fatal(err)
	}
	m := ts.mustGet(t, id)
	if m.Held || m.Status != StatusQueued || m.HeldFor != 3*time.Hour || !m.NextAttempt.Equal(released) {
		t.Fatalf("after Release: %+v", m)
	}
	if err := ts.Release(id); !errors.Is(err, ErrNotHeld) {
		t.Fatalf("Release of a message not held: %v, want ErrNotHeld", err)
	}
	if got := leaseIDs(ts.mustLease(t, released, 10)); !slices.Equal(got, []ID{id}) {
		t.Errorf("lease after release = %v", got)
	}
}

func TestHoldWhileLeased(t *testing.T) {
	ts := openTestStore(t)
	id := ts.mustEnqueue(t, envelope("s@example.com", "a@example.org"), "x")
	l := ts.mustLease(t, ts.clock.Now(), 1)[0]
	if err := ts.Hold(id); err != nil {
		t.Fatal(err)
	}
	// The attempt in flight finishes; the message is not rescheduled.
	if err := ts.RecordOutcome(l, Attempt{}, []Outcome{{Recipient: "a@example.org", Decision: DecideRetry, RetryAt: ts.clock.Now()}}); err != nil {
		t.Fatal(err)
	}
	if m := ts.mustGet(t, id); m.Status != StatusHeld {
		t.Errorf("status = %s, want held", m.Status)
	}
	if _, ok := ts.NextDue(); ok {
		t.Errorf("held message is scheduled")
	}
}

func TestDeleteAndNotFound(t *testing.T) {
	ts := openTestStore(t)
	id := ts.mustEnqueue(t, envelope("s@example.com", "a@example.org"), "x")
	if err := ts.Delete(id); err != nil {
		t.Fatal(err)
	}
	ops := map[string]func() error{
		"Get":            func() error { _, err := ts.Get(id); return err },
		"Body":           func() error { _, err := ts.Body(id); return err },
		"Delete":         func() error { return ts.Delete(id) },
		"Hold":           func() error { return ts.Hold(id) },
		"Release":        func() error { return ts.Release(id) },
		"MakeDue":        func() error { return ts.MakeDue(id) },
		"SetDelayWarned": func() error { return ts.SetDelayWarned(id) },
	}
	for name, op := range ops {
		if err := op(); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s after Delete: %v, want ErrNotFound", name, err)
		}
	}
	if _, ok := ts.NextDue(); ok {
		t.Errorf("deleted message still scheduled")
	}
	if st, _ := ts.Stats(); st.Live != 0 || st.Queued != 0 {
		t.Errorf("stats after delete: %+v", st)
	}
}

func TestMakeDueAndFlush(t *testing.T) {
	ts := openTestStore(t)
	t0 := ts.clock.Now()
	ids := make([]ID, 4)
	for i := range ids {
		ids[i] = ts.mustEnqueue(t, envelope("s@example.com", "a@example.org"), "x")
	}
	for _, l := range ts.mustLease(t, t0, 3) { // ids[3] stays queued
		if err := ts.RecordOutcome(l, Attempt{}, []Outcome{{Recipient: "a@example.org", Decision: DecideRetry, RetryAt: t0.Add(time.Hour)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ts.Hold(ids[2]); err != nil {
		t.Fatal(err)
	}
	now := ts.clock.Advance(time.Minute)
	if err := ts.MakeDue(ids[0]); err != nil {
		t.Fatal(err)
	}
	if got := ts.mustGet(t, ids[0]).NextAttempt; !got.Equal(now) {
		t.Errorf("after MakeDue next attempt = %v, want %v", got, now)
	}
	// ids[0] (already due now) and ids[1] are deferred; ids[2] is held, ids[3] queued.
	n, err := ts.Flush()
	if err != nil || n != 2 {
		t.Fatalf("Flush = %d, %v; want 2", n, err)
	}
	if got := leaseIDs(ts.mustLease(t, now, 10)); !slices.Equal(got, []ID{ids[3], ids[0], ids[1]}) { // time order: ids[3] was due at t0
		t.Errorf("due after flush = %v", got)
	}
}

func TestSetDelayWarned(t *testing.T) {
	ts := openTestStore(t)
	id := ts.mustEnqueue(t, envelope("s@example.com", "a@example.org"), "x")
	if err := ts.SetDelayWarned(id); err != nil {
		t.Fatal(err)
	}
	ts.reopen(t)
	if !ts.mustGet(t, id).DelayWarned {
		t.Errorf("DelayWarned not kept")
	}
}

func TestPurgeByRetention(t *testing.T) {
	ts := openTestStore(t)
	t0 := ts.clock.Now()
	finish := func(id ID) {
		t.Helper()
		for _, l := range ts.mustLease(t, ts.clock.Now(), 10) {
			if l.Message.ID == id {
				if err := ts.RecordOutcome(l, Attempt{}, []Outcome{{Recipient: l.Recipients[0], Decision: DecideDelivered}}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	old := ts.mustEnqueue(t, envelope("s@example.com", "a@example.org"), "old")
	finish(old)
	ts.clock.Advance(100 * time.Hour)
	recent := ts.mustEnqueue(t, envelope("s@example.com", "a@example.org"), "recent")
	finish(recent)
	live := ts.mustEnqueue(t, envelope("s@example.com", "b@example.org"), "live")
	if err := ts.Hold(live); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		at      time.Duration
		n       int
		remains []ID
	}{
		{167 * time.Hour, 0, []ID{old, recent, live}},
		{169 * time.Hour, 1, []ID{recent, live}},
		{1000 * time.Hour, 1, []ID{live}},
	}
	for _, tt := range tests {
		n, err := ts.Purge(t0.Add(tt.at))
		if err != nil || n != tt.n {
			t.Fatalf("Purge(t0+%v) = %d, %v; want %d", tt.at, n, err, tt.n)
		}
		for _, id := range []ID{old, recent, live} {
			_, err := ts.Get(id)
			if want := slices.Contains(tt.remains, id); (err == nil) != want {
				t.Errorf("after Purge(t0+%v): Get(%s) err = %v, want present %v", tt.at, id, err, want)
			}
		}
	}
	if _, err := ts.Body(old); !errors.Is(err, ErrNotFound) {
		t.Errorf("body of purged message: %v", err)
	}
	if st, _ := ts.Stats(); st.Done != 0 || st.Held != 1 {
		t.Errorf("stats after purge: %+v", st)
	}
}

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

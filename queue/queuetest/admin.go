package queuetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"mailq/queue"
)

func testHoldRelease(t *testing.T, be Backend) {
	ts := newHarness(t, be)
	id := ts.mustEnqueue(t, envelope("s@example.com", "a@example.org"), "x")
	if err := ts.Hold(id); err != nil {
		t.Fatal(err)
	}
	if m := ts.mustGet(t, id); m.Status != queue.StatusHeld || !m.Held {
		t.Fatalf("after Hold: %+v", m)
	}
	if ls := ts.mustLease(t, ts.clock.Now().Add(time.Hour), 10); len(ls) != 0 {
		t.Fatalf("leased a held message: %v", leaseIDs(ls))
	}
	if err := ts.MakeDue(id); !errors.Is(err, queue.ErrHeld) {
		t.Fatalf("MakeDue of a held message: %v, want ErrHeld", err)
	}
	if err := ts.Hold(id); !errors.Is(err, queue.ErrHeld) {
		t.Fatalf("Hold of a held message: %v, want ErrHeld", err)
	}
	if m := ts.mustGet(t, id); m.Status != queue.StatusHeld {
		t.Fatalf("MakeDue released a held message: %s", m.Status)
	}
	released := ts.clock.Advance(3 * time.Hour)
	if err := ts.Release(id); err != nil {
		t.Fatal(err)
	}
	m := ts.mustGet(t, id)
	if m.Held || m.Status != queue.StatusQueued || m.HeldFor != 3*time.Hour || !m.NextAttempt.Equal(released) {
		t.Fatalf("after Release: %+v", m)
	}
	if err := ts.Release(id); !errors.Is(err, queue.ErrNotHeld) {
		t.Fatalf("Release of a message not held: %v, want ErrNotHeld", err)
	}
	if got := leaseIDs(ts.mustLease(t, released, 10)); !slices.Equal(got, []queue.ID{id}) {
		t.Errorf("lease after release = %v", got)
	}
}

func testHoldWhileLeased(t *testing.T, be Backend) {
	ts := newHarness(t, be)
	id := ts.mustEnqueue(t, envelope("s@example.com", "a@example.org"), "x")
	l := ts.mustLease(t, ts.clock.Now(), 1)[0]
	if err := ts.Hold(id); err != nil {
		t.Fatal(err)
	}
	// The attempt in flight finishes; the message is not rescheduled.
	if err := ts.RecordOutcome(l, queue.Attempt{}, []queue.Outcome{{Recipient: "a@example.org", Decision: queue.DecideRetry, RetryAt: ts.clock.Now()}}); err != nil {
		t.Fatal(err)
	}
	if m := ts.mustGet(t, id); m.Status != queue.StatusHeld {
		t.Errorf("status = %s, want held", m.Status)
	}
	if _, ok := ts.NextDue(); ok {
		t.Errorf("held message is scheduled")
	}
}

func testDeleteAndNotFound(t *testing.T, be Backend) {
	ts := newHarness(t, be)
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
		if err := op(); !errors.Is(err, queue.ErrNotFound) {
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

func testMakeDueAndFlush(t *testing.T, be Backend) {
	ts := newHarness(t, be)
	t0 := ts.clock.Now()
	ids := make([]queue.ID, 4)
	for i := range ids {
		ids[i] = ts.mustEnqueue(t, envelope("s@example.com", "a@example.org"), "x")
	}
	for _, l := range ts.mustLease(t, t0, 3) { // ids[3] stays queued
		if err := ts.RecordOutcome(l, queue.Attempt{}, []queue.Outcome{{Recipient: "a@example.org", Decision: queue.DecideRetry, RetryAt: t0.Add(time.Hour)}}); err != nil {
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
	if got := leaseIDs(ts.mustLease(t, now, 10)); !slices.Equal(got, []queue.ID{ids[3], ids[0], ids[1]}) { // time order: ids[3] was due at t0
		t.Errorf("due after flush = %v", got)
	}
}

func testSetDelayWarned(t *testing.T, be Backend) {
	ts := newHarness(t, be)
	id := ts.mustEnqueue(t, envelope("s@example.com", "a@example.org"), "x")
	if err := ts.SetDelayWarned(id); err != nil {
		t.Fatal(err)
	}
	ts.reopen(t)
	if !ts.mustGet(t, id).DelayWarned {
		t.Errorf("DelayWarned not kept")
	}
}

// testDelayWarnedWithOutcome: a lease marked MarkDelayWarned sets the flag
// in the outcome's own transaction, so the warning is not sent twice.
func testDelayWarnedWithOutcome(t *testing.T, be Backend) {
	ts := newHarness(t, be)
	id := ts.mustEnqueue(t, envelope("s@example.com", "a@example.org"), "x")
	now := ts.clock.Now()
	ls := ts.mustLease(t, now, 10)
	if len(ls) != 1 {
		t.Fatalf("leased %d messages, want 1", len(ls))
	}
	l := ls[0]
	l.MarkDelayWarned = true
	retry := []queue.Outcome{{Recipient: l.Recipients[0], Decision: queue.DecideRetry, RetryAt: now.Add(time.Hour)}}
	if err := ts.RecordOutcome(l, queue.Attempt{Time: now}, retry); err != nil {
		t.Fatal(err)
	}
	ts.reopen(t)
	if !ts.mustGet(t, id).DelayWarned {
		t.Errorf("DelayWarned not set by the outcome of a lease marked MarkDelayWarned")
	}
}

func testPurgeByRetention(t *testing.T, be Backend) {
	ts := newHarness(t, be)
	t0 := ts.clock.Now()
	finish := func(id queue.ID) {
		t.Helper()
		for _, l := range ts.mustLease(t, ts.clock.Now(), 10) {
			if l.Message.ID == id {
				if err := ts.RecordOutcome(l, queue.Attempt{}, []queue.Outcome{{Recipient: l.Recipients[0], Decision: queue.DecideDelivered}}); err != nil {
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
		remains []queue.ID
	}{
		{167 * time.Hour, 0, []queue.ID{old, recent, live}},
		{169 * time.Hour, 1, []queue.ID{recent, live}},
		{1000 * time.Hour, 1, []queue.ID{live}},
	}
	for _, tt := range tests {
		n, err := ts.Purge(t0.Add(tt.at))
		if err != nil || n != tt.n {
			t.Fatalf("Purge(t0+%v) = %d, %v; want %d", tt.at, n, err, tt.n)
		}
		for _, id := range []queue.ID{old, recent, live} {
			_, err := ts.Get(id)
			if want := slices.Contains(tt.remains, id); (err == nil) != want {
				t.Errorf("after Purge(t0+%v): Get(%s) err = %v, want present %v", tt.at, id, err, want)
			}
		}
	}
	if _, err := ts.Body(old); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("body of purged message: %v", err)
	}
	if st, _ := ts.Stats(); st.Done != 0 || st.Held != 1 {
		t.Errorf("stats after purge: %+v", st)
	}
}

package queuetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"mailq/queue"
)

func testListFilters(t *testing.T, be Backend) {
	ts := newHarness(t, be)
	old := ts.mustEnqueue(t, envelope("Alice@Example.com", "b@example.org"), "1")
	ts.clock.Advance(2 * time.Hour)
	deferred := ts.mustEnqueue(t, envelope("bob@example.com", "c@other.net", "d@Example.ORG"), "2")
	held := ts.mustEnqueue(t, envelope("", "e@other.net"), "3")
	done := ts.mustEnqueue(t, envelope("alice@example.com", "f@example.org"), "4")
	queued := ts.mustEnqueue(t, envelope("carol@example.com", "g@sub.example.org"), "5")
	now := ts.clock.Now()
	for _, l := range ts.mustLease(t, now, 10) {
		var oc []queue.Outcome
		switch l.Message.ID {
		case deferred:
			oc = []queue.Outcome{{Recipient: "c@other.net", Decision: queue.DecideRetry, RetryAt: now.Add(time.Hour)},
				{Recipient: "d@Example.ORG", Decision: queue.DecideRetry, RetryAt: now.Add(time.Hour)}}
		case done:
			oc = []queue.Outcome{{Recipient: "f@example.org", Decision: queue.DecideDelivered}}
		case queued, old:
			continue // stays active
		}
		if err := ts.RecordOutcome(l, queue.Attempt{}, oc); err != nil {
			t.Fatal(err)
		}
	}
	if err := ts.Hold(held); err != nil {
		t.Fatal(err)
	}
	// queued and old are active (leased) now; enqueue another one that stays queued.
	fresh := ts.mustEnqueue(t, envelope("dave@example.com", "h@example.org"), "6")
	tests := []struct {
		name string
		f    queue.Filter
		want []queue.ID
	}{
		{"default hides done", queue.Filter{}, []queue.ID{old, deferred, held, queued, fresh}},
		{"queued", queue.Filter{Status: queue.StatusQueued}, []queue.ID{fresh}},
		{"active", queue.Filter{Status: queue.StatusActive}, []queue.ID{old, queued}},
		{"deferred", queue.Filter{Status: queue.StatusDeferred}, []queue.ID{deferred}},
		{"held", queue.Filter{Status: queue.StatusHeld}, []queue.ID{held}},
		{"done", queue.Filter{Status: queue.StatusDone}, []queue.ID{done}},
		{"sender case-insensitive", queue.Filter{Sender: "alice@example.COM"}, []queue.ID{old}},
		{"null sender", queue.Filter{Sender: "<>"}, []queue.ID{held}},
		{"recipient exact", queue.Filter{Recipient: "D@example.org"}, []queue.ID{deferred}},
		{"recipient domain", queue.Filter{Recipient: "@example.org"}, []queue.ID{old, deferred, fresh}},
		{"domain is not a suffix match of a subdomain", queue.Filter{Recipient: "@sub.example.org"}, []queue.ID{queued}},
		{"older than", queue.Filter{OlderThan: time.Hour}, []queue.ID{old}},
		{"combined", queue.Filter{Recipient: "@other.net", Status: queue.StatusHeld}, []queue.ID{held}},
		{"recipient domain without @", queue.Filter{Recipient: "example.org"}, []queue.ID{old, deferred, fresh}},
		{"sender domain", queue.Filter{Sender: "@EXAMPLE.com"}, []queue.ID{old, deferred, queued, fresh}},
		{"sender domain without @", queue.Filter{Sender: "example.com"}, []queue.ID{old, deferred, queued, fresh}},
		{"done recipients match among done messages", queue.Filter{Recipient: "@example.org", Status: queue.StatusDone}, []queue.ID{done}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []queue.ID
			err := ts.List(tt.f, func(m *queue.Message) error {
				got = append(got, m.ID)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("List(%+v) = %v, want %v", tt.f, got, tt.want)
			}
		})
	}
	stop := errors.New("stop")
	n := 0
	if err := ts.List(queue.Filter{}, func(*queue.Message) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Errorf("List did not stop on fn error: %v after %d", err, n)
	}
}

// TestListToMatchesOnlyPendingRecipients (issue 12 item 7): a message whose
// recipient at a domain is delivered, but with another still pending
// elsewhere, is not "mail for" that domain.
func testListToMatchesOnlyPendingRecipients(t *testing.T, be Backend) {
	ts := newHarness(t, be)
	id := ts.mustEnqueue(t, envelope("s@example.com", "a@done.test", "b@pending.test"), "x")
	now := ts.clock.Now()
	l := ts.mustLease(t, now, 1)[0]
	if err := ts.RecordOutcome(l, queue.Attempt{}, []queue.Outcome{{Recipient: "a@done.test", Decision: queue.DecideDelivered},
		{Recipient: "b@pending.test", Decision: queue.DecideRetry, RetryAt: now.Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	for pattern, want := range map[string][]queue.ID{"@done.test": nil, "@pending.test": {id}} {
		var got []queue.ID
		ts.List(queue.Filter{Recipient: pattern}, func(m *queue.Message) error { got = append(got, m.ID); return nil })
		if !slices.Equal(got, want) {
			t.Errorf("List(to %s) = %v, want %v", pattern, got, want)
		}
	}
}

// TestDeleteRecipients: only the matching recipients still to do go; the
// last one takes the message with it.
func testDeleteRecipients(t *testing.T, be Backend) {
	ts := newHarness(t, be)
	id := ts.mustEnqueue(t, envelope("s@example.com", "a@one.test", "b@one.test", "c@two.test"), "x")
	removed, err := ts.DeleteRecipients(id, "one.test")
	if err != nil || !slices.Equal(removed, []string{"a@one.test", "b@one.test"}) {
		t.Fatalf("DeleteRecipients(one.test) = %v, %v", removed, err)
	}
	m := ts.mustGet(t, id)
	if len(m.Recipients) != 1 || m.Recipients[0].Address != "c@two.test" || m.Status != queue.StatusQueued {
		t.Fatalf("after deleting one.test: %+v", m)
	}
	if _, err := ts.DeleteRecipients(id, "@one.test"); !errors.Is(err, queue.ErrNoRecipient) {
		t.Errorf("deleting again: %v, want ErrNoRecipient", err)
	}
	if _, err := ts.DeleteRecipients(id, "C@two.test"); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Get(id); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("message with no recipient left: %v, want ErrNotFound", err)
	}
	if st, _ := ts.Stats(); st.Live != 0 {
		t.Errorf("stats after the last recipient went: %+v", st)
	}
}

func testListPagesAndAllowsWrites(t *testing.T, be Backend) {
	ts := newHarness(t, be)
	var want []queue.ID
	for range 256 + 5 { // more than a page of either store (64 bbolt, 256 postgres)
		want = append(want, ts.mustEnqueue(t, envelope("s@example.com", "a@example.org"), "x"))
	}
	var got []queue.ID
	err := ts.List(queue.Filter{}, func(m *queue.Message) error {
		got = append(got, m.ID)
		// fn may write to the store without deadlocking List.
		return ts.Hold(m.ID)
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("List returned %d ids, want %d in order", len(got), len(want))
	}
	if st, _ := ts.Stats(); st.Held != len(want) {
		t.Errorf("held = %d, want %d", st.Held, len(want))
	}
}

func testStats(t *testing.T, be Backend) {
	ts := newHarness(t, be)
	t0 := ts.clock.Now()
	a := ts.mustEnqueue(t, envelope("s@example.com", "a@example.org", "b@example.org"), "x")
	ts.clock.Advance(time.Minute)
	b := ts.mustEnqueue(t, envelope("s@example.com", "c@example.org"), "x")
	c := ts.mustEnqueue(t, envelope("s@example.com", "d@example.org"), "x")
	ts.mustEnqueue(t, envelope("s@example.com", "e@example.org"), "x")
	ls := ts.mustLease(t, ts.clock.Now(), 3) // a, b, c
	for _, l := range ls {
		var oc []queue.Outcome
		switch l.Message.ID {
		case a:
			oc = []queue.Outcome{{Recipient: "a@example.org", Decision: queue.DecideDelivered}, {Recipient: "b@example.org", Decision: queue.DecideBounce}}
		case b:
			oc = []queue.Outcome{{Recipient: "c@example.org", Decision: queue.DecideRetry, RetryAt: t0.Add(time.Hour)}}
		case c:
			continue
		}
		if err := ts.RecordOutcome(l, queue.Attempt{}, oc); err != nil {
			t.Fatal(err)
		}
	}
	if err := ts.Hold(c); err != nil {
		t.Fatal(err)
	}
	now := ts.clock.Advance(10 * time.Minute)
	st, err := ts.Stats()
	if err != nil {
		t.Fatal(err)
	}
	want := queue.Stats{Queued: 1, Deferred: 1, Held: 1, Live: 3, Done: 1, OldestAge: now.Sub(t0.Add(time.Minute)),
		DeliveredTotal: 1, BouncedTotal: 1, DeferredTotal: 1}
	if st != want {
		t.Errorf("Stats = %+v\nwant    %+v", st, want)
	}
	// Counts are rebuilt at open; totals restart.
	ts.reopen(t)
	st, _ = ts.Stats()
	want.Active, want.Held = 0, 1
	want.DeliveredTotal, want.BouncedTotal, want.DeferredTotal = 0, 0, 0
	if st != want {
		t.Errorf("Stats after reopen = %+v\nwant    %+v", st, want)
	}
}

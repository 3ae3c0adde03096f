package boltstore

import (
	"errors"
	"slices"
	"testing"
	"time"
)

func TestListFilters(t *testing.T) {
	ts := openTestStore(t)
	old := ts.mustEnqueue(t, envelope("Alice@Example.com", "b@example.org"), "1")
	ts.clock.Advance(2 * time.Hour)
	deferred := ts.mustEnqueue(t, envelope("bob@example.com", "c@other.net", "d@Example.ORG"), "2")
	held := ts.mustEnqueue(t, envelope("", "e@other.net"), "3")
	done := ts.mustEnqueue(t, envelope("alice@example.com", "f@example.org"), "4")
	queued := ts.mustEnqueue(t, envelope("carol@example.com", "g@sub.example.org"), "5")
	now := ts.clock.Now()
	for _, l := range ts.mustLease(t, now, 10) {
		var oc []Outcome
		switch l.Message.ID {
		case deferred:
			oc = []Outcome{{Recipient: "c@other.net", Decision: DecideRetry, RetryAt: now.Add(time.Hour)},
				{Recipient: "d@Example.ORG", Decision: DecideRetry, RetryAt: now.Add(time.Hour)}}
		case done:
			oc = []Outcome{{Recipient: "f@example.org", Decision: DecideDelivered}}
		case queued, old:
			continue // stays active
		}
		if err := ts.RecordOutcome(l, Attempt{}, oc); err != nil {
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
		f    Filter
		want []ID
	}{
		{"default hides done", Filter{}, []ID{old, deferred, held, queued, fresh}},
		{"queued", Filter{Status: StatusQueued}, []ID{fresh}},
		{"active", Filter{Status: StatusActive}, []ID{old, queued}},
		{"deferred", Filter{Status: StatusDeferred}, []ID{deferred}},
		{"held", Filter{Status: StatusHeld}, []ID{held}},
		{"done", Filter{Status: StatusDone}, []ID{done}},
		{"sender case-insensitive", Filter{Sender: "alice@example.COM"}, []ID{old}},
		{"null sender", Filter{Sender: "<>"}, []ID{held}},
		{"recipient exact", Filter{Recipient: "D@example.org"}, []ID{deferred}},
		{"recipient domain", Filter{Recipient: "@example.org"}, []ID{old, deferred, fresh}},
		{"domain is not a suffix match of a subdomain", Filter{Recipient: "@sub.example.org"}, []ID{queued}},
		{"older than", Filter{OlderThan: time.Hour}, []ID{old}},
		{"combined", Filter{Recipient: "@other.net", Status: StatusHeld}, []ID{held}},
		{"recipient domain without @", Filter{Recipient: "example.org"}, []ID{old, deferred, fresh}},
		{"sender domain", Filter{Sender: "@EXAMPLE.com"}, []ID{old, deferred, queued, fresh}},
		{"sender domain without @", Filter{Sender: "example.com"}, []ID{old, deferred, queued, fresh}},
		{"done recipients match among done messages", Filter{Recipient: "@example.org", Status: StatusDone}, []ID{done}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []ID
			err := ts.List(tt.f, func(m *Message) error {
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
	if err := ts.List(Filter{}, func(*Message) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Errorf("List did not stop on fn error: %v after %d", err, n)
	}
}

// TestListToMatchesOnlyPendingRecipients (issue 12 item 7): a message whose
// recipient at a domain is delivered, but with another still pending
// elsewhere, is not "mail for" that domain.
func TestListToMatchesOnlyPendingRecipients(t *testing.T) {
	ts := openTestStore(t)
	id := ts.mustEnqueue(t, envelope("s@example.com", "a@done.test", "b@pending.test"), "x")
	now := ts.clock.Now()
	l := ts.mustLease(t, now, 1)[0]
	if err := ts.RecordOutcome(l, Attempt{}, []Outcome{{Recipient: "a@done.test", Decision: DecideDelivered},
		{Recipient: "b@pending.test", Decision: DecideRetry, RetryAt: now.Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	for pattern, want := range map[string][]ID{"@done.test": nil, "@pending.test": {id}} {
		var got []ID
		ts.List(Filter{Recipient: pattern}, func(m *Message) error { got = append(got, m.ID); return nil })
		if !slices.Equal(got, want) {
			t.Errorf("List(to %s) = %v, want %v", pattern, got, want)
		}
	}
}

// TestDeleteRecipients: only the matching recipients still to do go; the
// last one takes the message with it.
func TestDeleteRecipients(t *testing.T) {
	ts := openTestStore(t)
	id := ts.mustEnqueue(t, envelope("s@example.com", "a@one.test", "b@one.test", "c@two.test"), "x")
	removed, err := ts.DeleteRecipients(id, "one.test")
	if err != nil || !slices.Equal(removed, []string{"a@one.test", "b@one.test"}) {
		t.Fatalf("DeleteRecipients(one.test) = %v, %v", removed, err)
	}
	m := ts.mustGet(t, id)
	if len(m.Recipients) != 1 || m.Recipients[0].Address != "c@two.test" || m.Status != StatusQueued {
		t.Fatalf("after deleting one.test: %+v", m)
	}
	if _, err := ts.DeleteRecipients(id, "@one.test"); !errors.Is(err, ErrNoRecipient) {
		t.Errorf("deleting again: %v, want ErrNoRecipient", err)
	}
	if _, err := ts.DeleteRecipients(id, "C@two.test"); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Get(id); !errors.Is(err, ErrNotFound) {
		t.Errorf("message with no recipient left: %v, want ErrNotFound", err)
	}
	if st, _ := ts.Stats(); st.Live != 0 {
		t.Errorf("stats after the last recipient went: %+v", st)
	}
}

func TestListPagesAndAllowsWrites(t *testing.T) {
	ts := openTestStore(t)
	var want []ID
	for range 3*listPage + 5 {
		want = append(want, ts.mustEnqueue(t, envelope("s@example.com", "a@example.org"), "x"))
	}
	var got []ID
	err := ts.List(Filter{}, func(m *Message) error {
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

func TestStats(t *testing.T) {
	ts := openTestStore(t)
	t0 := ts.clock.Now()
	a := ts.mustEnqueue(t, envelope("s@example.com", "a@example.org", "b@example.org"), "x")
	ts.clock.Advance(time.Minute)
	b := ts.mustEnqueue(t, envelope("s@example.com", "c@example.org"), "x")
	c := ts.mustEnqueue(t, envelope("s@example.com", "d@example.org"), "x")
	ts.mustEnqueue(t, envelope("s@example.com", "e@example.org"), "x")
	ls := ts.mustLease(t, ts.clock.Now(), 3) // a, b, c
	for _, l := range ls {
		var oc []Outcome
		switch l.Message.ID {
		case a:
			oc = []Outcome{{Recipient: "a@example.org", Decision: DecideDelivered}, {Recipient: "b@example.org", Decision: DecideBounce}}
		case b:
			oc = []Outcome{{Recipient: "c@example.org", Decision: DecideRetry, RetryAt: t0.Add(time.Hour)}}
		case c:
			continue
		}
		if err := ts.RecordOutcome(l, Attempt{}, oc); err != nil {
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
	want := Stats{Queued: 1, Deferred: 1, Held: 1, Live: 3, Done: 1, OldestAge: now.Sub(t0.Add(time.Minute)),
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

// TestOpenReadOnly: with the daemon's store closed, the file can be read
// (and not written); while it is open, OpenReadOnly says it is in use
// instead of waiting for it.
func TestOpenReadOnly(t *testing.T) {
	ts := openTestStore(t)
	id := ts.mustEnqueue(t, envelope("s@example.com", "a@example.org"), "hello")
	path := ts.path
	if _, err := OpenReadOnly(path, Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("OpenReadOnly beside an open store: %v, want ErrLocked", err)
	}
	if err := ts.Close(); err != nil {
		t.Fatal(err)
	}
	ro, err := OpenReadOnly(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if m, err := ro.Get(id); err != nil || m.Sender != "s@example.com" {
		t.Fatalf("Get read-only: %+v, %v", m, err)
	}
	if st, err := ro.Stats(); err != nil || st.Queued != 1 || st.Live != 1 {
		t.Errorf("Stats read-only: %+v, %v", st, err)
	}
	if err := ro.Hold(id); err == nil {
		t.Errorf("Hold on a read-only store succeeded")
	}
}

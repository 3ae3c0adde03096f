package queue

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

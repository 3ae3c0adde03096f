package boltstore

import (
	"encoding/json"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestListingFollowsTheRecord: list reads each live message from the live
// index (issue 13), so the listing stored there must say what the record
// says, through every change and after an index rebuild: List and ListJSON
// give exactly Get's message without its attempts, and a history as long
// as you like does not make a listing any longer.
func TestListingFollowsTheRecord(t *testing.T) {
	ts := openTestStore(t)
	deferred := ts.mustEnqueue(t, envelope("a@b.test", "d@c.test", "e@c.test"), "Subject: d\r\n\r\nd\r\n")
	held := ts.mustEnqueue(t, envelope("a@b.test", "h@c.test"), "Subject: h\r\n\r\nh\r\n")
	active := ts.mustEnqueue(t, envelope("", "x@c.test"), "Subject: a\r\n\r\na\r\n")
	ts.Hold(held)
	var firstLen int
	for round := range 20 { // a long history for deferred; active stays leased
		for _, l := range ts.mustLease(t, ts.clock.Now(), 10) {
			switch l.Message.ID {
			case active:
				continue
			case deferred:
			default:
				t.Fatalf("leased %s", l.Message.ID)
			}
			out := []Outcome{{Recipient: "d@c.test", Decision: DecideRetry, RetryAt: ts.clock.Now().Add(60e9),
				Reply: &Reply{Code: 451, Enhanced: "4.3.0", Text: "try later"}}}
			if len(l.Recipients) > 1 {
				out = append(out, Outcome{Recipient: "e@c.test", Decision: DecideDelivered})
			}
			if err := ts.RecordOutcome(l, Attempt{Time: ts.clock.Now(), Route: "r"}, out); err != nil {
				t.Fatal(err)
			}
		}
		if round == 0 {
			firstLen = liveListingLen(t, ts.Store, deferred)
		}
		ts.clock.Advance(61e9)
	}
	queued := ts.mustEnqueue(t, envelope("a@b.test", "q@c.test"), "Subject: q\r\n\r\nq\r\n")
	ts.Hold(queued)
	ts.Release(queued)
	if n := len(ts.mustGet(t, deferred).Attempts); n != 20 {
		t.Fatalf("deferred has %d attempts, want 20", n)
	}
	if got := liveListingLen(t, ts.Store, deferred); got > firstLen+8 { // "attempts":1 → 20
		t.Errorf("the listing grew with the history: %d bytes after 1 attempt, %d after 20", firstLen, got)
	}
	activeNow := StatusActive
	check := func(when string) {
		t.Helper()
		want := map[ID]string{}
		for _, id := range []ID{queued, deferred, held, active} {
			m := ts.mustGet(t, id)
			m.Attempts = nil
			b, _ := json.Marshal(m)
			want[id] = string(b)
		}
		got := map[ID]string{}
		if err := ts.ListJSON(Filter{}, func(line []byte) error {
			var m Message
			if err := json.Unmarshal(line, &m); err != nil {
				t.Fatal(err)
			}
			got[m.ID] = string(line)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Errorf("%s: ListJSON gave %d messages, want %d", when, len(got), len(want))
		}
		for id, w := range want {
			if got[id] != w {
				t.Errorf("%s: ListJSON of %s:\n got %s\nwant %s", when, id, got[id], w)
			}
		}
		statuses := map[ID]Status{}
		ts.List(Filter{}, func(m *Message) error { statuses[m.ID] = m.Status; return nil })
		wantStatus := map[ID]Status{queued: StatusQueued, deferred: StatusDeferred, held: StatusHeld, active: activeNow}
		for id, st := range wantStatus {
			if statuses[id] != st {
				t.Errorf("%s: List says %s is %q, want %q", when, id, statuses[id], st)
			}
		}
		n := 0
		ts.ListJSON(Filter{Status: StatusDeferred, Recipient: "d@c.test"}, func([]byte) error { n++; return nil })
		if n != 1 {
			t.Errorf("%s: a filtered ListJSON gave %d messages, want 1", when, n)
		}
	}
	check("as kept by each commit")

	// An index rebuild (a store from an older mailq) writes the same.
	ts.rawUpdate(t, func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Delete(metaIndexVersion) })
	ts.Store = nil
	ts.reopen(t)
	// The rebuild makes the lease a crash left due again.
	activeNow = StatusDeferred
	check("after an index rebuild")
}

func liveListingLen(t *testing.T, s *Store, id ID) int {
	t.Helper()
	var n int
	s.view(func(tx *bolt.Tx) error {
		n = len(tx.Bucket(bucketLive).Get([]byte(id)))
		return nil
	})
	if n <= liveArrivalLen {
		t.Fatalf("the live index holds no listing for %s (%d bytes)", id, n)
	}
	return n
}

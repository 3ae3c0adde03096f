package queuetest

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"mailq/queue"
)

// textJournal records each change as "kind id recipient[:decision[:cause]]".
func textJournal(c queue.Change) [][]byte {
	var out [][]byte
	switch c.Kind {
	case queue.ChangeOutcome:
		for _, o := range c.Outcomes {
			out = append(out, fmt.Appendf(nil, "%s %s %s:%s:%s", c.Kind, c.Message.ID, o.Recipient, o.Decision, o.Cause))
		}
	default:
		for _, rc := range c.Message.Recipients {
			if !rc.State.Done() {
				out = append(out, fmt.Appendf(nil, "%s %s %s", c.Kind, c.Message.ID, rc.Address))
			}
		}
	}
	return out
}

func openJournalStore(t *testing.T, be Backend) *harness {
	t.Helper()
	ts := newHarness(t, be)
	ts.opts.Journal = textJournal
	ts.opts.MessageIDOf = func(head []byte) string {
		if i := strings.Index(string(head), "Message-ID: "); i >= 0 {
			return strings.Fields(string(head[i+len("Message-ID: "):]))[0]
		}
		return ""
	}
	ts.reopen(t)
	return ts
}

func eventTexts(t *testing.T, s Store, after uint64) []string {
	t.Helper()
	evs, err := s.Events(after, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i, e := range evs {
		if i > 0 && e.Seq <= evs[i-1].Seq {
			t.Errorf("event seq %d after %d", e.Seq, evs[i-1].Seq)
		}
		out = append(out, string(e.Data))
	}
	return out
}

// TestJournalEventsCommitWithTheirChange: each call's events are in the
// log when it returns, and a change that fails leaves no event behind.
func testJournalEventsCommitWithTheirChange(t *testing.T, be Backend) {
	ts := openJournalStore(t, be)
	id := ts.mustEnqueue(t, envelope("s@example.com", "a@x.test", "b@x.test", "c@x.test"), "Message-ID: <m1@test>\r\n\r\nhi\r\n")
	if m := ts.mustGet(t, id); m.MessageID != "<m1@test>" {
		t.Errorf("MessageID = %q, want <m1@test> from MessageIDOf", m.MessageID)
	}
	want := []string{"arrived " + string(id) + " a@x.test", "arrived " + string(id) + " b@x.test", "arrived " + string(id) + " c@x.test"}
	if got := eventTexts(t, ts.Store, 0); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after Enqueue: %q, want %q", got, want)
	}
	l := ts.mustLease(t, ts.clock.Now(), 1)[0]
	// A failing RecordOutcome (an outcome for a recipient not leased)
	// commits nothing: neither the outcome nor its events.
	err := ts.RecordOutcome(l, queue.Attempt{}, []queue.Outcome{{Recipient: "a@x.test", Decision: queue.DecideDelivered}, {Recipient: "z@x.test", Decision: queue.DecideBounce}})
	if err == nil {
		t.Fatal("RecordOutcome accepted an outcome for a recipient it does not lease")
	}
	if got := eventTexts(t, ts.Store, 3); len(got) != 0 {
		t.Fatalf("a failed RecordOutcome left events: %q", got)
	}
	err = ts.RecordOutcome(l, queue.Attempt{Route: "r"}, []queue.Outcome{
		{Recipient: "a@x.test", Decision: queue.DecideDelivered},
		{Recipient: "b@x.test", Decision: queue.DecideBounce, Cause: "expired"},
		{Recipient: "c@x.test", Decision: queue.DecideRetry, RetryAt: ts.clock.Now().Add(time.Hour)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.SetDelayWarned(id); err != nil {
		t.Fatal(err)
	}
	if err := ts.Delete(id); err != nil {
		t.Fatal(err)
	}
	want = []string{
		"outcome " + string(id) + " a@x.test:delivered:",
		"outcome " + string(id) + " b@x.test:bounce:expired",
		"outcome " + string(id) + " c@x.test:retry:",
		"delay_warned " + string(id) + " c@x.test",
		"deleted " + string(id) + " c@x.test",
	}
	if got := eventTexts(t, ts.Store, 3); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events:\n got %q\nwant %q", got, want)
	}
	// A lease lost to the delete records nothing, and so reports nothing.
	if err := ts.RecordOutcome(l, queue.Attempt{}, nil); !errors.Is(err, queue.ErrLeaseLost) {
		t.Fatalf("RecordOutcome after delete = %v, want ErrLeaseLost", err)
	}
	if last, _ := ts.LastEventSeq(); last != 8 {
		t.Errorf("LastEventSeq = %d, want 8", last)
	}
	// The log survives a reopen, and its sequence goes on.
	ts.reopen(t)
	ts.mustEnqueue(t, envelope("s@example.com", "d@x.test"), "x")
	if got := eventTexts(t, ts.Store, 8); len(got) != 1 || !strings.HasSuffix(got[0], " d@x.test") {
		t.Errorf("after reopen: %q", got)
	}
}

func testJournalPurgeSinceAndCursor(t *testing.T, be Backend) {
	ts := openJournalStore(t, be)
	for range 3 {
		ts.mustEnqueue(t, envelope("s@example.com", "a@x.test"), "x")
		ts.clock.Advance(time.Hour)
	}
	start := ts.clock.Now().Add(-3 * time.Hour)
	if seq, _ := ts.EventSeqBefore(start.Add(90 * time.Minute)); seq != 2 {
		t.Errorf("EventSeqBefore(+90m) = %d, want 2", seq)
	}
	// Older than the limit, but a consumer still needs everything after 1.
	if n, err := ts.PurgeEvents(ts.clock.Now(), 1); err != nil || n != 1 {
		t.Fatalf("PurgeEvents keep=1: %d, %v; want 1", n, err)
	}
	if n, _ := ts.PurgeEvents(start.Add(150*time.Minute), 99); n != 2 {
		t.Fatalf("PurgeEvents by time dropped %d, want 2", n)
	}
	if got := eventTexts(t, ts.Store, 0); len(got) != 0 {
		t.Errorf("left after purges: %q", got)
	}
	if _, ok, _ := ts.EventCursor("w"); ok {
		t.Error("a cursor never set exists")
	}
	if err := ts.SetEventCursor("w", 42); err != nil {
		t.Fatal(err)
	}
	ts.reopen(t)
	if seq, ok, err := ts.EventCursor("w"); seq != 42 || !ok || err != nil {
		t.Errorf("cursor after reopen = %d %v %v", seq, ok, err)
	}
}

// TestSuppressFromOutcome: a bounce marked Suppress puts the address on
// the list with its reply, in RecordOutcome's transaction.
func testSuppressFromOutcome(t *testing.T, be Backend) {
	ts := openJournalStore(t, be)
	ts.mustEnqueue(t, envelope("s@example.com", "Gone@X.test", "kept@x.test"), "x")
	l := ts.mustLease(t, ts.clock.Now(), 1)[0]
	reply := &queue.Reply{Code: 550, Enhanced: "5.1.1", Text: "no such user"}
	err := ts.RecordOutcome(l, queue.Attempt{Route: "r"}, []queue.Outcome{
		{Recipient: "Gone@X.test", Decision: queue.DecideBounce, Reply: reply, Suppress: true},
		{Recipient: "kept@x.test", Decision: queue.DecideBounce, Reply: reply},
	})
	if err != nil {
		t.Fatal(err)
	}
	found, err := ts.Suppressed([]string{"gone@x.test", "kept@x.test"})
	if err != nil {
		t.Fatal(err)
	}
	e, ok := found["gone@x.test"]
	if len(found) != 1 || !ok || e.Reply != *reply || !e.Time.Equal(ts.clock.Now()) || e.Route != "r" || e.QueueID != l.Message.ID {
		t.Fatalf("suppressed = %+v, want gone@x.test (any case) with the 550 reply", found)
	}
	if ok, _ := ts.Unsuppress("GONE@x.test"); !ok {
		t.Error("Unsuppress did not find the address")
	}
	if n := len(mustSuppressed(t, ts.Store)); n != 0 {
		t.Errorf("%d entries after Unsuppress", n)
	}
}

func mustSuppressed(t *testing.T, s Store) []queue.Suppression {
	var out []queue.Suppression
	if err := s.ListSuppressed(func(e queue.Suppression) error { out = append(out, e); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

package queuetest

import (
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	"mailq/queue"
)

func testScheduleOrderAndHeld(t *testing.T, be Backend) {
	ts := newHarness(t, be)
	t0 := ts.clock.Now()
	a := ts.mustEnqueue(t, envelope("s@example.com", "a@example.org"), "a")
	b := ts.mustEnqueue(t, envelope("s@example.com", "b@example.org"), "b")
	c := ts.mustEnqueue(t, envelope("s@example.com", "c@example.org"), "c")
	d := ts.mustEnqueue(t, envelope("s@example.com", "d@example.org"), "d")
	if due, ok := ts.NextDue(); !ok || !due.Equal(t0) {
		t.Fatalf("NextDue = %v %v, want %v", due, ok, t0)
	}
	ls := ts.mustLease(t, t0, 10)
	if got := leaseIDs(ls); !slices.Equal(got, []queue.ID{a, b, c, d}) {
		t.Fatalf("first lease = %v", got)
	}
	if _, ok := ts.NextDue(); ok {
		t.Fatalf("NextDue reports something while everything is leased")
	}
	// Retry times out of arrival order: b first, then d, c, a.
	retry := map[queue.ID]time.Duration{a: 40 * time.Minute, b: 10 * time.Minute, c: 30 * time.Minute, d: 20 * time.Minute}
	for _, l := range ls {
		at := t0.Add(retry[l.Message.ID])
		err := ts.RecordOutcome(l, queue.Attempt{Time: t0}, []queue.Outcome{{Recipient: l.Recipients[0], Decision: queue.DecideRetry, RetryAt: at}})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := ts.Hold(d); err != nil {
		t.Fatal(err)
	}
	if due, ok := ts.NextDue(); !ok || !due.Equal(t0.Add(10*time.Minute)) {
		t.Fatalf("NextDue = %v %v, want t0+10m", due, ok)
	}
	tests := []struct {
		name string
		at   time.Duration
		max  int
		want []queue.ID
	}{
		{"nothing due yet", 5 * time.Minute, 10, nil},
		{"held d is skipped", 35 * time.Minute, 10, []queue.ID{b, c}},
		{"max limits", 50 * time.Minute, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := leaseIDs(ts.mustLease(t, t0.Add(tt.at), tt.max))
			if !slices.Equal(got, tt.want) {
				t.Errorf("Lease(t0+%v, %d) = %v, want %v", tt.at, tt.max, got, tt.want)
			}
		})
	}
	if got := leaseIDs(ts.mustLease(t, t0.Add(time.Hour), 10)); !slices.Equal(got, []queue.ID{a}) {
		t.Errorf("last lease = %v, want [a] (d held, b and c leased)", got)
	}
}

func testLeaseRecordsAttemptBeforeReturn(t *testing.T, be Backend) {
	ts := newHarness(t, be)
	now := ts.clock.Now()
	id := ts.mustEnqueue(t, envelope("s@example.com", "x@example.org", "y@example.org"), "hello")
	ls := ts.mustLease(t, now, 1)
	if len(ls) != 1 {
		t.Fatalf("leases = %d", len(ls))
	}
	l := ls[0]
	if l.Message.Status != queue.StatusActive || l.AttemptIndex != 0 || l.Token == 0 ||
		!slices.Equal(l.Recipients, []string{"x@example.org", "y@example.org"}) {
		t.Fatalf("lease = %+v", l)
	}
	if m := ts.mustGet(t, id); m.Status != queue.StatusActive || len(m.Attempts) != 1 || !m.Attempts[0].Interrupted {
		t.Fatalf("while leased: %+v", m)
	}
	if st, _ := ts.Stats(); st.Active != 1 || st.Queued != 0 {
		t.Errorf("stats while leased: %+v", st)
	}
	// Simulate a crash: reopen without RecordOutcome.
	later := ts.clock.Advance(time.Minute)
	ts.reopen(t)
	m := ts.mustGet(t, id)
	if m.Status != queue.StatusDeferred || len(m.Attempts) != 1 {
		t.Fatalf("after reopen: status %s, %d attempts", m.Status, len(m.Attempts))
	}
	if a := m.Attempts[0]; !a.Interrupted || !a.Time.Equal(now) || len(a.Recipients) != 2 {
		t.Errorf("recovered attempt = %+v", a)
	}
	for _, r := range m.Recipients {
		if r.State != queue.Deferred || r.Attempts != 1 || !r.NextAttempt.Equal(later) {
			t.Errorf("recovered recipient = %+v, want deferred, 1 attempt, due %v", r, later)
		}
	}
	if due, ok := ts.NextDue(); !ok || !due.Equal(later) {
		t.Errorf("NextDue after recovery = %v %v", due, ok)
	}
	if err := ts.RecordOutcome(l, queue.Attempt{}, nil); !errors.Is(err, queue.ErrLeaseLost) {
		t.Errorf("RecordOutcome with pre-crash lease: %v, want ErrLeaseLost", err)
	}
	if got := leaseIDs(ts.mustLease(t, later, 5)); !slices.Equal(got, []queue.ID{id}) {
		t.Errorf("lease after recovery = %v", got)
	}
}

func testRecordOutcomePerRecipient(t *testing.T, be Backend) {
	ts := newHarness(t, be)
	t0 := ts.clock.Now()
	id := ts.mustEnqueue(t, envelope("s@example.com", "ok@example.org", "bad@example.org", "later@example.org", "lost@example.org"), "body")
	l := ts.mustLease(t, t0, 1)[0]
	t1 := ts.clock.Advance(2 * time.Second)
	retryAt := t0.Add(15 * time.Minute)
	attempt := queue.Attempt{Time: t0, Route: "relay", Remote: "127.0.0.1:25", TLS: "TLS1.3", DurationMS: 2000,
		Recipients: l.Recipients, Replies: []queue.StepReply{{Command: "RCPT TO:<bad@example.org>", Reply: queue.Reply{Code: 550, Enhanced: "5.1.1", Text: "no such user"}}}}
	outcomes := []queue.Outcome{
		{Recipient: "ok@example.org", Decision: queue.DecideDelivered, Reply: &queue.Reply{Code: 250, Enhanced: "2.0.0", Text: "ok"}},
		{Recipient: "bad@example.org", Decision: queue.DecideBounce, Reply: &queue.Reply{Code: 550, Enhanced: "5.1.1", Text: "no such user"}},
		{Recipient: "later@example.org", Decision: queue.DecideRetry, RetryAt: retryAt, Reply: &queue.Reply{Code: 450, Enhanced: "4.2.1", Text: "try later"}},
		// lost@example.org has no outcome: back to deferred, due now.
	}
	if err := ts.RecordOutcome(l, attempt, outcomes); err != nil {
		t.Fatal(err)
	}
	m := ts.mustGet(t, id)
	tests := []struct {
		addr  string
		state queue.RecipientState
		next  time.Time
		code  int
	}{
		{"ok@example.org", queue.Delivered, time.Time{}, 250},
		{"bad@example.org", queue.Bounced, time.Time{}, 550},
		{"later@example.org", queue.Deferred, retryAt, 450},
		{"lost@example.org", queue.Deferred, t1, 0},
	}
	for _, tt := range tests {
		r := recipient(t, m, tt.addr)
		code := 0
		if r.LastReply != nil {
			code = r.LastReply.Code
		}
		if r.State != tt.state || !r.NextAttempt.Equal(tt.next) || code != tt.code || r.Attempts != 1 {
			t.Errorf("%s = %+v (reply %d), want %s next %v reply %d", tt.addr, r, code, tt.state, tt.next, tt.code)
		}
	}
	if m.Status != queue.StatusDeferred || !m.NextAttempt.Equal(t1) || len(m.Attempts) != 1 {
		t.Fatalf("message = status %s next %v attempts %d", m.Status, m.NextAttempt, len(m.Attempts))
	}
	if a := m.Attempts[0]; a.Interrupted || a.Route != "relay" || a.DurationMS != 2000 || len(a.Replies) != 1 {
		t.Errorf("attempt not replaced: %+v", a)
	}
	if err := ts.RecordOutcome(l, attempt, outcomes); !errors.Is(err, queue.ErrLeaseLost) {
		t.Errorf("second RecordOutcome with the same lease: %v, want ErrLeaseLost", err)
	}
	// Only lost@ is due now; later@ at retryAt.
	l2 := ts.mustLease(t, t1, 5)
	if len(l2) != 1 || !slices.Equal(l2[0].Recipients, []string{"lost@example.org"}) || l2[0].AttemptIndex != 1 {
		t.Fatalf("second lease = %+v", l2)
	}
	if err := ts.RecordOutcome(l2[0], queue.Attempt{Time: t1}, []queue.Outcome{{Recipient: "lost@example.org", Decision: queue.DecideDelivered}}); err != nil {
		t.Fatal(err)
	}
	l3 := ts.mustLease(t, retryAt, 5)
	if len(l3) != 1 || !slices.Equal(l3[0].Recipients, []string{"later@example.org"}) {
		t.Fatalf("third lease = %+v", l3)
	}
	end := ts.clock.Advance(time.Hour)
	if err := ts.RecordOutcome(l3[0], queue.Attempt{Time: retryAt}, []queue.Outcome{{Recipient: "later@example.org", Decision: queue.DecideDelivered}}); err != nil {
		t.Fatal(err)
	}
	m = ts.mustGet(t, id)
	if m.Status != queue.StatusDone || !m.Finished.Equal(end) || !m.NextAttempt.IsZero() || len(m.Attempts) != 3 {
		t.Errorf("finished message = %+v", m)
	}
	if recipient(t, m, "later@example.org").Attempts != 2 {
		t.Errorf("later@ attempts = %d, want 2", recipient(t, m, "later@example.org").Attempts)
	}
	if _, ok := ts.NextDue(); ok {
		t.Errorf("a done message is still scheduled")
	}
	st, _ := ts.Stats()
	if st.DeliveredTotal != 3 || st.BouncedTotal != 1 || st.DeferredTotal != 1 || st.Done != 1 || st.Live != 0 {
		t.Errorf("stats = %+v", st)
	}
	// A store may drop a done message's body when it finishes (boltstore
	// does, issue 13) or keep it until purge; either way nothing else.
	if rc, err := ts.Body(id); err == nil {
		got, _ := io.ReadAll(rc)
		rc.Close()
		if string(got) != "body" {
			t.Errorf("body of a done message = %q, want it as stored or ErrBodyDropped", got)
		}
	} else if !errors.Is(err, queue.ErrBodyDropped) {
		t.Errorf("Body of a done message: %v, want its body or ErrBodyDropped", err)
	}
}

func testRecordOutcomeRejects(t *testing.T, be Backend) {
	ts := newHarness(t, be)
	id := ts.mustEnqueue(t, envelope("s@example.com", "a@example.org"), "x")
	l := ts.mustLease(t, ts.clock.Now(), 1)[0]
	tests := []struct {
		name     string
		lease    queue.Lease
		outcomes []queue.Outcome
		lost     bool
	}{
		{"recipient not leased", l, []queue.Outcome{{Recipient: "z@example.org", Decision: queue.DecideDelivered}}, false},
		{"unknown decision", l, []queue.Outcome{{Recipient: "a@example.org", Decision: "maybe"}}, false},
		{"wrong token", queue.Lease{Message: l.Message, Token: l.Token + 1}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ts.RecordOutcome(tt.lease, queue.Attempt{}, tt.outcomes)
			if err == nil || errors.Is(err, queue.ErrLeaseLost) != tt.lost {
				t.Errorf("RecordOutcome: %v (want lease lost: %v)", err, tt.lost)
			}
		})
	}
	// The lease still holds after rejected calls; deleting loses it.
	if err := ts.Delete(id); err != nil {
		t.Fatal(err)
	}
	if err := ts.RecordOutcome(l, queue.Attempt{}, []queue.Outcome{{Recipient: "a@example.org", Decision: queue.DecideDelivered}}); !errors.Is(err, queue.ErrLeaseLost) {
		t.Errorf("RecordOutcome after Delete: %v, want ErrLeaseLost", err)
	}
}

func testChangedSignals(t *testing.T, be Backend) {
	ts := newHarness(t, be)
	drain := func() {
		select {
		case <-ts.Changed():
		default:
		}
	}
	drain()
	ts.mustEnqueue(t, envelope("s@example.com", "a@example.org"), "x")
	select {
	case <-ts.Changed():
	default:
		t.Fatal("Enqueue did not signal Changed")
	}
	l := ts.mustLease(t, ts.clock.Now(), 1)[0]
	drain()
	if err := ts.RecordOutcome(l, queue.Attempt{}, []queue.Outcome{{Recipient: "a@example.org", Decision: queue.DecideRetry, RetryAt: ts.clock.Now().Add(time.Minute)}}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ts.Changed():
	default:
		t.Fatal("RecordOutcome with a retry did not signal Changed")
	}
}

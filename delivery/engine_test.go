package delivery

import (
	"errors"
	"strings"
	"testing"
	"time"

	"mailq/queue"
)

// TestBounceNow: `mailqctl bounce` bounces a deferred and a held message at
// once, with 5.0.0 "bounced by operator" in the DSN, and names a missing id.
func TestBounceNow(t *testing.T) {
	srv := newFakeServer(t)
	h := newHarness(t, []Route{testRoute("fake", srv.port())}, nil)
	deferred := h.enqueue(t, "sender@client.test", "r450-a@fake.test")
	held := h.enqueue(t, "other@client.test", "ok-b@fake.test")
	if err := h.store.Hold(held); err != nil {
		t.Fatal(err)
	}
	h.start()
	h.settled(t, deferred, 1)

	err := h.engine.BounceNow([]queue.ID{deferred, held, "ffffffffffffffff"})
	if err == nil || !errors.Is(err, queue.ErrNotFound) || !strings.Contains(err.Error(), "ffffffffffffffff") {
		t.Fatalf("BounceNow error = %v, want one naming the missing id", err)
	}
	for _, c := range []struct {
		id     queue.ID
		rcpt   string
		sender string
	}{{deferred, "r450-a@fake.test", "sender@client.test"}, {held, "ok-b@fake.test", "other@client.test"}} {
		m, err := h.store.Get(c.id)
		if err != nil {
			t.Fatal(err)
		}
		if rc := recipientOf(t, m, c.rcpt); rc.State != queue.Bounced {
			t.Errorf("%s: %s, want bounced", c.rcpt, rc.State)
		}
	}
	var ours []parsedDSN
	for _, d := range h.dsns(t) {
		ours = append(ours, parseDSN(t, h.noticeBody(t, d.ID)))
	}
	if len(ours) != 2 {
		t.Fatalf("want 2 DSNs, got %d", len(ours))
	}
	checkDSN(t, ours[0], "failed", map[string]string{"r450-a@fake.test": OperatorBounceStatus}, OperatorBounceText)
	checkDSN(t, ours[1], "failed", map[string]string{"ok-b@fake.test": OperatorBounceStatus}, OperatorBounceText)
	// Only the two notices reach the server; the held message never does.
	waitFor(t, "the two notices delivered", func() bool {
		_, _, msgs := srv.stats()
		return len(msgs) == 2
	})
	_, _, msgs := srv.stats()
	for _, fm := range msgs {
		if fm.From != "" {
			t.Errorf("server got a message from <%s>; only notices from <> were expected", fm.From)
		}
	}
}

// TestSetRoutesSwitchesServer: after a reload that points the route
// elsewhere, the old route's idle connection is closed with QUIT and new
// attempts use the new server.
func TestSetRoutesSwitchesServer(t *testing.T) {
	oldSrv, newSrv := newFakeServer(t), newFakeServer(t)
	h := newHarness(t, []Route{testRoute("relay", oldSrv.port())}, nil)
	first := h.enqueue(t, "sender@client.test", "ok-a@fake.test")
	h.start()
	h.settled(t, first, 1)
	if err := h.engine.SetRoutes([]Route{testRoute("relay", newSrv.port())}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "old route's idle connection closed", func() bool {
		oldSrv.mu.Lock()
		defer oldSrv.mu.Unlock()
		return oldSrv.quits == 1 && oldSrv.open == 0
	})
	second := h.enqueue(t, "sender@client.test", "ok-b@fake.test")
	if rc := recipientOf(t, h.settled(t, second, 1), "ok-b@fake.test"); rc.State != queue.Delivered {
		t.Fatalf("after reload: %s, want delivered", rc.State)
	}
	_, _, oldMsgs := oldSrv.stats()
	_, _, newMsgs := newSrv.stats()
	if len(oldMsgs) != 1 || len(newMsgs) != 1 || newMsgs[0].To[0] != "ok-b@fake.test" {
		t.Errorf("old server got %d, new server got %+v; want 1 and the second message", len(oldMsgs), newMsgs)
	}
	if err := h.engine.SetRoutes([]Route{namedRoute("x", "a.test"), namedRoute("y", "A.test")}); err == nil {
		t.Errorf("SetRoutes accepted two routes claiming one domain")
	}
}

// TestNewRejectsBadOptions covers the errors New reports.
func TestNewRejectsBadOptions(t *testing.T) {
	if _, err := New(Options{}); err == nil || !strings.Contains(err.Error(), "Store") {
		t.Errorf("New without a store: %v", err)
	}
	h := newHarness(t, nil, nil)
	if _, err := New(Options{Store: h.store, Routes: []Route{namedRoute("a")}}); err == nil {
		t.Errorf("New accepted a route without domains")
	}
}

// TestWakesOnEnqueue: the scheduler sleeps on a timer (here an hour away)
// and still takes a new message at once because the store signals it.
func TestWakesOnEnqueue(t *testing.T) {
	srv := newFakeServer(t)
	h := newHarness(t, []Route{testRoute("fake", srv.port())}, nil)
	deferred := h.enqueue(t, "sender@client.test", "r450-a@fake.test")
	h.start()
	h.settled(t, deferred, 1) // next due in 5 fake minutes: the timer sleeps
	start := time.Now()
	id := h.enqueue(t, "sender@client.test", "ok-a@fake.test")
	h.settled(t, id, 1)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("new message took %s to be delivered", d)
	}
}

// TestTranscriptPerAttempt: with transcripts on, each attempt over a reused
// connection keeps only its own part of the session.
func TestTranscriptPerAttempt(t *testing.T) {
	srv := newFakeServer(t)
	h := newHarness(t, []Route{testRoute("fake", srv.port())}, func(o *Options) {
		o.DialOptions.Transcript = true
		o.Workers = 1
		o.PerRouteConnections = 1
	})
	first := h.enqueue(t, "sender@client.test", "ok-first@fake.test")
	h.start()
	m1 := h.settled(t, first, 1)
	h.clock.Advance(DefaultProbeAfterIdle) // idle long enough to be probed
	second := h.enqueue(t, "sender@client.test", "ok-second@fake.test")
	m2 := h.settled(t, second, 1)
	if a, _, _ := srv.stats(); a != 1 {
		t.Fatalf("%d connections, want the second message on the reused one", a)
	}
	t1 := strings.Join(m1.Attempts[0].Transcript, "\n")
	t2 := strings.Join(m2.Attempts[0].Transcript, "\n")
	for _, c := range []struct {
		name, tr, want, not string
	}{
		{"first", t1, "EHLO", "ok-second"},
		{"first", t1, "ok-first@fake.test", ""},
		{"second", t2, "NOOP", "EHLO"},
		{"second", t2, "ok-second@fake.test", "ok-first"},
	} {
		if !strings.Contains(c.tr, c.want) || (c.not != "" && strings.Contains(c.tr, c.not)) {
			t.Errorf("%s attempt transcript should have %q and not %q:\n%s", c.name, c.want, c.not, c.tr)
		}
	}
}

package delivery

import (
	"sync/atomic"
	"testing"
	"time"

	"mailq/queue"
)

// TestLifetimeAndDelayWarning drives one always-450 recipient through its
// whole life on the fake clock: the schedule of attempts, one delay warning
// once delay_warning has passed, and a 4.4.7 bounce at the deadline.
func TestLifetimeAndDelayWarning(t *testing.T) {
	srv := newFakeServer(t)
	route := testRoute("fake", srv.port())
	route.Retry.MaxLifetime = time.Hour
	route.Retry.DelayWarning = 30 * time.Minute
	h := newHarness(t, []Route{route}, nil)
	t0 := h.clock.Now()
	id := h.enqueue(t, "sender@client.test", "r450-a@fake.test")
	h.start()

	// Gaps 5m, 10m, 20m; the 4th retry (40m) would pass the 60m deadline
	// and is moved to it; the failure at the deadline bounces.
	wantTimes := []time.Duration{0, 5 * time.Minute, 15 * time.Minute, 35 * time.Minute, 60 * time.Minute}
	var m *queue.Message
	for n := 1; n <= len(wantTimes); n++ {
		m = h.settled(t, id, n)
		rc := recipientOf(t, m, "r450-a@fake.test")
		if n < len(wantTimes) {
			if rc.State != queue.Deferred {
				t.Fatalf("after attempt %d: state %s, want deferred", n, rc.State)
			}
			if want := t0.Add(wantTimes[n]); !rc.NextAttempt.Equal(want) {
				t.Fatalf("after attempt %d: next attempt %s, want %s", n, rc.NextAttempt.Sub(t0), wantTimes[n])
			}
			// Warned once, at the first attempt after 30m (the 4th, at 35m).
			if warned := len(h.dsns(t)) == 1; warned != (n >= 4) || m.DelayWarned != (n >= 4) {
				t.Fatalf("after attempt %d: %d notices, delay_warned %v", n, len(h.dsns(t)), m.DelayWarned)
			}
			h.clock.Advance(rc.NextAttempt.Sub(h.clock.Now()))
			h.engine.kick()
		}
	}
	rc := recipientOf(t, m, "r450-a@fake.test")
	if rc.State != queue.Bounced || rc.Attempts != 5 {
		t.Fatalf("final: state %s after %d attempts, want bounced after 5", rc.State, rc.Attempts)
	}
	for i, a := range m.Attempts {
		if want := t0.Add(wantTimes[i]); !a.Time.Equal(want) {
			t.Errorf("attempt %d at %s, want %s", i+1, a.Time.Sub(t0), wantTimes[i])
		}
	}
	notices := h.dsns(t)
	if len(notices) != 2 {
		t.Fatalf("want a delay warning and a bounce, got %d notices", len(notices))
	}
	for i, n := range notices {
		d := parseDSN(t, h.noticeBody(t, n.ID))
		if i == 0 {
			checkDSN(t, d, "delayed", map[string]string{"r450-a@fake.test": "4.2.1"}, "450")
		} else {
			checkDSN(t, d, "failed", map[string]string{"r450-a@fake.test": "4.4.7"}, "450 4.2.1 mailbox busy")
		}
	}
}

// TestNullSenderNeverNotified: a message from <> bounces silently and gets
// no delay warning either.
func TestNullSenderNeverNotified(t *testing.T) {
	srv := newFakeServer(t)
	route := testRoute("fake", srv.port())
	route.Retry.DelayWarning = time.Minute
	h := newHarness(t, []Route{route}, nil)
	bounced := h.enqueue(t, "", "r550-a@fake.test")
	h.clock.Advance(2 * time.Minute) // the other one is past delay_warning at its first failure
	delayed := h.enqueue(t, "", "r450-a@fake.test")
	h.clock.Advance(2 * time.Minute)
	h.start()
	if rc := recipientOf(t, h.settled(t, bounced, 1), "r550-a@fake.test"); rc.State != queue.Bounced {
		t.Fatalf("state %s, want bounced", rc.State)
	}
	if rc := recipientOf(t, h.settled(t, delayed, 1), "r450-a@fake.test"); rc.State != queue.Deferred {
		t.Fatalf("state %s, want deferred", rc.State)
	}
	if n := len(h.dsns(t)); n != 0 {
		t.Fatalf("a <> sender got %d notices", n)
	}
}

// TestNotifyControlsNotices: NOTIFY=NEVER suppresses the bounce, NOTIFY
// without DELAY the warning, and NOTIFY=SUCCESS to a next hop without DSN
// gives a "relayed" notice.
func TestNotifyControlsNotices(t *testing.T) {
	cases := []struct {
		name       string
		rcpt       string
		notify     string
		wantAction string // "" = no notice
		wantStatus string
		serverDSN  bool
	}{
		{"never suppresses bounce", "r550-a@fake.test", "NEVER", "", "", false},
		{"failure gives bounce", "r550-a@fake.test", "FAILURE", "failed", "5.1.1", false},
		{"delay only: no bounce", "r550-a@fake.test", "DELAY", "", "", false},
		{"failure only: no warning", "r450-a@fake.test", "FAILURE", "", "", false},
		{"delay gives warning", "r450-a@fake.test", "DELAY", "delayed", "4.2.1", false},
		{"success relayed", "ok-a@fake.test", "SUCCESS", "relayed", "2.0.0", false},
		{"no success notice unasked", "ok-a@fake.test", "", "", "", false},
		{"next hop with DSN reports success itself", "ok-a@fake.test", "SUCCESS", "", "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := newFakeServer(t)
			srv.dsn = tc.serverDSN
			route := testRoute("fake", srv.port())
			route.Retry.DelayWarning = time.Minute
			h := newHarness(t, []Route{route}, nil)
			id, err := h.store.Enqueue(queue.Envelope{Sender: "sender@client.test",
				Recipients: []queue.RecipientSpec{{Address: tc.rcpt, Notify: tc.notify}}},
				stringsReader(testBody("sender@client.test", "test message")))
			if err != nil {
				t.Fatal(err)
			}
			h.clock.Advance(2 * time.Minute)
			h.start()
			h.settled(t, id, 1)
			if tc.wantAction == "" {
				if n := len(h.dsns(t)); n != 0 {
					t.Fatalf("got %d notices, want none", n)
				}
				return
			}
			d := h.onlyDSN(t, "sender@client.test")
			checkDSN(t, d, tc.wantAction, map[string]string{tc.rcpt: tc.wantStatus}, "")
		})
	}
}

// TestDelayWarningOncePerMessage: past delay_warning, the first failed
// attempt sends one warning covering every recipient still to do; later
// failed attempts send no further warning (docs/delivery.md "Bounces and warnings").
func TestDelayWarningOncePerMessage(t *testing.T) {
	srv := newFakeServer(t)
	route := testRoute("fake", srv.port())
	route.Retry.DelayWarning = time.Minute
	h := newHarness(t, []Route{route}, nil)
	rcpts := []string{"r450-a@fake.test", "r450-b@fake.test", "ok-c@fake.test"}
	id := h.enqueue(t, "sender@client.test", rcpts...)
	h.clock.Advance(2 * time.Minute) // already past delay_warning at the first attempt
	h.start()
	for n := 1; n <= 3; n++ {
		m := h.settled(t, id, n)
		if got := len(h.dsns(t)); got != 1 || !m.DelayWarned {
			t.Fatalf("after attempt %d: %d notices (delay_warned %v), want exactly 1", n, got, m.DelayWarned)
		}
		rc := recipientOf(t, m, "r450-a@fake.test")
		h.clock.Advance(rc.NextAttempt.Sub(h.clock.Now()))
		h.engine.kick()
	}
	d := h.onlyDSN(t, "sender@client.test")
	// Both deferred recipients, not the delivered one.
	checkDSN(t, d, "delayed", map[string]string{"r450-a@fake.test": "4.2.1", "r450-b@fake.test": "4.2.1"}, "450")
}

// warnCountingStore counts SetDelayWarned transactions.
type warnCountingStore struct {
	queue.Store
	setDelayWarned atomic.Int64
}

func (s *warnCountingStore) SetDelayWarned(id queue.ID) error {
	s.setDelayWarned.Add(1)
	return s.Store.SetDelayWarned(id)
}

// TestDelayWarningMarkedWithOutcome: the attempt that sends the delay
// warning marks the message warned in the transaction that records its
// outcome (Lease.MarkDelayWarned), not in a transaction of its own, and
// the mark holds: the next failed attempt sends no second warning.
func TestDelayWarningMarkedWithOutcome(t *testing.T) {
	srv := newFakeServer(t)
	route := testRoute("fake", srv.port())
	route.Retry.DelayWarning = time.Minute
	var ws *warnCountingStore
	h := newHarness(t, []Route{route}, func(o *Options) {
		ws = &warnCountingStore{Store: o.Store}
		o.Store = ws
	})
	id := h.enqueue(t, "sender@client.test", "r450-a@fake.test")
	h.clock.Advance(2 * time.Minute)
	h.start()
	for n := 1; n <= 2; n++ {
		m := h.settled(t, id, n)
		if got := len(h.dsns(t)); got != 1 || !m.DelayWarned {
			t.Fatalf("after attempt %d: %d notices (delay_warned %v), want exactly 1", n, got, m.DelayWarned)
		}
		h.clock.Advance(recipientOf(t, m, "r450-a@fake.test").NextAttempt.Sub(h.clock.Now()))
		h.engine.kick()
	}
	if n := ws.setDelayWarned.Load(); n != 0 {
		t.Fatalf("%d SetDelayWarned transactions; the outcome's transaction should mark the warning", n)
	}
}

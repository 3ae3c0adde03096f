package delivery

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"mailq/queue"
)

// enqueueMany submits n one-recipient messages concurrently (so the queue
// can group-commit them) and returns their ids.
func (h *harness) enqueueMany(t testing.TB, n int, rcpt func(i int) string) []queue.ID {
	t.Helper()
	ids := make([]queue.ID, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 32)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			id, err := h.store.Enqueue(queue.Envelope{Sender: "sender@client.test",
				Recipients: []queue.RecipientSpec{{Address: rcpt(i)}}}, stringsReader(testBody("sender@client.test", "bulk")))
			if err != nil {
				errs <- err
				return
			}
			ids[i] = id
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("enqueue: %v", err)
	}
	return ids
}

// TestThousandMessagesOverFewConnections: 1,000 messages to one route use
// at most per_route_connections connections at once, reuse them, and open
// a new one only after messages_per_connection messages.
func TestThousandMessagesOverFewConnections(t *testing.T) {
	cases := []struct {
		name                   string
		perConn                int
		minAccepts, maxAccepts int
	}{
		{"unlimited reuse", 1000, 1, 2},
		{"100 per connection", 100, 10, 12},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := newFakeServer(t)
			h := newHarness(t, []Route{testRoute("fake", srv.port())}, func(o *Options) {
				o.Workers = 8
				o.PerRouteConnections = 2
				o.MessagesPerConnection = tc.perConn
			})
			const n = 1000
			h.enqueueMany(t, n, func(i int) string { return fmt.Sprintf("ok-%d@fake.test", i) })
			h.start()
			start := time.Now()
			waitForCount(t, "1,000 messages delivered", n, func() int {
				_, _, msgs := srv.stats()
				return len(msgs)
			})
			t.Logf("1,000 messages in %v", time.Since(start).Round(time.Millisecond))
			accepts, maxOpen, msgs := srv.stats()
			if len(msgs) != n {
				t.Errorf("server received %d messages, want %d", len(msgs), n)
			}
			if maxOpen > 2 {
				t.Errorf("server saw %d connections open at once, want at most per_route_connections = 2", maxOpen)
			}
			if accepts < tc.minAccepts || accepts > tc.maxAccepts {
				t.Errorf("server accepted %d connections, want %d..%d", accepts, tc.minAccepts, tc.maxAccepts)
			}
			st, err := h.store.Stats()
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, "queue empty", func() bool {
				st, _ = h.store.Stats()
				return st.Live == 0
			})
			if st.DeliveredTotal != n {
				t.Errorf("delivered_total %d, want %d", st.DeliveredTotal, n)
			}
		})
	}
}

// TestSlowRouteDoesNotStarveFastRoute: a route whose server takes 500ms per
// message, with a backlog leased first, holds at most per_route_connections
// workers; mail for a fast route behind it goes out at once.
func TestSlowRouteDoesNotStarveFastRoute(t *testing.T) {
	slow, fast := newFakeServer(t), newFakeServer(t)
	slow.delay = 500 * time.Millisecond
	h := newHarness(t, []Route{
		testRoute("slow", slow.port(), "slow.test"),
		testRoute("fast", fast.port(), "fast.test", "client.test"),
	}, func(o *Options) {
		o.Workers = 4
		o.PerRouteConnections = 2
		o.ShutdownGrace = 5 * time.Second
	})
	h.enqueueMany(t, 20, func(i int) string { return fmt.Sprintf("ok-%d@slow.test", i) })
	h.clock.Advance(time.Second) // the fast ones arrive later: the slow backlog is leased first
	h.enqueueMany(t, 20, func(i int) string { return fmt.Sprintf("ok-%d@fast.test", i) })
	h.start()
	waitFor(t, "20 fast messages delivered", func() bool {
		_, _, msgs := fast.stats()
		return len(msgs) >= 20
	})
	_, slowOpen, slowMsgs := slow.stats()
	if len(slowMsgs) > 8 {
		t.Errorf("slow route delivered %d messages before the fast route finished: the fast route waited", len(slowMsgs))
	}
	if slowOpen > 2 {
		t.Errorf("slow route had %d connections open, want at most 2", slowOpen)
	}
	start := time.Now()
	if err := h.stop(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("shutdown took %s with 500ms deliveries in flight", d)
	}
	// Nothing is lost: every slow message is delivered, or due again.
	err := h.store.List(queue.Filter{}, func(m *queue.Message) error {
		if m.Status == queue.StatusActive {
			t.Errorf("message %s still leased after shutdown", m.ID)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestShutdownLetsInFlightFinish: a delivery in flight when Run is
// cancelled completes within the grace, and pooled connections get QUIT.
func TestShutdownLetsInFlightFinish(t *testing.T) {
	srv := newFakeServer(t)
	srv.delay = 300 * time.Millisecond
	h := newHarness(t, []Route{testRoute("fake", srv.port())}, func(o *Options) { o.ShutdownGrace = 5 * time.Second })
	id := h.enqueue(t, "sender@client.test", "ok-a@fake.test")
	h.start()
	waitFor(t, "delivery in flight", func() bool {
		m, _ := h.store.Get(id)
		return m.Status == queue.StatusActive
	})
	if err := h.stop(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	m, err := h.store.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if rc := recipientOf(t, m, "ok-a@fake.test"); rc.State != queue.Delivered {
		t.Fatalf("in-flight delivery: state %s, want delivered", rc.State)
	}
	waitFor(t, "QUIT on the pooled connection", func() bool {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		return srv.quits == 1 && srv.open == 0
	})
}

// TestShutdownCutsOffAfterGrace: a delivery stuck past the grace is cut
// off; its recipient is deferred (not lost, not left leased) and Run
// returns promptly.
func TestShutdownCutsOffAfterGrace(t *testing.T) {
	srv := newFakeServer(t)
	route := testRoute("fake", srv.port())
	route.Settings.Timeout = ptr(20000)
	h := newHarness(t, []Route{route}, func(o *Options) { o.ShutdownGrace = 200 * time.Millisecond })
	id := h.enqueue(t, "sender@client.test", "stall-a@fake.test")
	h.start()
	waitFor(t, "connection accepted", func() bool {
		a, _, _ := srv.stats()
		return a == 1
	})
	start := time.Now()
	if err := h.stop(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Run returned %s after cancel with a 200ms grace", d)
	}
	m, err := h.store.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	rc := recipientOf(t, m, "stall-a@fake.test")
	if rc.State != queue.Deferred || m.Status == queue.StatusActive {
		t.Fatalf("cut-off delivery: recipient %s, message %s; want deferred and not leased", rc.State, m.Status)
	}
}

// TestIdleConnectionClosed: a pooled connection nobody uses is closed with
// QUIT after IdleTimeout.
func TestIdleConnectionClosed(t *testing.T) {
	srv := newFakeServer(t)
	h := newHarness(t, []Route{testRoute("fake", srv.port())}, func(o *Options) { o.IdleTimeout = 100 * time.Millisecond })
	id := h.enqueue(t, "sender@client.test", "ok-a@fake.test")
	h.start()
	h.settled(t, id, 1)
	waitFor(t, "idle connection closed", func() bool {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		return srv.quits == 1 && srv.open == 0
	})
}

// TestProbeBeforeReuse: a pooled connection idle for ProbeAfterIdle is
// probed before its next message (NOOP, or RSET with userset; noop.strict
// decides what counts as alive). A dead one is dropped and the message goes
// over a new connection in the same attempt (docs/configuration.md "Every
// key" userset/noop.strict).
func TestProbeBeforeReuse(t *testing.T) {
	tx := []string{"MAIL", "RCPT", "DATA"}
	first := append([]string{"EHLO"}, tx...)
	cases := []struct {
		name    string
		noop    string
		userset bool
		strict  *bool
		want    map[int][]string // commands per connection number
	}{
		{"NOOP 250: reused", "", false, nil,
			map[int][]string{1: append(append(first, "NOOP"), tx...)}},
		{"userset probes with RSET", "", true, nil,
			map[int][]string{1: append(append(first, "RSET"), tx...)}},
		{"NOOP 421: dropped, new connection", "421 4.4.2 idle too long", false, nil,
			map[int][]string{1: append(first, "NOOP"), 2: append([]string{"EHLO"}, tx...)}},
		{"noop.strict: NOOP 500 dropped, new connection", "500 5.5.2 what", false, nil,
			map[int][]string{1: append(first, "NOOP"), 2: append([]string{"EHLO"}, tx...)}},
		{"noop.strict=false: NOOP 500 still alive", "500 5.5.2 what", false, ptr(false),
			map[int][]string{1: append(append(first, "NOOP"), tx...)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := newFakeServer(t)
			srv.noop = tc.noop
			route := testRoute("fake", srv.port())
			route.Settings.UseRset, route.Settings.NoopStrict = tc.userset, tc.strict
			h := newHarness(t, []Route{route}, nil)
			a := h.enqueue(t, "sender@client.test", "ok-a@fake.test")
			h.start()
			h.settled(t, a, 1)
			h.clock.Advance(DefaultProbeAfterIdle)
			b := h.enqueue(t, "sender@client.test", "ok-b@fake.test")
			h.engine.kick()
			m := h.settled(t, b, 1)
			if rc := recipientOf(t, m, "ok-b@fake.test"); rc.State != queue.Delivered || rc.Attempts != 1 {
				t.Fatalf("second message: %s after %d attempts, want delivered after 1", rc.State, rc.Attempts)
			}
			srv.mu.Lock()
			got := map[int][]string{}
			for _, c := range srv.commands {
				var n int
				var verb string
				fmt.Sscanf(c, "%d %s", &n, &verb)
				got[n] = append(got[n], verb)
			}
			srv.mu.Unlock()
			if len(got) != len(tc.want) {
				t.Fatalf("server saw %d connections, want %d: %v", len(got), len(tc.want), got)
			}
			for n, want := range tc.want {
				// Afterwards only the QUIT that closes it may follow.
				g := got[n]
				tailOK := len(g) >= len(want) && !slices.ContainsFunc(g[len(want):], func(v string) bool { return v != "QUIT" })
				if !tailOK || !slices.Equal(g[:len(want)], want) {
					t.Errorf("connection %d: commands %v, want %v", n, g, want)
				}
			}
		})
	}
}

// TestNoProbeBetweenTransactions: a connection reused right after a
// transaction carries the next MAIL at once, with no RSET after the message
// and no NOOP before the next (RFC 5321 §4.1.1.4: the reply to the end of
// data ends the transaction); once it sat idle for ProbeAfterIdle, the
// next message is preceded by the NOOP probe.
func TestNoProbeBetweenTransactions(t *testing.T) {
	srv := newFakeServer(t)
	h := newHarness(t, []Route{testRoute("fake", srv.port())}, func(o *Options) {
		o.Workers, o.PerRouteConnections = 1, 1
	})
	var ids []queue.ID
	for i := range 3 {
		ids = append(ids, h.enqueue(t, "sender@client.test", fmt.Sprintf("ok-%d@fake.test", i)))
	}
	h.start()
	for _, id := range ids {
		h.settled(t, id, 1)
	}
	h.clock.Advance(DefaultProbeAfterIdle)
	h.settled(t, h.enqueue(t, "sender@client.test", "ok-idle@fake.test"), 1)

	tx := []string{"MAIL", "RCPT", "DATA"}
	want := []string{"EHLO"}
	for range 3 {
		want = append(want, tx...)
	}
	want = append(append(want, "NOOP"), tx...)
	srv.mu.Lock()
	var got []string
	for _, c := range srv.commands {
		var n int
		var verb string
		fmt.Sscanf(c, "%d %s", &n, &verb)
		if n != 1 {
			t.Errorf("command on connection %d (%s): every message should reuse the first", n, c)
		}
		got = append(got, verb)
	}
	srv.mu.Unlock()
	if !slices.Equal(got, want) {
		t.Fatalf("commands %v,\nwant %v", got, want)
	}
}

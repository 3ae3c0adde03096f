package delivery

import (
	"testing"
	"time"

	"mailq/queue"
)

// TestHeldInFlightDoesNotExpire: a message held while its attempt is in
// flight, whose lifetime runs out during that attempt, is not bounced: held
// messages never expire until released (docs/cli.md, hold/release).
func TestHeldInFlightDoesNotExpire(t *testing.T) {
	srv := newFakeServer(t)
	srv.delay = 300 * time.Millisecond // keep the attempt in flight while we hold it
	route := testRoute("fake", srv.port())
	route.Retry.MaxLifetime = time.Hour
	h := newHarness(t, []Route{route}, nil)
	id := h.enqueue(t, "sender@client.test", "d451-a@fake.test")
	h.clock.Advance(59 * time.Minute)
	h.start()

	waitFor(t, "the attempt to start", func() bool {
		m, err := h.store.Get(id)
		return err == nil && m.Status == queue.StatusActive
	})
	if err := h.store.Hold(id); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(2 * time.Minute) // the 451 arrives after the 60m deadline
	var m *queue.Message
	waitFor(t, "the attempt's outcome", func() bool {
		var err error
		m, err = h.store.Get(id)
		return err == nil && len(m.Attempts) == 1 && len(m.Attempts[0].Replies) > 0
	})
	if rc := recipientOf(t, m, "d451-a@fake.test"); rc.State != queue.Deferred || !m.Held {
		t.Fatalf("held past its lifetime: state %s, held %v; want deferred and still held", rc.State, m.Held)
	}
	if n := len(h.dsns(t)); n != 0 {
		t.Fatalf("%d notices for a held message, want none", n)
	}
}

package delivery

import (
	"testing"

	"github.com/rs/zerolog"
)

// TestLeaseInBatches: the scheduler does not make a store transaction per
// message. A finished delivery wakes it (Engine.kick, a channel of
// capacity 1), and one Lease takes every free slot, so wake-ups that come
// while a Lease or a commit is under way fold into the next one. 600
// messages over the default 32 workers and 8 connections take far fewer
// Lease transactions than messages.
func TestLeaseInBatches(t *testing.T) {
	const messages = 600
	srv := newFakeServer(t)
	var cs *countingStore
	h := newHarness(t, []Route{testRoute("fake", srv.port())}, func(o *Options) {
		cs = &countingStore{Store: o.Store}
		o.Store = cs
		o.Workers, o.PerRouteConnections = DefaultWorkers, DefaultPerRouteConnections
		o.Logger = zerolog.Nop()
	})
	fill(t, h.store, messages, 1, testBody("sender@client.test", "batch"))
	h.start()
	waitForCount(t, "messages at the server", messages, func() int {
		_, _, msgs := srv.stats()
		return len(msgs)
	})
	leases := cs.leases.Load()
	t.Logf("%d messages, %d Lease transactions", messages, leases)
	if leases > messages/4 {
		t.Fatalf("%d Lease transactions for %d messages; want at most %d (leases in batches)", leases, messages, messages/4)
	}
}

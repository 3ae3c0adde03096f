package delivery

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"mailq/queue"
	"mailq/queue/boltstore"
)

// TestAttemptCutOffByCrashIsRetried: a message leased when the process
// died (no outcome recorded) is delivered by the next engine, and its
// history shows the interrupted attempt before the successful one.
func TestAttemptCutOffByCrashIsRetried(t *testing.T) {
	srv := newFakeServer(t)
	clock := newFakeClock()
	path := filepath.Join(t.TempDir(), "queue.db")
	store, err := boltstore.Open(path, queue.Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	id, err := store.Enqueue(queue.Envelope{Sender: "sender@client.test",
		Recipients: []queue.RecipientSpec{{Address: "ok-a@fake.test"}}}, strings.NewReader(testBody("sender@client.test", "crash")))
	if err != nil {
		t.Fatal(err)
	}
	if ls, err := store.Lease(clock.Now(), 1); err != nil || len(ls) != 1 {
		t.Fatalf("lease: %v %v", ls, err)
	}
	store.Close() // "crash": the lease is never completed

	store, err = boltstore.Open(path, queue.Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	e, err := New(Options{Store: store, Routes: []Route{testRoute("fake", srv.port())}, Now: clock.Now,
		Logger: zerolog.Nop(), Rand: func() float64 { return 0.5 }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	defer func() { cancel(); <-done }()

	var m *queue.Message
	waitFor(t, "recovered message delivered", func() bool {
		m, err = store.Get(id)
		return err == nil && m.Status == queue.StatusDone
	})
	if len(m.Attempts) != 2 || !m.Attempts[0].Interrupted || m.Attempts[1].Interrupted {
		t.Fatalf("attempts %+v, want an interrupted one then a completed one", m.Attempts)
	}
	if rc := recipientOf(t, m, "ok-a@fake.test"); rc.State != queue.Delivered || rc.Attempts != 2 {
		t.Fatalf("recipient %s after %d attempts, want delivered after 2", rc.State, rc.Attempts)
	}
}

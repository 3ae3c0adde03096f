package main

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"mailq/queue"
	"mailq/queue/boltstore"
)

// TestPurgeLoopDropsFinishedMessagesPastRetention: done messages leave the
// store once retention has passed; live ones stay.
func TestPurgeLoopDropsFinishedMessagesPastRetention(t *testing.T) {
	store, err := boltstore.Open(filepath.Join(t.TempDir(), "queue.db"), queue.Options{Retention: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	env := queue.Envelope{Sender: "a@example.com", Recipients: []queue.RecipientSpec{{Address: "b@example.org"}}}
	done, err := store.Enqueue(env, strings.NewReader("Subject: done\r\n\r\nx\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	leases, err := store.Lease(time.Now(), 1)
	if err != nil || len(leases) != 1 {
		t.Fatalf("Lease = %v, %v", leases, err)
	}
	if err := store.RecordOutcome(leases[0], queue.Attempt{Time: time.Now(), Route: "r"},
		[]queue.Outcome{{Recipient: "b@example.org", Decision: queue.DecideDelivered}}); err != nil {
		t.Fatal(err)
	}
	live, err := store.Enqueue(env, strings.NewReader("Subject: live\r\n\r\nx\r\n"))
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { purgeLoop(ctx, store, 10*time.Millisecond, zerolog.New(io.Discard)); close(stopped) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := store.Get(done)
		if errors.Is(err, queue.ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("done message %s still there after 10s (Get err = %v)", done, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := store.Get(live); err != nil {
		t.Fatalf("live message %s was purged: %v", live, err)
	}
	cancel()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("purgeLoop did not stop when its context ended")
	}
}

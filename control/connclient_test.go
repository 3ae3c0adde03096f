package control_test

import (
	"context"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mailq/control"
	"mailq/control/server"
	"mailq/queue"
	"mailq/queue/boltstore"
)

// TestConnClientRequestsInTurn: over the one connection of NewConnClient
// (mailqctl's to `mailq read-queue`), answers of every kind — JSON with a
// length, chunked streams with their trailer, a refusal — are each read to
// their end, so the next request finds the connection in step.
func TestConnClientRequestsInTurn(t *testing.T) {
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "queue.db"), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	env := queue.Envelope{Sender: "a@example.com", Recipients: []queue.RecipientSpec{{Address: "b@example.org"}}}
	id, err := st.Enqueue(env, strings.NewReader("Subject: one\r\n\r\nbody\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	ours, theirs := net.Pipe()
	served := make(chan struct{})
	go func() { server.ServeConn(st, theirs); close(served) }()
	c := control.NewConnClient("the test store", ours)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for round := 0; round < 3; round++ {
		stats, err := c.Stats(ctx)
		if err != nil || stats.Live != 1 {
			t.Fatalf("round %d: Stats = %+v, %v; want 1 live", round, stats, err)
		}
		var listed []queue.ID
		if err := c.List(ctx, queue.Filter{}, func(m *queue.Message) error { listed = append(listed, m.ID); return nil }); err != nil || len(listed) != 1 || listed[0] != id {
			t.Fatalf("round %d: List = %v, %v; want [%s]", round, listed, err, id)
		}
		body, err := c.Body(ctx, id)
		if err != nil {
			t.Fatalf("round %d: Body: %v", round, err)
		}
		data, err := io.ReadAll(body)
		body.Close()
		if err != nil || !strings.Contains(string(data), "Subject: one") {
			t.Fatalf("round %d: body %q, %v", round, data, err)
		}
		if _, err := c.Show(ctx, "no-such-id"); err == nil {
			t.Fatalf("round %d: Show of an unknown id answered no error", round)
		}
	}
	ours.Close()
	select {
	case <-served:
	case <-time.After(10 * time.Second):
		t.Error("the server did not end when the connection closed")
	}
}

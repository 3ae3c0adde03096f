package delivery

import (
	"encoding/json"
	"net"
	"strconv"
	"strings"
	"testing"

	"mailq/queue"
)

// Test452SplitsWithoutCountingAttempts: a server that takes 2 recipients
// per transaction gets the other 3 in further transactions on the same
// connection, in one attempt (docs/delivery.md).
func Test452SplitsWithoutCountingAttempts(t *testing.T) {
	for _, size := range []int{0, 300 << 10} { // read once into memory / streamed from the store
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			srv := newFakeServer(t)
			srv.maxRcpts = 2
			h := newHarness(t, []Route{testRoute("fake", srv.port())}, nil)
			rcpts := []string{"ok-1@fake.test", "ok-2@fake.test", "ok-3@fake.test", "ok-4@fake.test", "ok-5@fake.test"}
			env := queue.Envelope{Sender: "sender@client.test"}
			for _, a := range rcpts {
				env.Recipients = append(env.Recipients, queue.RecipientSpec{Address: a})
			}
			body := testBody("sender@client.test", "split") + strings.Repeat("z", size) + "\r\n"
			id, err := h.store.Enqueue(env, strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			h.start()
			m := h.settled(t, id, 1)
			for _, a := range rcpts {
				if rc := recipientOf(t, m, a); rc.State != queue.Delivered || rc.Attempts != 1 {
					t.Errorf("%s: %s after %d attempts, want delivered after 1", a, rc.State, rc.Attempts)
				}
			}
			accepts, _, msgs := srv.stats()
			if accepts != 1 || len(msgs) != 3 {
				t.Fatalf("server: %d connections, %d transactions; want 1 connection and 3 transactions", accepts, len(msgs))
			}
			for _, fm := range msgs {
				if fm.Data != body {
					t.Errorf("transaction to %v got an altered body (%d bytes, want %d)", fm.To, len(fm.Data), len(body))
				}
			}
			if len(m.Attempts) != 1 {
				t.Errorf("%d attempts recorded, want 1", len(m.Attempts))
			}
		})
	}
}

// TestConnectionRefusedRetries: nobody listening is a temporary failure
// with a status and explanation kept in last_reply.
func TestConnectionRefusedRetries(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // nothing listens there now
	h := newHarness(t, []Route{testRoute("down", port)}, nil)
	id := h.enqueue(t, "sender@client.test", "a@fake.test")
	h.start()
	m := h.settled(t, id, 1)
	rc := recipientOf(t, m, "a@fake.test")
	if rc.State != queue.Deferred || rc.LastReply == nil || !strings.HasPrefix(rc.LastReply.Enhanced, "4.") || rc.LastReply.Text == "" {
		t.Fatalf("refused connection: %s %+v, want deferred with a 4.x.x explanation", rc.State, rc.LastReply)
	}
	if n := len(h.dsns(t)); n != 0 {
		t.Errorf("a temporary failure sent %d notices", n)
	}
}

// TestAuthFailureIsOperatorError: auth = true against a server without
// AUTH retries, logs at error level, and never logs the password.
func TestAuthFailureIsOperatorError(t *testing.T) {
	srv := newFakeServer(t)
	route := testRoute("relay", srv.port())
	route.Settings.Auth = ptr(true)
	route.Settings.User = "app@client.test"
	route.Settings.Password = "s3cret-Passw0rd"
	h := newHarness(t, []Route{route}, nil)
	id := h.enqueue(t, "sender@client.test", "ok-a@fake.test")
	h.start()
	m := h.settled(t, id, 1)
	if rc := recipientOf(t, m, "ok-a@fake.test"); rc.State != queue.Deferred {
		t.Fatalf("auth failure: %s, want deferred (never a bounce)", rc.State)
	}
	// The outcome is logged just after it is recorded.
	errorLines := func() int {
		n := 0
		for _, line := range strings.Split(h.logBuf.String(), "\n") {
			var ev map[string]any
			if json.Unmarshal([]byte(line), &ev) == nil && ev["recipient"] == "ok-a@fake.test" && ev["level"] == "error" {
				n++
			}
		}
		return n
	}
	waitFor(t, "the error-level outcome line", func() bool { return errorLines() > 0 })
	if n := errorLines(); n != 1 {
		t.Errorf("want one error-level outcome line for the AUTH failure, got %d:\n%s", n, h.logBuf.String())
	}
	if logs := h.logBuf.String(); strings.Contains(logs, "s3cret") {
		t.Fatalf("the password reached the log:\n%s", logs)
	}
}

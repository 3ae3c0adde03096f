package delivery

import (
	"net"
	"testing"
	"time"
)

// TestOperatorRetryKeepsSchedule (issue 12 item 5): during an outage, each
// retry and flush the operator asks for is an attempt in the history, but
// the recipient's schedule stays where the failed scheduled attempts put
// it: 5 minutes after the first failure, not 40.
func TestOperatorRetryKeepsSchedule(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // the route is down
	h := newHarness(t, []Route{testRoute("down", port)}, nil)
	id := h.enqueue(t, "sender@client.test", "a@fake.test")
	h.start()
	m := h.settled(t, id, 1)
	first := recipientOf(t, m, "a@fake.test")
	want := h.clock.Now().Add(5 * time.Minute)
	if !first.NextAttempt.Equal(want) {
		t.Fatalf("after the first failure next attempt is %v, want %v", first.NextAttempt, want)
	}
	for i := 2; i <= 4; i++ {
		h.clock.Advance(30 * time.Second)
		if i == 3 {
			if _, err := h.store.Flush(); err != nil {
				t.Fatal(err)
			}
		} else if err := h.store.MakeDue(id); err != nil {
			t.Fatal(err)
		}
		m = h.settled(t, id, i)
		rc := recipientOf(t, m, "a@fake.test")
		if !rc.NextAttempt.Equal(want) {
			t.Errorf("after operator attempt %d the next attempt is %v, want still %v (the schedule must not advance)", i-1, rc.NextAttempt, want)
		}
		if rc.OperatorAttempts != i-1 || rc.Attempts != i {
			t.Errorf("after operator attempt %d: attempts %d, operator_attempts %d; want %d and %d", i-1, rc.Attempts, rc.OperatorAttempts, i, i-1)
		}
		if !m.Attempts[i-1].Operator || m.Attempts[0].Operator {
			t.Errorf("attempt history does not mark the operator's attempts: %+v", m.Attempts)
		}
	}
	// The scheduled attempt at +5m fails too: it is the second scheduled
	// failure, so the next gap is 10m, not 80m.
	h.clock.Advance(want.Sub(h.clock.Now()))
	h.engine.kick()
	m = h.settled(t, id, 5)
	rc := recipientOf(t, m, "a@fake.test")
	if next := want.Add(10 * time.Minute); !rc.NextAttempt.Equal(next) {
		t.Errorf("after the second scheduled failure the next attempt is %v, want %v (5m+10m)", rc.NextAttempt, next)
	}
	if !rc.ResumeAt.IsZero() {
		t.Errorf("resume_at left set after a scheduled attempt: %v", rc.ResumeAt)
	}
}

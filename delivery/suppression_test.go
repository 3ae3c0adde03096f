package delivery

import (
	"strings"
	"testing"
	"time"

	"mailq/queue"
	"mailq/suppression"
)

// rcptCount counts the RCPT commands the fake server has seen.
func (s *fakeServer) rcptCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.commands {
		if strings.HasSuffix(c, " RCPT") {
			n++
		}
	}
	return n
}

// TestSuppressionList: 550 5.1.1 once puts the address on the list; the
// next message to it is bounced without reaching the server, with a DSN
// saying "suppressed: <original reply>"; remove lets it through again, and
// an entry past its TTL (fake clock) no longer holds. A route with the
// list switched off neither adds nor checks.
func TestSuppressionList(t *testing.T) {
	srv := newFakeServer(t)
	notices := newFakeServer(t) // the DSNs to app@notices.test go here, so srv sees only the test's recipients
	var list *suppression.List
	routes := []Route{testRoute("sink", srv.port()), testRoute("raw", srv.port(), "raw.test"), testRoute("notices", notices.port(), "notices.test")}
	h := newHarness(t, routes, func(o *Options) {
		list = suppression.New(suppression.Options{Store: o.Store, TTL: 48 * time.Hour, SkipRoutes: []string{"raw"}, Now: o.Now})
		o.Suppression = list
	})
	h.start()
	gone := "r550-gone@example.org"

	first := h.enqueue(t, "app@notices.test", gone)
	m := h.settled(t, first, 1)
	if rc := recipientOf(t, m, gone); rc.State != queue.Bounced {
		t.Fatalf("first message: %s is %s, want bounced", gone, rc.State)
	}
	e, ok, err := list.Lookup(gone)
	if err != nil || !ok || e.Reply.Code != 550 || e.Reply.Enhanced != "5.1.1" || e.QueueID != first {
		t.Fatalf("after 550 5.1.1: entry %+v, on list %v, err %v; want the 550 reply from %s", e, ok, err, first)
	}
	rcpts := srv.rcptCount()

	// Suppressed: bounced, no RCPT at the server, the DSN explains.
	second := h.enqueue(t, "app@notices.test", gone)
	m = h.settled(t, second, 1)
	rc := recipientOf(t, m, gone)
	if rc.State != queue.Bounced || rc.LastReply == nil || rc.LastReply.Enhanced != "5.1.1" ||
		rc.LastReply.Text != "suppressed: 550 5.1.1 no such user" {
		t.Fatalf("second message: %s = %+v, want bounced with \"suppressed: 550 5.1.1 no such user\"", gone, rc)
	}
	if got := srv.rcptCount(); got != rcpts {
		t.Fatalf("the suppressed recipient reached the server: %d RCPTs, was %d", got, rcpts)
	}
	waitFor(t, "two DSNs", func() bool { return len(h.dsns(t)) == 2 })
	dsn := parseDSN(t, h.noticeBody(t, h.dsns(t)[1].ID))
	if len(dsn.Per) != 1 || dsn.Per[0].Get("Status") != "5.1.1" || !strings.Contains(dsn.Per[0].Get("Diagnostic-Code"), "suppressed: 550 5.1.1 no such user") {
		t.Fatalf("DSN per-recipient fields = %v, want Status 5.1.1 and the suppressed diagnostic", dsn.Per)
	}

	// Removed: the next message goes to the server again.
	if ok, err := list.Remove(gone); !ok || err != nil {
		t.Fatalf("Remove = %v, %v", ok, err)
	}
	third := h.enqueue(t, "app@notices.test", gone)
	h.settled(t, third, 1)
	if got := srv.rcptCount(); got != rcpts+1 {
		t.Fatalf("after remove: %d RCPTs, want %d", got, rcpts+1)
	}

	// The third bounce put it back; past the TTL it no longer holds.
	if _, ok, _ := list.Lookup(gone); !ok {
		t.Fatal("the third 550 did not put the address back on the list")
	}
	h.clock.Advance(48 * time.Hour)
	fourth := h.enqueue(t, "app@notices.test", gone)
	h.settled(t, fourth, 1)
	if got := srv.rcptCount(); got != rcpts+2 {
		t.Fatalf("after the TTL: %d RCPTs, want %d (the expired entry must not hold)", got, rcpts+2)
	}

	// A route with the list off: its 550 adds nothing.
	raw := h.enqueue(t, "app@notices.test", "r550-x@raw.test")
	h.settled(t, raw, 1)
	if _, ok, _ := list.Lookup("r550-x@raw.test"); ok {
		t.Error("a bounce on route raw (skip_routes) put the address on the list")
	}
}

package delivery

import (
	"testing"
)

// TestEHLONameIsHostname: with hostname = "mq.example.test" and no route
// localhost, every connection greets with EHLO mq.example.test
// (interfaces.md: hostname is the EHLO name default), not with an address
// literal or the machine's own name.
func TestEHLONameIsHostname(t *testing.T) {
	srv := newFakeServer(t)
	route := testRoute("fake", srv.port())
	route.Settings.Localhost = ""
	h := newHarness(t, []Route{route}, func(o *Options) { o.Hostname = "mq.example.test" })
	id := h.enqueue(t, "sender@client.test", "ok-a@fake.test")
	h.start()
	h.settled(t, id, 1)
	srv.mu.Lock()
	helos := append([]string(nil), srv.helos...)
	srv.mu.Unlock()
	if len(helos) == 0 {
		t.Fatal("the server saw no EHLO")
	}
	for _, l := range helos {
		if l != "EHLO mq.example.test" {
			t.Errorf("greeting %q, want EHLO mq.example.test", l)
		}
	}
}

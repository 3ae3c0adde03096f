package delivery

import (
	"strings"
	"testing"

	"mailq/queue"
)

// TestEightBitBodies: BODY=8BITMIME is declared exactly when the body has
// 8-bit bytes (RFC 6152), for small bodies read once and for large ones
// streamed twice from the store, and the body arrives unchanged.
func TestEightBitBodies(t *testing.T) {
	cases := []struct {
		name     string
		body     string
		eightBit bool
	}{
		{"ascii", testBody("sender@client.test", "plain"), false},
		{"utf-8 small", testBody("sender@client.test", "plain") + "Grüße\r\n", true},
		{"ascii large", testBody("sender@client.test", "big") + strings.Repeat("y", 300<<10) + "\r\n", false},
		{"utf-8 at the end of a large body", testBody("sender@client.test", "big") + strings.Repeat("y", 300<<10) + "\r\nÜ\r\n", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := newFakeServer(t)
			h := newHarness(t, []Route{testRoute("fake", srv.port())}, nil)
			id, err := h.store.Enqueue(queue.Envelope{Sender: "sender@client.test",
				Recipients: []queue.RecipientSpec{{Address: "ok-a@fake.test"}}}, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			h.start()
			h.settled(t, id, 1)
			_, _, msgs := srv.stats()
			if len(msgs) != 1 {
				t.Fatalf("server got %d messages", len(msgs))
			}
			if got := strings.Contains(msgs[0].Mail, "BODY=8BITMIME"); got != tc.eightBit {
				t.Errorf("MAIL line %q: BODY=8BITMIME present = %v, want %v", msgs[0].Mail, got, tc.eightBit)
			}
			if msgs[0].Data != tc.body {
				t.Errorf("body arrived altered (%d bytes, want %d)", len(msgs[0].Data), len(tc.body))
			}
		})
	}
}

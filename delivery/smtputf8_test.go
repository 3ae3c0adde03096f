package delivery

import (
	"strings"
	"testing"

	"mailq/queue"
)

// TestUTF8HeaderNeedsSMTPUTF8: a message with ASCII addresses but a raw
// UTF-8 Subject is stored smtputf8 and, to a server that does not offer
// SMTPUTF8, fails permanently with 5.6.7 (smtp-properties.md) instead of
// being delivered as if it were plain ASCII.
func TestUTF8HeaderNeedsSMTPUTF8(t *testing.T) {
	srv := newFakeServer(t) // offers no SMTPUTF8
	h := newHarness(t, []Route{testRoute("fake", srv.port())}, nil)
	env := queue.Envelope{Sender: "sender@client.test", Recipients: []queue.RecipientSpec{{Address: "ok-a@fake.test"}}}
	id, err := h.store.Enqueue(env, strings.NewReader(testBody("sender@client.test", "Grüße aus Köln")))
	if err != nil {
		t.Fatal(err)
	}
	h.start()
	m := h.settled(t, id, 1)
	if !m.SMTPUTF8 {
		t.Errorf("stored smtputf8 = false for a UTF-8 Subject")
	}
	rc := recipientOf(t, m, "ok-a@fake.test")
	if rc.State != queue.Bounced || rc.LastReply == nil || rc.LastReply.Enhanced != "5.6.7" {
		t.Fatalf("recipient %s with %+v, want bounced with 5.6.7", rc.State, rc.LastReply)
	}
	if _, _, msgs := srv.stats(); len(msgs) > 0 && msgs[0].From == "sender@client.test" {
		t.Errorf("the message reached a server without SMTPUTF8")
	}
}

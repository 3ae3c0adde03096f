package delivery

import (
	"net"
	"strings"
	"testing"
)

// TestTranscriptRecordedByDefault: every attempt keeps its transcript
// without any option (interfaces.md's show sample has one): commands and
// replies, never the body.
func TestTranscriptRecordedByDefault(t *testing.T) {
	srv := newFakeServer(t)
	h := newHarness(t, []Route{testRoute("fake", srv.port())}, nil)
	id := h.enqueue(t, "sender@client.test", "ok-a@fake.test")
	h.start()
	m := h.settled(t, id, 1)
	tr := strings.Join(m.Attempts[0].Transcript, "\n")
	for _, want := range []string{"connected to 127.0.0.1:", "S: 220 fake.test", "C: EHLO client.test", "C: MAIL FROM:<sender@client.test>", "C: RCPT TO:<ok-a@fake.test>", "bytes of message>", "S: 250 2.0.0"} {
		if !strings.Contains(tr, want) {
			t.Errorf("transcript lacks %q:\n%s", want, tr)
		}
	}
	if strings.Contains(tr, "Hello there") {
		t.Errorf("the message body is in the transcript:\n%s", tr)
	}
}

// TestConnectionFailureIsRecorded: a refused connection leaves an attempt
// record that says what was dialled and why it failed, so the history
// never reads "(no connection)" without a reason.
func TestConnectionFailureIsRecorded(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	addr := ln.Addr().String()
	ln.Close()
	h := newHarness(t, []Route{testRoute("gone", port)}, nil)
	id := h.enqueue(t, "sender@client.test", "ok-a@fake.test")
	h.start()
	m := h.settled(t, id, 1)
	a := m.Attempts[0]
	if a.Route != "gone" || a.Remote != addr || !strings.Contains(a.Error, "couldn't connect") || !strings.Contains(a.Error, "refused") {
		t.Errorf("attempt route %q remote %q error %q; want route gone, remote %s and the connect error", a.Route, a.Remote, a.Error, addr)
	}
	if !strings.Contains(strings.Join(a.Transcript, "\n"), "connection failed") {
		t.Errorf("transcript %q does not record the failure", a.Transcript)
	}
}

// TestSessionFailureRecordsWhereItWent: AUTH fails after the connection
// and EHLO succeeded (auth = true, the server offers no AUTH); the attempt
// still names the server it reached, the error, and the transcript,
// instead of reading "(no connection)".
func TestSessionFailureRecordsWhereItWent(t *testing.T) {
	srv := newFakeServer(t)
	route := testRoute("fake", srv.port())
	route.Settings.Auth, route.Settings.Password = ptr(true), "s3cret"
	h := newHarness(t, []Route{route}, nil)
	id := h.enqueue(t, "sender@client.test", "ok-a@fake.test")
	h.start()
	m := h.settled(t, id, 1)
	a := m.Attempts[0]
	if a.Remote != srv.ln.Addr().String() || !strings.Contains(a.Error, "auth = true but the server does not offer AUTH") {
		t.Errorf("attempt remote %q error %q; want %s and the AUTH error", a.Remote, a.Error, srv.ln.Addr())
	}
	if tr := strings.Join(a.Transcript, "\n"); !strings.Contains(tr, "C: EHLO client.test") || strings.Contains(tr, "s3cret") {
		t.Errorf("transcript:\n%s", tr)
	}
}

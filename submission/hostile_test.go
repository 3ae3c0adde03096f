package submission

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// Issue 10: the listener tried from the other side, as a hostile or slow
// client would. Every test talks to the real listener over a socket.

// expectClosed checks that the server closed the connection (after
// reading whatever replies are still in flight, which must not be 2xx/3xx).
func (rc *rawConn) expectClosed() {
	rc.t.Helper()
	rc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		line, err := rc.r.ReadString('\n')
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				rc.t.Fatalf("connection still open after the error reply")
			}
			return
		}
		if line[0] == '2' || line[0] == '3' {
			rc.t.Fatalf("server went on after the error: %q", line)
		}
	}
}

func (rc *rawConn) dripFor(s string, every time.Duration) {
	for i := range len(s) {
		if _, err := io.WriteString(rc.c, s[i:i+1]); err != nil {
			return // closed by the server: expected in these tests
		}
		time.Sleep(every)
	}
}

// count is how many messages are queued (kept in memory by the store, so
// cheap enough for the fuzzer).
func (r *rig) count(t testing.TB) int {
	t.Helper()
	st, err := r.store.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return st.Live + st.Done
}

func openTransaction(rc *rawConn) {
	rc.send("EHLO client.test\r\n")
	rc.expect("250")
	rc.send("MAIL FROM:<app@example.com>\r\n")
	rc.expect("250")
	rc.send("RCPT TO:<user@example.org>\r\n")
	rc.expect("250")
	rc.send("DATA\r\n")
	rc.expect("354")
}

const injection = "MAIL FROM:<ceo@example.com>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\nSubject: injected\r\n\r\npay now\r\n.\r\n"

// Item 1: a stalled DATA transfer ends the session with 421; what the
// client sends afterwards is never read as commands.
func TestDataStallEndsSessionNoInjection(t *testing.T) {
	r := startListener(t, func(o *Options) { o.Timeout = 500 * time.Millisecond })
	rc := dialRaw(t, r.addr)
	openTransaction(rc)
	rc.send("Subject: slow\r\n\r\nfirst line\r\n")
	time.Sleep(1200 * time.Millisecond)
	io.WriteString(rc.c, ".\r\n"+injection) // may fail: the server has closed
	rc.expect("421 4.4.2")
	rc.expectClosed()
	if n := r.count(t); n != 0 {
		t.Fatalf("%d messages queued after a timed-out transfer", n)
	}
}

// Item 1: the timeout is per read (idle time), so an upload that is slow
// but never idle for a whole timeout goes through.
func TestSlowSteadyUploadAccepted(t *testing.T) {
	r := startListener(t, func(o *Options) { o.Timeout = 500 * time.Millisecond })
	rc := dialRaw(t, r.addr)
	openTransaction(rc)
	rc.send("Subject: slow\r\n\r\n")
	for i := range 8 { // 1.6 s in all, three times the timeout
		rc.send(fmt.Sprintf("line %d\r\n", i))
		time.Sleep(200 * time.Millisecond)
	}
	rc.send(".\r\n")
	id := idFromReply(t, rc.expect("250 2.0.0"))
	if _, body := r.stored(t, id); !strings.HasSuffix(body, "line 7\r\n") {
		t.Errorf("stored %q", body)
	}
}

// Item 1: a transfer that drips forever hits the whole-transfer limit.
func TestTransferTimeoutEndsDrip(t *testing.T) {
	r := startListener(t, func(o *Options) { o.Timeout = time.Second; o.TransferTimeout = 800 * time.Millisecond })
	rc := dialRaw(t, r.addr)
	openTransaction(rc)
	go rc.dripFor("Subject: drip\r\n\r\n"+strings.Repeat("x\r\n", 20)+".\r\n"+injection, 100*time.Millisecond)
	rc.expect("421 4.4.2")
	rc.expectClosed()
	if n := r.count(t); n != 0 {
		t.Fatalf("%d messages queued", n)
	}
}

// Item 1 for CHUNKING: a stalled BDAT chunk ends the session too.
func TestBDATStallEndsSession(t *testing.T) {
	r := startListener(t, func(o *Options) { o.Timeout = 500 * time.Millisecond })
	rc := dialRaw(t, r.addr)
	rc.send("EHLO c\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nBDAT 100 LAST\r\nSubject: x\r\n\r\n")
	rc.expect("250")
	rc.expect("250")
	rc.expect("250")
	time.Sleep(1200 * time.Millisecond)
	io.WriteString(rc.c, strings.Repeat("y", 100)+injection)
	rc.expect("421 4.4.2")
	rc.expectClosed()
	if n := r.count(t); n != 0 {
		t.Fatalf("%d messages queued", n)
	}
}

// Item 2: a command line still incomplete at the timeout is never run:
// the session ends with 421 4.4.2 at the first timeout.
func TestPartialCommandAtTimeout(t *testing.T) {
	r := startListener(t, func(o *Options) { o.Timeout = 500 * time.Millisecond })
	rc := dialRaw(t, r.addr)
	go rc.dripFor("EHLO "+strings.Repeat("x", 40)+"\r\n", 50*time.Millisecond)
	rc.expect("421 4.4.2")
	rc.expectClosed()
}

// Item 3: beyond max_connections, and beyond the per-address limit, a
// client gets 421 4.7.0 at once instead of waiting without a greeting.
func TestConnectionLimits(t *testing.T) {
	r := startListener(t, func(o *Options) { o.MaxConns = 4; o.MaxConnsPerIP = 2 })
	dialFrom := func(src string) (net.Conn, string) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", r.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 200)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("no greeting from %s: %v", src, err)
		}
		return c, string(buf[:n])
	}
	for _, src := range []string{"127.0.0.1", "127.0.0.1"} {
		if _, g := dialFrom(src); !strings.HasPrefix(g, "220 ") {
			t.Fatalf("greeting %q", g)
		}
	}
	c, g := dialFrom("127.0.0.1")
	if !strings.HasPrefix(g, "421 4.7.0") || !strings.Contains(g, "your address") {
		t.Fatalf("third connection from one address: %q", g)
	}
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatalf("refused connection still open (%d bytes)", n)
	}
	for _, src := range []string{"127.0.0.2", "127.0.0.3"} {
		if _, g := dialFrom(src); !strings.HasPrefix(g, "220 ") {
			t.Fatalf("greeting for %s: %q", src, g)
		}
	}
	if _, g := dialFrom("127.0.0.4"); !strings.HasPrefix(g, "421 4.7.0 mx.test Too many connections") {
		t.Fatalf("connection beyond max_connections: %q", g)
	}
}

// Item 4: after three failures each AUTH reply is delayed, longer each
// time; the tenth failure closes the connection.
func TestAuthGuessingSlowedAndClosed(t *testing.T) {
	authFile := writeAuthFile(t)
	const delay = 40 * time.Millisecond
	r := startListener(t, func(o *Options) { o.AuthFile = authFile; o.AuthFailDelay = delay })
	rc := dialRaw(t, r.addr)
	rc.send("EHLO c\r\n")
	rc.expect("250")
	wrong := "AUTH PLAIN AGFsaWNlAHdyb25n\r\n" // alice / wrong
	start := time.Now()
	for i := 1; i <= 9; i++ {
		rc.send(wrong)
		rc.expect("535 5.7.8")
	}
	// Failures 4..9 wait 1..6 times the delay: 21 in all.
	if el := time.Since(start); el < 21*delay {
		t.Errorf("nine failures took %v, want at least %v", el, 21*delay)
	}
	rc.send(wrong)
	rc.expect("421 4.7.0")
	rc.expectClosed()
}

// Item 5: a quoted local part is valid (RFC 5321 §4.1.2) and is stored
// exactly as the client sent it.
func TestQuotedLocalPartStoredAsSent(t *testing.T) {
	r := startListener(t, nil)
	rc := dialRaw(t, r.addr)
	rc.send("EHLO c\r\n")
	rc.expect("250")
	rc.send("MAIL FROM:<\"app sender\"@example.com>\r\n")
	rc.expect("250")
	for _, to := range []string{`"quoted local"@example.com`, `"a\"b>c"@example.com`, `plain@example.com`} {
		rc.send("RCPT TO:<" + to + ">\r\n")
		rc.expect("250")
	}
	rc.send("DATA\r\n")
	rc.expect("354")
	rc.send("Subject: q\r\n\r\nq\r\n.\r\n")
	m, _ := r.stored(t, idFromReply(t, rc.expect("250")))
	if m.Sender != `"app sender"@example.com` {
		t.Errorf("sender stored as %q", m.Sender)
	}
	want := []string{`"quoted local"@example.com`, `"a\"b>c"@example.com`, `plain@example.com`}
	for i, rcpt := range m.Recipients {
		if rcpt.Address != want[i] {
			t.Errorf("recipient %d stored as %q, want %q", i, rcpt.Address, want[i])
		}
	}
}

// Item 9: a second MAIL without RSET, repeated parameters; body bytes are
// kept as sent apart from dot-unstuffing.
func TestSequenceAndParameterStrictness(t *testing.T) {
	r := startListener(t, nil)
	rc := dialRaw(t, r.addr)
	rc.send("EHLO c\r\n")
	rc.expect("250")
	rc.send("MAIL FROM:<a@example.com> RET=FULL RET=HDRS\r\n")
	rc.expect("501 5.5.4")
	rc.send("MAIL FROM:<a@example.com>\r\n")
	rc.expect("250")
	rc.send("MAIL FROM:<b@example.com>\r\n")
	rc.expect("503 5.5.1")
	rc.send("RCPT TO:<c@example.org> NOTIFY=FAILURE NOTIFY=NEVER\r\n")
	rc.expect("501 5.5.4")
	rc.send("RSET\r\nMAIL FROM:<b@example.com>\r\n")
	rc.expect("250")
	rc.expect("250")
}

func TestBodyBytesKeptAsSent(t *testing.T) {
	r := startListener(t, nil)
	rc := dialRaw(t, r.addr)
	openTransaction(rc)
	sent := "Subject: bytes\r\n\r\nbare\rCR\r\n.\rdot-CR\r\n..stuffed\r\nbare\nLF\r\n.\n\r\n.x\r\n"
	want := "Subject: bytes\r\n\r\nbare\rCR\r\n\rdot-CR\r\n.stuffed\r\nbare\nLF\r\n\n\r\nx\r\n"
	rc.send(sent + ".\r\n")
	if _, body := r.stored(t, idFromReply(t, rc.expect("250"))); body != want {
		t.Errorf("stored %q\nwant   %q", body, want)
	}
}

// Item 7: the intake limits shared with the other paths; the session
// goes on after each refusal.
func TestIntakeLimitsOverSMTP(t *testing.T) {
	r := startListener(t, func(o *Options) { o.MaxRecipients = 2 })
	rc := dialRaw(t, r.addr)
	openTransaction(rc)
	rc.send(".\r\n")
	rc.expect("554 5.6.0 Message is empty")
	for _, body := range []string{"Subject: x\r\n\r\n" + strings.Repeat("y", 2001) + "\r\n.\r\n"} {
		rc.send("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n")
		rc.expect("250")
		rc.expect("250")
		rc.expect("354")
		rc.send(body)
		rc.expect("554 5.6.0 Message has a line longer")
	}
	rc.send("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\nRCPT TO:<d@example.org>\r\n")
	rc.expect("250")
	rc.expect("250")
	rc.expect("250")
	rc.expect("452 4.5.3")
	if n := r.count(t); n != 0 {
		t.Fatalf("%d messages queued", n)
	}
}

// A client that goes away in the middle of DATA queues nothing (found by
// FuzzSession: the store took io.ErrUnexpectedEOF for the end of a body).
func TestDisconnectMidDataQueuesNothing(t *testing.T) {
	r := startListener(t, nil)
	for _, cut := range []string{"Subject: cut\r\n\r\nhalf a line", "Subject: cut\r\n\r\nwhole line\r\n", "Subject: cut\r\n\r\n.\r"} {
		rc := dialRaw(t, r.addr)
		openTransaction(rc)
		rc.send(cut)
		rc.c.(*net.TCPConn).CloseWrite()
		rc.expectClosed()
	}
	if n := r.count(t); n != 0 {
		t.Fatalf("%d truncated messages queued", n)
	}
}

package smtpproto

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
)

// TestSessionThroughProxyNamesDialledPort: through an HTTP proxy with
// socketFactory.port, the session's remote is the host:port the tunnel
// went to, not the route's port, and the proxy is named.
func TestSessionThroughProxyNamesDialledPort(t *testing.T) {
	fs := startFake(t, "220 fake", step{Expect: "EHLO client.test", Reply: ehloReply("SIZE")})
	target := "127.0.0.1:" + strconv.Itoa(fs.port())
	paddr, _ := fakeHTTPProxy(t, "HTTP/1.1 200 OK", target)
	s := &Settings{Name: "t", Host: "127.0.0.1", Port: 2525, Localhost: "client.test", ProxyHost: paddr, SocketFactoryPort: fs.port()}
	c, err := Dial(context.Background(), s, DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sess := c.Session()
	if sess.Remote != target || c.RemoteAddr() != target || sess.Proxy != "http proxy "+paddr {
		t.Errorf("session %+v (RemoteAddr %s), want remote %s via http proxy %s", sess, c.RemoteAddr(), target, paddr)
	}
	fs.finish(c)
}

// TestDialErrorKeepsSession: when AUTH fails after STARTTLS, the error
// still says where the connection went and with which TLS, and carries the
// transcript (AUTH redacted); a refused connection says what was dialled.
func TestDialErrorKeepsSession(t *testing.T) {
	p := newPKI(t)
	fs := startFakeTLS(t, &tls.Config{Certificates: []tls.Certificate{p.good}}, false, "220 fake",
		step{Expect: "EHLO client.test", Reply: ehloReply("STARTTLS", "AUTH PLAIN")},
		step{Expect: "STARTTLS", Reply: "220 go ahead"},
		step{TLS: true, Expect: "EHLO client.test", Reply: ehloReply("AUTH PLAIN")},
		step{Expect: "AUTH PLAIN *", Reply: "535 5.7.8 authentication failed"})
	s := fs.settings()
	s.User, s.Password, s.StartTLSRequired, s.TLSCAFile = "alice", "s3cret", true, p.caFile
	_, err := Dial(context.Background(), s, DialOptions{Transcript: true})
	var de *DialError
	var ae *AuthError
	if !errors.As(err, &de) || !errors.As(err, &ae) {
		t.Fatalf("err = %v (%T), want a *DialError around an *AuthError", err, err)
	}
	if de.Session.Remote != fs.ln.Addr().String() || de.Session.TLS != "TLS1.3" || de.Session.Cipher == "" {
		t.Errorf("session %+v, want remote %s with TLS1.3 and its cipher", de.Session, fs.ln.Addr())
	}
	tr := strings.Join(de.Transcript, "\n")
	for _, want := range []string{"STARTTLS", "TLS established", "AUTH PLAIN <redacted>", "535 5.7.8 authentication failed"} {
		if !strings.Contains(tr, want) {
			t.Errorf("transcript lacks %q:\n%s", want, tr)
		}
	}
	if strings.Contains(tr, b64("\x00alice\x00s3cret")) {
		t.Errorf("transcript has the credentials:\n%s", tr)
	}
	fs.finish(nil)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	host, port, _ := net.SplitHostPort(closed)
	n, _ := strconv.Atoi(port)
	_, err = Dial(context.Background(), &Settings{Name: "t", Host: host, Port: n, Localhost: "client.test"}, DialOptions{Transcript: true})
	if !errors.As(err, &de) || de.Session.Remote != closed || !strings.Contains(strings.Join(de.Transcript, "\n"), "connection failed") {
		t.Errorf("refused: err = %v, session %+v, transcript %q", err, de.Session, de.Transcript)
	}
}

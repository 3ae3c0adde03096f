package smtpproto

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
)

// gatedReader returns its first part, then waits for gate before the rest:
// the server's mid-data reply is then surely on the wire before the dot.
type gatedReader struct {
	first io.Reader
	gate  chan struct{}
	rest  io.Reader
}

func (g *gatedReader) Read(p []byte) (int, error) {
	if n, err := g.first.Read(p); n > 0 || err != io.EOF {
		return n, err
	}
	<-g.gate
	return g.rest.Read(p)
}

// TestReplyBeforeEndOfData: bytes from the server before the final dot are
// a protocol error (RFC 5321 §4.5.2 replies come after the dot): the
// attempt is a temporary failure 4.5.0 "reply before end of data", the
// recipient is neither delivered nor bounced, and the connection is closed.
func TestReplyBeforeEndOfData(t *testing.T) {
	cases := []struct {
		name   string
		script func(gate chan struct{}) []step
		body   func(gate chan struct{}) io.Reader
		early  string
	}{
		{
			name: "250 right after 354",
			script: func(chan struct{}) []step {
				return []step{{Expect: "DATA", Reply: "354 go\n250 2.0.0 accepted early"}, {Hang: true}}
			},
			body:  func(chan struct{}) io.Reader { return strings.NewReader("Subject: x\r\n\r\nhello\r\n") },
			early: "250 2.0.0 accepted early",
		},
		{
			name: "554 in the middle of the data",
			script: func(gate chan struct{}) []step {
				return []step{{Expect: "DATA", Reply: "354 go"}, {Bytes: 1000, Reply: "554 5.7.1 rejected mid-data", Signal: gate}, {Hang: true}}
			},
			body: func(gate chan struct{}) io.Reader {
				first := "Subject: x\r\n\r\n" + strings.Repeat("0123456789abcdef\r\n", 40<<10/18) // beyond the 32 KiB write buffer
				return &gatedReader{first: strings.NewReader(first), gate: gate, rest: strings.NewReader("the end\r\n")}
			},
			early: "554 5.7.1 rejected mid-data",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			gate := make(chan struct{})
			script := append([]step{
				{Expect: "EHLO client.test", Reply: ehloReply("8BITMIME")},
				{Expect: "MAIL FROM:<a@x>", Reply: "250 ok"},
				{Expect: "RCPT TO:<b@y>", Reply: "250 ok"},
			}, tc.script(gate)...)
			fs := startFake(t, "220 fake", script...)
			c, err := dialFake(t, fs, fs.settings())
			if err != nil {
				t.Fatal(err)
			}
			res, err := c.Send(context.Background(), env1("a@x", "b@y"), tc.body(gate))
			var pe *ProtocolError
			if !errors.As(err, &pe) || pe.Reply == nil || pe.Reply.Enhanced != "4.5.0" || pe.Reply.Code/100 != 4 {
				t.Fatalf("Send error = %v, want a protocol error with a 4xx 4.5.0 reply", err)
			}
			if !strings.Contains(pe.Reply.Text, "reply before end of data") || !strings.Contains(pe.Reply.Text, tc.early) {
				t.Errorf("reply text %q does not say what came early (%q)", pe.Reply.Text, tc.early)
			}
			if r := res.Recipients[0]; r.Delivered || (r.Final != nil && r.Final.Permanent()) {
				t.Errorf("recipient delivered=%v final=%v; want neither delivered nor refused", r.Delivered, r.Final)
			}
			if !c.broken {
				t.Error("connection still usable after a reply out of turn")
			}
			lines := fs.finish(c)
			for _, l := range lines {
				if l == "." || l == "RSET" || l == "NOOP" {
					t.Errorf("client sent %q after the early reply; lines %q", l, lines)
				}
			}
		})
	}
}

// TestLeftoverReplyFailsProbe: a reply that is not the answer to anything
// (an extra line after the end-of-data reply, or one sent while the
// connection was idle) makes the pool's probe fail instead of being taken
// as the NOOP's answer, so the next message cannot record a stale reply;
// the no-round-trip check before a quick reuse (Ready) fails on it too.
func TestLeftoverReplyFailsProbe(t *testing.T) {
	checks := []struct {
		name  string
		alive func(c *Conn) bool
	}{
		{"Probe", func(c *Conn) bool { return c.Probe(context.Background()) }},
		{"Ready", func(c *Conn) bool { return c.Ready() }},
	}
	cases := []struct {
		name string
		tail func(gate chan struct{}) []step
	}{
		{"extra reply after end of data", func(gate chan struct{}) []step {
			close(gate)
			return []step{{Data: true, Reply: "250 2.0.0 queued\n250 2.0.0 extra"}, {Hang: true}}
		}},
		{"unsolicited reply while idle", func(gate chan struct{}) []step {
			return []step{{Data: true, Reply: "250 2.0.0 queued"}, {Reply: "250 2.0.0 unsolicited", Signal: gate}, {Hang: true}}
		}},
	}
	for _, tc := range cases {
		for _, check := range checks {
			t.Run(tc.name+"/"+check.name, func(t *testing.T) {
				gate := make(chan struct{})
				script := append([]step{
					{Expect: "EHLO client.test", Reply: ehloReply("8BITMIME")},
					{Expect: "MAIL FROM:<a@x>", Reply: "250 ok"},
					{Expect: "RCPT TO:<b@y>", Reply: "250 ok"},
					{Expect: "DATA", Reply: "354 go"},
				}, tc.tail(gate)...)
				fs := startFake(t, "220 fake", script...)
				c, err := dialFake(t, fs, fs.settings())
				if err != nil {
					t.Fatal(err)
				}
				res, err := c.Send(context.Background(), env1("a@x", "b@y"), strings.NewReader("hello\r\n"))
				if err != nil || !res.Recipients[0].Delivered {
					t.Fatalf("Send = %v, delivered %v; the 250 to the dot delivers", err, res.Recipients[0].Delivered)
				}
				<-gate
				if check.alive(c) {
					t.Errorf("%s passed on a connection with a reply out of turn", check.name)
				}
				if !c.broken {
					t.Error("the connection with a reply out of turn was not closed")
				}
				fs.finish(c)
			})
		}
	}
}

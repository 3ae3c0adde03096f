package smtpproto

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestTranscriptLines(t *testing.T) {
	fs := startFake(t, "220 fake",
		step{Expect: "EHLO client.test", Reply: ehloReply("SIZE")},
		step{Expect: "MAIL FROM:<a@x>", Reply: "250 ok"},
		step{Expect: "RCPT TO:<b@y>", Reply: "250 ok"},
		step{Expect: "DATA", Reply: "354 go"},
		step{Data: true, Reply: "250 queued"})
	c, err := dialFake(t, fs, fs.settings())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Send(context.Background(), env1("a@x", "b@y"), strings.NewReader("secret body\n")); err != nil {
		t.Fatal(err)
	}
	tr := c.Transcript()
	fs.finish(c)
	ts := regexp.MustCompile(`^\d\d:\d\d:\d\d\.\d\d\d [CS*]: `)
	joined := strings.Join(tr, "\n")
	for _, want := range []string{"C: MAIL FROM:<a@x>", "S: 250 ok", "S: 220 fake", "C: DATA", "S: 354 go", "C: <13 bytes of message>", "S: 250 queued"} {
		if !strings.Contains(joined, want) {
			t.Errorf("transcript lacks %q:\n%s", want, joined)
		}
	}
	for _, l := range tr {
		if !ts.MatchString(l) {
			t.Errorf("line without timestamp: %q", l)
		}
	}
	if strings.Contains(joined, "secret body") {
		t.Error("message body in transcript")
	}
}

// TestTranscriptIsCapped: a transcript keeps the last few KiB of an
// attempt, dropping the oldest lines first and saying so; take starts the
// next attempt afresh.
func TestTranscriptIsCapped(t *testing.T) {
	tr := newTranscript()
	tr.now = func() time.Time { return time.Unix(0, 0) }
	for i := 0; i < 1000; i++ {
		tr.client(fmt.Sprintf("NOOP %d", i))
	}
	lines := tr.take()
	total := 0
	for _, l := range lines[1:] {
		total += len(l)
	}
	if total > maxTranscriptBytes || !strings.Contains(lines[0], "earlier lines dropped") ||
		!strings.HasSuffix(lines[len(lines)-1], "NOOP 999") || strings.Contains(strings.Join(lines, "\n"), "NOOP 0\n") {
		t.Fatalf("%d bytes in %d lines, first %q, last %q", total, len(lines), lines[0], lines[len(lines)-1])
	}
	tr.client("RSET")
	if next := tr.take(); len(next) != 1 || !strings.HasSuffix(next[0], "C: RSET") {
		t.Fatalf("after take: %q", next)
	}
}

func TestSendOnBrokenConnection(t *testing.T) {
	fs := startFake(t, "220 fake", step{Expect: "EHLO client.test", Reply: ehloReply("SIZE")})
	c, err := dialFake(t, fs, fs.settings())
	if err != nil {
		t.Fatal(err)
	}
	c.drop()
	res, err := c.Send(context.Background(), env1("a@x", "b@y", "c@y"), strings.NewReader("x"))
	var pe *ProtocolError
	if !errors.As(err, &pe) || len(res.Recipients) != 2 || c.Probe(context.Background()) {
		t.Fatalf("err = %v res = %+v", err, res)
	}
	fs.finish(nil)
}

func TestContextCancelAbortsWait(t *testing.T) {
	fs := startFake(t, "220 fake", step{Expect: "EHLO client.test", Reply: ehloReply("SIZE")},
		step{Expect: "MAIL FROM:<a@x>", Delay: time.Second, Reply: "250 ok"})
	c, err := dialFake(t, fs, fs.settings())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = c.Send(ctx, env1("a@x", "b@y"), strings.NewReader("x"))
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("err = %v after %v", err, time.Since(start))
	}
	fs.finish(c)
}

package smtpproto

import (
	"context"
	"errors"
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

func TestTranscriptIsCapped(t *testing.T) {
	tr := newTranscript()
	tr.now = func() time.Time { return time.Unix(0, 0) }
	for i := 0; i < maxTranscriptLines+100; i++ {
		tr.client("NOOP")
	}
	lines := tr.snapshot()
	if len(lines) != maxTranscriptLines+1 || !strings.Contains(lines[len(lines)-1], "truncated") {
		t.Fatalf("%d lines, last %q", len(lines), lines[len(lines)-1])
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

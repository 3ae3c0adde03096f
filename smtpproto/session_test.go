package smtpproto

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func dialFake(t *testing.T, fs *fakeServer, s *Settings) (*Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return Dial(ctx, s, DialOptions{Transcript: true})
}

func TestGreeting(t *testing.T) {
	cases := []struct {
		name      string
		quitOnRej bool
		want      []string
	}{
		{"quitonsessionreject false sends nothing", false, nil},
		{"quitonsessionreject true sends QUIT", true, []string{"QUIT"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var script []step
			if tc.quitOnRej {
				script = []step{{Expect: "QUIT", Reply: "221 bye"}}
			}
			fs := startFake(t, "554 go away", script...)
			s := fs.settings()
			s.QuitOnSessionReject = tc.quitOnRej
			_, err := dialFake(t, fs, s)
			var pe *ProtocolError
			if !errors.As(err, &pe) || !strings.Contains(err.Error(), "554 go away") {
				t.Fatalf("err = %v, want *ProtocolError containing 554 go away", err)
			}
			if got := fs.finish(nil); !slices.Equal(got, tc.want) {
				t.Fatalf("client sent %q, want %q", got, tc.want)
			}
		})
	}
}

func TestEHLOAndHELO(t *testing.T) {
	cases := []struct {
		name   string
		ehlo   *bool
		script []step
		ext    string
	}{
		{"EHLO accepted", nil, []step{{Expect: "EHLO client.test", Reply: ehloReply("SIZE 1000", "8BITMIME")}}, "SIZE"},
		{"EHLO 502 falls back to HELO", nil, []step{{Expect: "EHLO client.test", Reply: "502 no"}, {Expect: "HELO client.test", Reply: "250 hi"}}, ""},
		{"ehlo=false sends only HELO", boolp(false), []step{{Expect: "HELO client.test", Reply: "250 hi"}}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := startFake(t, "220 fake", tc.script...)
			s := fs.settings()
			s.EHLO = tc.ehlo
			c, err := dialFake(t, fs, s)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := c.Extensions()[tc.ext]; tc.ext != "" && !ok {
				t.Fatalf("extension %s missing: %v", tc.ext, c.Extensions())
			}
			fs.finish(c)
		})
	}
}

func TestHELORefusedIsProtocolError(t *testing.T) {
	fs := startFake(t, "220 fake", step{Expect: "EHLO client.test", Reply: "500 no"}, step{Expect: "HELO client.test", Reply: "550 not you"})
	_, err := dialFake(t, fs, fs.settings())
	var pe *ProtocolError
	if !errors.As(err, &pe) || pe.Reply == nil || pe.Reply.Code != 550 {
		t.Fatalf("err = %v", err)
	}
	fs.finish(nil)
}

func TestGreetingTimeout(t *testing.T) {
	fs := startFake(t, "", step{Hang: true})
	s := fs.settings()
	s.Timeout = intp(300)
	start := time.Now()
	_, err := dialFake(t, fs, s)
	var pe *ProtocolError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v, want *ProtocolError", err)
	}
	if el := time.Since(start); el < 250*time.Millisecond || el > 3*time.Second {
		t.Fatalf("gave up after %v, want ≈300ms", el)
	}
	fs.finish(nil)
}

func TestProbe(t *testing.T) {
	cases := []struct {
		name   string
		rset   bool
		strict *bool
		reply  string
		alive  bool
	}{
		{"NOOP 250 alive", false, nil, "250 ok", true},
		{"userset sends RSET", true, nil, "250 ok", true},
		{"noop.strict 500 dead", false, nil, "500 what", false},
		{"non-strict 500 alive", false, boolp(false), "500 what", true},
		{"non-strict 421 dead", false, boolp(false), "421 closing", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmd := "NOOP"
			if tc.rset {
				cmd = "RSET"
			}
			fs := startFake(t, "220 fake", step{Expect: "EHLO client.test", Reply: ehloReply("PIPELINING")}, step{Expect: cmd, Reply: tc.reply})
			s := fs.settings()
			s.UseRset, s.NoopStrict = tc.rset, tc.strict
			c, err := dialFake(t, fs, s)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Probe(context.Background()); got != tc.alive {
				t.Fatalf("Probe = %v, want %v", got, tc.alive)
			}
			if !tc.alive && !c.broken {
				t.Fatal("dead connection not dropped")
			}
			fs.finish(c)
		})
	}
}

func TestCloseQuitWait(t *testing.T) {
	cases := []struct {
		name     string
		quitwait *bool
		minWait  time.Duration
		maxWait  time.Duration
	}{
		{"quitwait default waits for the delayed 221", nil, 400 * time.Millisecond, 5 * time.Second},
		{"quitwait false closes at once", boolp(false), 0, 300 * time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := startFake(t, "220 fake", step{Expect: "EHLO client.test", Reply: ehloReply("X")}, step{Expect: "QUIT", Reply: "221 bye", Delay: 500 * time.Millisecond})
			s := fs.settings()
			s.QuitWait = tc.quitwait
			c, err := dialFake(t, fs, s)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			if el := time.Since(start); el < tc.minWait || el > tc.maxWait {
				t.Fatalf("Close took %v, want in [%v, %v]", el, tc.minWait, tc.maxWait)
			}
			fs.finish(nil)
		})
	}
}

func TestStartTLSFailures(t *testing.T) {
	cases := []struct {
		name     string
		required bool
		script   []step
	}{
		{"required but not advertised", true, []step{{Expect: "EHLO client.test", Reply: ehloReply("SIZE")}}},
		{"advertised but refused with 454 (enable only)", false, []step{{Expect: "EHLO client.test", Reply: ehloReply("STARTTLS")}, {Expect: "STARTTLS", Reply: "454 not now"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := startFake(t, "220 fake", tc.script...)
			s := fs.settings()
			s.StartTLSEnable, s.StartTLSRequired = true, tc.required
			_, err := dialFake(t, fs, s)
			var te *TLSError
			if !errors.As(err, &te) {
				t.Fatalf("err = %v, want *TLSError", err)
			}
			got := fs.finish(nil)
			if slices.ContainsFunc(got, func(l string) bool { return strings.HasPrefix(l, "MAIL") || strings.HasPrefix(l, "AUTH") }) {
				t.Fatalf("client went on after TLS failure: %q", got)
			}
		})
	}
}

func TestStartTLSNotAdvertisedContinuesWithEnableOnly(t *testing.T) {
	fs := startFake(t, "220 fake", step{Expect: "EHLO client.test", Reply: ehloReply("SIZE")}, step{Expect: "NOOP", Reply: "250 ok"})
	s := fs.settings()
	s.StartTLSEnable = true
	c, err := dialFake(t, fs, s)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Probe(context.Background()) || c.TLSVersion() != "" {
		t.Fatal("expected a live plaintext session")
	}
	fs.finish(c)
}

func TestCommandInjectionRefused(t *testing.T) {
	for _, bad := range []string{"a\nb@x", "a\rb@x", "a\x00b@x"} {
		if err := checkCommand("RCPT TO:<" + bad + ">"); err == nil {
			t.Fatalf("%q accepted", bad)
		}
	}
}

package smtpproto

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestAuthExchangeWiring(t *testing.T) {
	ehlo := func(kws ...string) step {
		return step{Expect: "EHLO client.test", Reply: ehloReply(append([]string{"PIPELINING"}, kws...)...)}
	}
	cases := []struct {
		name    string
		set     func(*Settings)
		script  []step
		wantErr bool
		noAuth  bool
	}{
		{
			name:   "auth.mechanisms PLAIN with server LOGIN PLAIN (mailq authzid empty)",
			set:    func(s *Settings) { s.AuthMechanisms = "PLAIN" },
			script: []step{ehlo("AUTH LOGIN PLAIN"), {Expect: "AUTH PLAIN " + b64("\x00alice\x00s3cret"), Reply: "235 2.7.0 ok"}},
		},
		{
			name:   "default order picks PLAIN (mailq, unlike JavaMail's LOGIN)",
			script: []step{ehlo("AUTH PLAIN LOGIN"), {Expect: "AUTH PLAIN " + b64("\x00alice\x00s3cret"), Reply: "235 ok"}},
		},
		{
			name: "LOGIN exchange with 334 challenges",
			set:  func(s *Settings) { s.AuthMechanisms = "LOGIN" },
			script: []step{ehlo("AUTH LOGIN PLAIN"), {Expect: "AUTH LOGIN", Reply: "334 VXNlcm5hbWU6"},
				{Expect: b64("alice"), Reply: "334 UGFzc3dvcmQ6"}, {Expect: b64("s3cret"), Reply: "235 ok"}},
		},
		{
			name:   "AUTH=LOGIN hack",
			script: []step{ehlo("AUTH=LOGIN"), {Expect: "AUTH LOGIN", Reply: "334 VXNlcm5hbWU6"}, {Expect: b64("alice"), Reply: "334 UGFzc3dvcmQ6"}, {Expect: b64("s3cret"), Reply: "235 ok"}},
		},
		{
			name:    "single attempt: LOGIN 535 is an AuthError, no PLAIN tried",
			set:     func(s *Settings) { s.AuthMechanisms = "LOGIN PLAIN" },
			script:  []step{ehlo("AUTH LOGIN PLAIN"), {Expect: "AUTH LOGIN", Reply: "334 VXNlcm5hbWU6"}, {Expect: b64("alice"), Reply: "334 UGFzc3dvcmQ6"}, {Expect: b64("s3cret"), Reply: "535 5.7.8 bad credentials"}},
			wantErr: true,
		},
		{
			name:    "auth=true and server without AUTH is a temporary AuthError (mailq, unlike JavaMail)",
			set:     func(s *Settings) { s.Auth = boolp(true) },
			script:  []step{ehlo("SIZE")},
			wantErr: true, noAuth: true,
		},
		{
			name:    "auth.ntlm.disable with NTLM-only server: no common mechanism",
			set:     func(s *Settings) { s.AuthNTLMDisable = true },
			script:  []step{ehlo("AUTH NTLM")},
			wantErr: true, noAuth: true,
		},
		{
			name:   "no password source: no AUTH although offered",
			set:    func(s *Settings) { s.Password = "" },
			script: []step{ehlo("AUTH PLAIN LOGIN")},
			noAuth: true,
		},
		{
			name:   "ehlo=false: HELO and no AUTH even with credentials",
			set:    func(s *Settings) { s.EHLO = boolp(false) },
			script: []step{{Expect: "HELO client.test", Reply: "250 hi"}},
			noAuth: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := startFake(t, "220 fake", tc.script...)
			s := fs.settings()
			s.User, s.Password = "alice", "s3cret"
			if tc.set != nil {
				tc.set(s)
			}
			c, err := dialFake(t, fs, s)
			var ae *AuthError
			if tc.wantErr != (err != nil) || (tc.wantErr && !errors.As(err, &ae)) {
				t.Fatalf("err = %v, want AuthError %v", err, tc.wantErr)
			}
			if tc.wantErr && strings.Contains(err.Error(), "s3cret") {
				t.Fatal("error leaks the password")
			}
			if c != nil {
				tr := strings.Join(c.Transcript(), "\n")
				if strings.Contains(tr, b64("s3cret")) || strings.Contains(tr, b64("alice")) || strings.Contains(tr, b64("\x00alice\x00s3cret")) {
					t.Fatalf("transcript not redacted:\n%s", tr)
				}
				if !tc.noAuth && !strings.Contains(tr, "C: AUTH ") || !tc.noAuth && !strings.Contains(tr, "<redacted>") {
					t.Fatalf("transcript lacks redacted AUTH line:\n%s", tr)
				}
				if c.Authenticated() == tc.noAuth {
					t.Fatalf("Authenticated = %v", c.Authenticated())
				}
			}
			lines := fs.finish(c)
			if tc.noAuth && slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, "AUTH") }) {
				t.Fatalf("AUTH sent: %q", lines)
			}
		})
	}
}

func TestAuthRequiredWithoutPasswordOpensNoConnection(t *testing.T) {
	s := &Settings{Name: "r", Host: "127.0.0.1", Port: 1, Auth: boolp(true)}
	called := false
	_, err := Dial(t.Context(), s, DialOptions{Dialer: func(ctx context.Context, n, a string) (net.Conn, error) {
		called = true
		return nil, errors.New("no")
	}})
	var ae *AuthError
	if !errors.As(err, &ae) || called {
		t.Fatalf("err = %v, dialled = %v", err, called)
	}
}

func TestSubmitterAfterAuth(t *testing.T) {
	fs := startFake(t, "220 fake",
		step{Expect: "EHLO client.test", Reply: ehloReply("AUTH PLAIN")},
		step{Expect: "AUTH PLAIN*", Reply: "235 ok"},
		step{Expect: "MAIL FROM:<a@x> AUTH=a+20b+2Bc+3Dd@x", Reply: "250 ok"},
		step{Expect: "RCPT TO:<b@y>", Reply: "250 ok"},
		step{Expect: "DATA", Reply: "354 go"},
		step{Data: true, Reply: "250 queued"})
	s := fs.settings()
	s.User, s.Password, s.Submitter = "alice", "s3cret", "a b+c=d@x"
	if _, err, _ := sendFake(t, fs, s, env1("a@x", "b@y"), "x\n"); err != nil {
		t.Fatal(err)
	}
}

// TestAuthLogging: AUTH without TLS is allowed (as in JavaMail) but warned
// about when the host is not loopback; a rejected AUTH is logged at level
// error; the password never reaches the log (docs/configuration.md "Every key" auth).
func TestAuthLogging(t *testing.T) {
	p := newPKI(t)
	authLine := "AUTH PLAIN " + b64("\x00alice\x00s3cret")
	cases := []struct {
		name      string
		host      string
		implicit  bool
		reply     string
		wantLevel string // level of the AUTH log line; "" = none
	}{
		{"plaintext to a remote name warns", "mx.test", false, "235 ok", "warn"},
		{"plaintext to loopback is quiet", "127.0.0.1", false, "235 ok", ""},
		{"TLS to a remote name is quiet", "mx.test", true, "235 ok", ""},
		{"rejected AUTH is an error", "mx.test", true, "535 5.7.8 bad credentials", "error"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := startFakeTLS(t, &tls.Config{Certificates: []tls.Certificate{p.good}}, tc.implicit, "220 fake",
				step{Expect: "EHLO client.test", Reply: ehloReply("AUTH PLAIN")},
				step{Expect: authLine, Reply: tc.reply})
			s := fs.settings()
			s.Host, s.SSLEnable, s.TLSCAFile = tc.host, tc.implicit, p.caFile
			s.User, s.Password = "alice", "s3cret"
			var logs strings.Builder
			loopback := func(ctx context.Context, network, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, fs.ln.Addr().String())
			}
			c, err := Dial(t.Context(), s, DialOptions{Dialer: loopback, Logger: zerolog.New(&logs)})
			if (err == nil) != strings.HasPrefix(tc.reply, "235") {
				t.Fatalf("err = %v", err)
			}
			fs.finish(c)
			out := logs.String()
			if strings.Contains(out, "s3cret") || strings.Contains(out, b64("\x00alice\x00s3cret")) {
				t.Fatalf("secret in log: %s", out)
			}
			got := ""
			for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
				if strings.Contains(l, `"mechanism":"PLAIN"`) {
					got = l
				}
			}
			if tc.wantLevel == "" && got != "" || tc.wantLevel != "" && !strings.Contains(got, `"level":"`+tc.wantLevel+`"`) {
				t.Fatalf("AUTH log line %q, want level %q; all logs:\n%s", got, tc.wantLevel, out)
			}
		})
	}
}

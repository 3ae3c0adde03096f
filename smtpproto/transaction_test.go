package smtpproto

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"mailq/esmtp"
)

// sendFake dials fs with s, sends env/body and returns result, error and
// the client's lines.
func sendFake(t *testing.T, fs *fakeServer, s *Settings, env Envelope, body string) (*Result, error, []string) {
	t.Helper()
	c, err := dialFake(t, fs, s)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	res, err := c.Send(context.Background(), env, strings.NewReader(body))
	return res, err, fs.finish(c)
}

func env1(from string, rcpts ...string) Envelope {
	e := Envelope{From: from}
	for _, r := range rcpts {
		e.Recipients = append(e.Recipients, Recipient{Address: r})
	}
	return e
}

func TestMailFromParameters(t *testing.T) {
	cases := []struct {
		name string
		ext  []string
		set  func(*Settings)
		env  Envelope
		want string
	}{
		{"plain", nil, nil, env1("a@x", "b@y"), "MAIL FROM:<a@x>"},
		{"null sender", nil, nil, env1("", "b@y"), "MAIL FROM:<>"},
		{"dsn.ret with DSN", []string{"DSN"}, func(s *Settings) { s.DSNRet = "HDRS" }, env1("a@x", "b@y"), "MAIL FROM:<a@x> RET=HDRS"},
		{"dsn.ret without DSN", nil, func(s *Settings) { s.DSNRet = "HDRS" }, env1("a@x", "b@y"), "MAIL FROM:<a@x>"},
		{"mailextension", nil, func(s *Settings) { s.MailExtension = "XVERP" }, env1("a@x", "b@y"), "MAIL FROM:<a@x> XVERP"},
		{"SIZE when advertised", []string{"SIZE 100000"}, nil, Envelope{From: "a@x", Recipients: []Recipient{{Address: "b@y"}}, Size: 1234}, "MAIL FROM:<a@x> SIZE=1234"},
		{"BODY=8BITMIME mailq adds unlike JavaMail", []string{"8BITMIME"}, nil, Envelope{From: "a@x", Recipients: []Recipient{{Address: "b@y"}}, EightBit: true}, "MAIL FROM:<a@x> BODY=8BITMIME"},
		{"8bit without 8BITMIME sent unchanged", nil, nil, Envelope{From: "a@x", Recipients: []Recipient{{Address: "b@y"}}, EightBit: true}, "MAIL FROM:<a@x>"},
		{"SMTPUTF8 only when needed", []string{"SMTPUTF8"}, func(s *Settings) { s.AllowUTF8 = boolp(true) }, env1("a@x", "b@y"), "MAIL FROM:<a@x>"},
		{"SMTPUTF8 utf-8 sender", []string{"SMTPUTF8"}, nil, env1("ü@x", "b@y"), "MAIL FROM:<\xc3\xbc@x> SMTPUTF8"},
		{"ENVID xtext with DSN", []string{"DSN"}, nil, Envelope{From: "a@x", Recipients: []Recipient{{Address: "b@y"}}, EnvID: "id+1=2"}, "MAIL FROM:<a@x> ENVID=id+2B1+3D2"},
		{"param order", []string{"DSN", "SMTPUTF8", "SIZE", "8BITMIME"}, func(s *Settings) { s.DSNRet = "FULL"; s.MailExtension = "XVERP" },
			Envelope{From: "a@x", Recipients: []Recipient{{Address: "b@y"}}, Size: 9, EightBit: true, SMTPUTF8: true, EnvID: "e1"},
			"MAIL FROM:<a@x> SIZE=9 BODY=8BITMIME SMTPUTF8 RET=FULL ENVID=e1 XVERP"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := startFake(t, "220 fake",
				step{Expect: "EHLO client.test", Reply: ehloReply(append([]string{"X"}, tc.ext...)...)},
				step{Expect: tc.want, Reply: "250 ok"},
				step{Expect: "RCPT TO:*", Reply: "250 ok"},
				step{Expect: "DATA", Reply: "354 go"},
				step{Data: true, Reply: "250 queued"})
			s := fs.settings()
			if tc.set != nil {
				tc.set(s)
			}
			res, err, _ := sendFake(t, fs, s, tc.env, "Subject: x\n\nhi\n")
			if err != nil || !res.Recipients[0].Delivered {
				t.Fatalf("err = %v, res = %+v", err, res)
			}
		})
	}
}

func TestSubmitterNeedsAuthenticatedSession(t *testing.T) {
	// Without AUTH having happened there is no AUTH= parameter.
	fs := startFake(t, "220 fake",
		step{Expect: "EHLO client.test", Reply: ehloReply("AUTH PLAIN")},
		step{Expect: "MAIL FROM:<a@x>", Reply: "250 ok"},
		step{Expect: "RCPT TO:<b@y>", Reply: "250 ok"},
		step{Expect: "DATA", Reply: "354 go"},
		step{Data: true, Reply: "250 queued"})
	s := fs.settings()
	s.Submitter = "a b+c=d@x"
	if _, err, _ := sendFake(t, fs, s, env1("a@x", "b@y"), "x\n"); err != nil {
		t.Fatal(err)
	}
	if got := esmtp.EncodeXtext("a b+c=d@x"); got != "a+20b+2Bc+3Dd@x" {
		t.Fatalf("xtext = %q", got)
	}
}

// TestSMTPUTF8Gate: a message that needs SMTPUTF8 (RFC 6531) goes only to a
// server that advertises it and only on a route that allows it (allowutf8,
// default true in mailq); otherwise it fails permanently with 5.6.7 and no
// MAIL is sent. ASCII mail is unaffected by allowutf8 = false.
func TestSMTPUTF8Gate(t *testing.T) {
	utf8Headers := Envelope{From: "a@x", Recipients: []Recipient{{Address: "b@y"}}, SMTPUTF8: true}
	cases := []struct {
		name      string
		ext       []string
		allow     *bool
		env       Envelope
		wantMail  string // "" = no MAIL may be sent: 5.6.7
		wantInErr string
	}{
		{"server without SMTPUTF8 fails permanently", []string{"8BITMIME"}, nil, utf8Headers, "", "does not advertise it"},
		{"allowutf8 unset (true): headers need it, SMTPUTF8 sent", []string{"SMTPUTF8"}, nil, utf8Headers, "MAIL FROM:<a@x> SMTPUTF8", ""},
		{"allowutf8 = true: utf-8 recipient", []string{"SMTPUTF8"}, boolp(true), env1("a@x", "\xc3\xbc@y"), "MAIL FROM:<a@x> SMTPUTF8", ""},
		{"allowutf8 = false: utf-8 sender fails although the server offers SMTPUTF8", []string{"SMTPUTF8"}, boolp(false), env1("\xc3\xbc@x", "b@y"), "", "allowutf8 = false"},
		{"allowutf8 = false: headers need it, fails", []string{"SMTPUTF8"}, boolp(false), utf8Headers, "", "allowutf8 = false"},
		{"allowutf8 = false: ASCII message goes as usual", []string{"SMTPUTF8"}, boolp(false), env1("a@x", "b@y"), "MAIL FROM:<a@x>", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			script := []step{{Expect: "EHLO client.test", Reply: ehloReply(append([]string{"X"}, tc.ext...)...)}}
			if tc.wantMail != "" {
				script = append(script,
					step{Expect: tc.wantMail, Reply: "250 ok"},
					step{Expect: "RCPT TO:*", Reply: "250 ok"},
					step{Expect: "DATA", Reply: "354 go"},
					step{Data: true, Reply: "250 queued"})
			}
			fs := startFake(t, "220 fake", script...)
			s := fs.settings()
			s.AllowUTF8 = tc.allow
			res, err, lines := sendFake(t, fs, s, tc.env, "Subject: x\n\nhi\n")
			if tc.wantMail != "" {
				if err != nil || !res.Recipients[0].Delivered {
					t.Fatalf("err = %v, res = %+v", err, res)
				}
				return
			}
			var sf *SendFailedError
			fin := res.Recipients[0].Final
			if !errors.As(err, &sf) || fin == nil || fin.Code != 554 || fin.Enhanced != "5.6.7" || !strings.Contains(fin.Text, tc.wantInErr) {
				t.Fatalf("err = %v, final = %+v; want a permanent 554 5.6.7 mentioning %q", err, fin, tc.wantInErr)
			}
			if !slices.Equal(sf.Invalid, []string{tc.env.Recipients[0].Address}) {
				t.Fatalf("Invalid = %q", sf.Invalid)
			}
			if slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, "MAIL") }) {
				t.Fatalf("MAIL sent: %q", lines)
			}
		})
	}
}

func TestRcptDSNParameters(t *testing.T) {
	cases := []struct {
		name   string
		ext    []string
		notify string
		rcpt   Recipient
		want   string
	}{
		{"route notify with DSN", []string{"DSN"}, "SUCCESS,FAILURE", Recipient{Address: "b@y"}, "RCPT TO:<b@y> NOTIFY=SUCCESS,FAILURE"},
		{"route notify without DSN", nil, "SUCCESS,FAILURE", Recipient{Address: "b@y"}, "RCPT TO:<b@y>"},
		{"own notify wins", []string{"DSN"}, "FAILURE", Recipient{Address: "b@y", Notify: "NEVER"}, "RCPT TO:<b@y> NOTIFY=NEVER"},
		{"ORCPT mailq adds", []string{"DSN"}, "", Recipient{Address: "b@y", ORCPT: "B+@y"}, "RCPT TO:<b@y> ORCPT=rfc822;B+2B@y"},
		{"ORCPT already typed", []string{"DSN"}, "", Recipient{Address: "b@y", ORCPT: "rfc822;b@y"}, "RCPT TO:<b@y> ORCPT=rfc822;b@y"},
		// Stored decoded, sent xtext-encoded (RFC 3461 §4.2): Postfix answers
		// the raw "+" with 501 5.5.4 Bad ORCPT parameter syntax.
		{"ORCPT plus-address encoded", []string{"DSN"}, "FAILURE", Recipient{Address: "bob+tag@dst.test", ORCPT: "rfc822;bob+tag@dst.test"}, "RCPT TO:<bob+tag@dst.test> NOTIFY=FAILURE ORCPT=rfc822;bob+2Btag@dst.test"},
		{"ORCPT utf-8 type", []string{"DSN"}, "", Recipient{Address: "b@y", ORCPT: "utf-8;jörg+x@y"}, `RCPT TO:<b@y> ORCPT=utf-8;j\x{F6}rg\x{2B}x@y`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := startFake(t, "220 fake",
				step{Expect: "EHLO client.test", Reply: ehloReply(append([]string{"X"}, tc.ext...)...)},
				step{Expect: "MAIL FROM:<a@x>", Reply: "250 ok"},
				step{Expect: tc.want, Reply: "250 ok"},
				step{Expect: "DATA", Reply: "354 go"},
				step{Data: true, Reply: "250 queued"})
			s := fs.settings()
			s.DSNNotify = tc.notify
			if _, err, _ := sendFake(t, fs, s, Envelope{From: "a@x", Recipients: []Recipient{tc.rcpt}}, "x\n"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestRecipientOutcomes(t *testing.T) {
	ehlo := step{Expect: "EHLO client.test", Reply: ehloReply("X")}
	mail := step{Expect: "MAIL FROM:<a@x>", Reply: "250 ok"}
	cases := []struct {
		name        string
		sendpartial bool
		report      bool
		script      []step
		rcpts       []string
		delivered   []string
		noData      bool
		check       func(t *testing.T, res *Result, err error)
	}{
		{
			name: "sendpartial off: RSET then new transaction to the accepted only (mailq, unlike JavaMail)",
			script: []step{ehlo, mail,
				{Expect: "RCPT TO:<A@y>", Reply: "250 ok"}, {Expect: "RCPT TO:<B@y>", Reply: "550 5.1.1 no such user"},
				{Expect: "RSET", Reply: "250 ok"},
				{Expect: "MAIL FROM:<a@x>", Reply: "250 ok"}, {Expect: "RCPT TO:<A@y>", Reply: "250 ok"},
				{Expect: "DATA", Reply: "354 go"}, {Data: true, Reply: "250 2.0.0 queued"}},
			rcpts: []string{"A@y", "B@y"}, delivered: []string{"A@y"},
			check: func(t *testing.T, res *Result, err error) {
				var sf *SendFailedError
				var af *AddressFailedError
				if !errors.As(err, &sf) || !slices.Equal(sf.ValidSent, []string{"A@y"}) || !slices.Equal(sf.Invalid, []string{"B@y"}) {
					t.Fatalf("err = %#v", err)
				}
				if !errors.As(err, &af) || af.Address != "B@y" || af.Reply.Code != 550 || af.Command != "RCPT TO:<B@y>" || af.Reply.Enhanced != "5.1.1" {
					t.Fatalf("AddressFailedError = %+v", af)
				}
			},
		},
		{
			name:        "sendpartial on: DATA to the accepted",
			sendpartial: true,
			script: []step{ehlo, mail,
				{Expect: "RCPT TO:<A@y>", Reply: "250 ok"}, {Expect: "RCPT TO:<B@y>", Reply: "550 no"},
				{Expect: "DATA", Reply: "354 go"}, {Data: true, Reply: "250 queued"}},
			rcpts: []string{"A@y", "B@y"}, delivered: []string{"A@y"},
			check: func(t *testing.T, res *Result, err error) {
				var sf *SendFailedError
				if !errors.As(err, &sf) || !slices.Equal(sf.ValidSent, []string{"A@y"}) || !slices.Equal(sf.Invalid, []string{"B@y"}) {
					t.Fatalf("err = %v", err)
				}
			},
		},
		{
			name: "all refused: RSET, no DATA",
			script: []step{ehlo, mail,
				{Expect: "RCPT TO:<A@y>", Reply: "450 later"}, {Expect: "RCPT TO:<B@y>", Reply: "550 no"},
				{Expect: "RSET", Reply: "250 ok"}},
			rcpts: []string{"A@y", "B@y"}, noData: true,
			check: func(t *testing.T, res *Result, err error) {
				var sf *SendFailedError
				if !errors.As(err, &sf) || !slices.Equal(sf.ValidUnsent, []string{"A@y"}) || !slices.Equal(sf.Invalid, []string{"B@y"}) {
					t.Fatalf("err = %v", err)
				}
			},
		},
		{
			name: "452 too many recipients: the rest go in a further transaction",
			script: []step{ehlo, mail,
				{Expect: "RCPT TO:<A@y>", Reply: "250 ok"}, {Expect: "RCPT TO:<B@y>", Reply: "452 4.5.3 too many recipients"},
				{Expect: "DATA", Reply: "354 go"}, {Data: true, Reply: "250 queued 1"},
				{Expect: "MAIL FROM:<a@x>", Reply: "250 ok"}, {Expect: "RCPT TO:<B@y>", Reply: "250 ok"},
				{Expect: "DATA", Reply: "354 go"}, {Data: true, Reply: "250 queued 2"}},
			rcpts: []string{"A@y", "B@y"}, delivered: []string{"A@y", "B@y"},
			check: func(t *testing.T, res *Result, err error) {
				if err != nil || res.Recipients[1].Final.Text != "queued 2" {
					t.Fatalf("err = %v, B final = %+v", err, res.Recipients[1].Final)
				}
			},
		},
		{
			name:   "MAIL FROM 553: RSET and SenderFailedError",
			script: []step{ehlo, {Expect: "MAIL FROM:<a@x>", Reply: "553 5.1.8 bad sender"}, {Expect: "RSET", Reply: "250 ok"}},
			rcpts:  []string{"A@y"},
			check: func(t *testing.T, res *Result, err error) {
				var se *SenderFailedError
				if !errors.As(err, &se) || se.Reply.Code != 553 || res.Recipients[0].Final.Code != 553 || res.Recipients[0].Rcpt != nil {
					t.Fatalf("err = %v res = %+v", err, res.Recipients[0])
				}
			},
		},
		{
			name:   "DATA 451: RSET and SendFailedError cmd DATA",
			script: []step{ehlo, mail, {Expect: "RCPT TO:<A@y>", Reply: "250 ok"}, {Expect: "DATA", Reply: "451 later"}, {Expect: "RSET", Reply: "250 ok"}},
			rcpts:  []string{"A@y"},
			check: func(t *testing.T, res *Result, err error) {
				var sf *SendFailedError
				if !errors.As(err, &sf) || sf.Command != "DATA" || sf.Reply.Code != 451 || !slices.Equal(sf.ValidUnsent, []string{"A@y"}) {
					t.Fatalf("err = %v", err)
				}
			},
		},
		{
			name:   "final 554: RSET and SendFailedError cmd .",
			script: []step{ehlo, mail, {Expect: "RCPT TO:<A@y>", Reply: "250 ok"}, {Expect: "DATA", Reply: "354 go"}, {Data: true, Reply: "554 5.7.1 spam"}, {Expect: "RSET", Reply: "250 ok"}},
			rcpts:  []string{"A@y"},
			check: func(t *testing.T, res *Result, err error) {
				var sf *SendFailedError
				if !errors.As(err, &sf) || sf.Command != "." || res.Recipients[0].Final.Enhanced != "5.7.1" {
					t.Fatalf("err = %v", err)
				}
			},
		},
		{
			name:   "reportsuccess records 2xx RCPT, success is no error (mailq, unlike JavaMail)",
			report: true,
			script: []step{ehlo, mail, {Expect: "RCPT TO:<A@y>", Reply: "250 2.1.5 ok A"}, {Expect: "RCPT TO:<B@y>", Reply: "252 2.1.5 cannot verify"}, {Expect: "DATA", Reply: "354 go"}, {Data: true, Reply: "250 queued"}},
			rcpts:  []string{"A@y", "B@y"}, delivered: []string{"A@y", "B@y"},
			check: func(t *testing.T, res *Result, err error) {
				if err != nil || len(res.Steps) != 2 || res.Steps[0].Command != "RCPT TO:<A@y>" || res.Steps[1].Reply.Code != 252 {
					t.Fatalf("err = %v steps = %+v", err, res.Steps)
				}
			},
		},
		{
			name:   "RCPT 354 nonsense is a protocol error",
			script: []step{ehlo, mail, {Expect: "RCPT TO:<A@y>", Reply: "354 what"}},
			rcpts:  []string{"A@y"},
			check: func(t *testing.T, res *Result, err error) {
				var pe *ProtocolError
				if !errors.As(err, &pe) {
					t.Fatalf("err = %v", err)
				}
			},
		},
		{
			name:   "CRLF in a recipient: that command is never sent",
			script: []step{ehlo, mail, {Expect: "RCPT TO:<A@y>", Reply: "250 ok"}, {Expect: "DATA", Reply: "354 go"}, {Data: true, Reply: "250 queued"}},
			rcpts:  []string{"A@y", "B@y\r\nRSET"}, delivered: []string{"A@y"},
			check: func(t *testing.T, res *Result, err error) {
				var sf *SendFailedError
				if !errors.As(err, &sf) || !res.Recipients[0].Delivered || res.Recipients[1].Final.Code != 501 || res.Recipients[1].Rcpt != nil {
					t.Fatalf("err = %v res = %+v", err, res)
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := startFake(t, "220 fake", tc.script...)
			s := fs.settings()
			s.SendPartial, s.ReportSuccess = tc.sendpartial, tc.report
			res, err, lines := sendFake(t, fs, s, env1("a@x", tc.rcpts...), "hello\n")
			var got []string
			for _, r := range res.Recipients {
				if r.Delivered {
					got = append(got, r.Address)
				}
			}
			if !slices.Equal(got, tc.delivered) {
				t.Fatalf("delivered %q, want %q (client lines %q)", got, tc.delivered, lines)
			}
			if len(res.Recipients) != len(tc.rcpts) {
				t.Fatalf("result has %d entries", len(res.Recipients))
			}
			tc.check(t, res, err)
			if tc.noData && slices.Contains(lines, "DATA") {
				t.Fatalf("unexpected DATA: %q", lines)
			}
		})
	}
}

func TestPipelining(t *testing.T) {
	cases := []struct {
		name        string
		sendpartial bool
		flight      string
		rcpts       []string
	}{
		{"MAIL and RCPTs in one flight, DATA after the replies (sendpartial off)", false, "MAIL FROM:<a@x>\r\nRCPT TO:<A@y>\r\nRCPT TO:<B@y>\r\n", []string{"A@y", "B@y"}},
		{"DATA joins the flight with sendpartial", true, "MAIL FROM:<a@x>\r\nRCPT TO:<A@y>\r\nRCPT TO:<B@y>\r\nDATA\r\n", []string{"A@y", "B@y"}},
		{"DATA joins the flight for a single recipient (sendpartial off)", false, "MAIL FROM:<a@x>\r\nRCPT TO:<A@y>\r\nDATA\r\n", []string{"A@y"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			script := []step{{Expect: "EHLO client.test", Reply: ehloReply("PIPELINING")}, {Expect: "MAIL FROM:<a@x>"}}
			for _, r := range tc.rcpts {
				script = append(script, step{Expect: "RCPT TO:<" + r + ">"})
			}
			replies := strings.Repeat("250 ok\n", len(tc.rcpts)) + "250 ok"
			if strings.HasSuffix(tc.flight, "DATA\r\n") {
				script = append(script, step{Expect: "DATA", Reply: replies + "\n354 go"})
			} else {
				script[len(script)-1].Reply = replies
				script = append(script, step{Expect: "DATA", Reply: "354 go"})
			}
			script = append(script, step{Data: true, Reply: "250 queued"})
			fs := startFake(t, "220 fake", script...)
			s := fs.settings()
			s.SendPartial = tc.sendpartial
			// The fake server answers only after the whole flight: a
			// client that waited for each reply would time out.
			s.Timeout = intp(2000)
			res, err, _ := sendFake(t, fs, s, env1("a@x", tc.rcpts...), "x\n")
			if err != nil || !res.Recipients[len(tc.rcpts)-1].Delivered {
				t.Fatalf("err = %v", err)
			}
			if raw := fs.rawBytes(); !strings.Contains(raw, tc.flight) {
				t.Fatalf("raw bytes %q lack flight %q", raw, tc.flight)
			}
		})
	}
}

func TestBDAT(t *testing.T) {
	body128 := strings.Repeat("x", 126) + "\n" // 128 bytes after CRLF
	cases := []struct {
		name   string
		ext    []string
		body   string
		script []step
	}{
		{"chunks then LAST", []string{"CHUNKING"}, body128 + ".x\n", []step{
			{Expect: "BDAT 128", Bytes: 128, Reply: "250 ok"},
			{Expect: "BDAT 4 LAST", Bytes: 4, Reply: "250 done"}}},
		{"exact multiple ends with BDAT 0 LAST", []string{"CHUNKING"}, body128, []step{
			{Expect: "BDAT 128", Bytes: 128, Reply: "250 ok"},
			{Expect: "BDAT 0 LAST", Reply: "250 done"}}},
		{"without CHUNKING uses DATA", nil, body128, []step{{Expect: "DATA", Reply: "354 go"}, {Data: true, Reply: "250 queued"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			script := append([]step{{Expect: "EHLO client.test", Reply: ehloReply(append([]string{"X"}, tc.ext...)...)},
				{Expect: "MAIL FROM:<a@x>", Reply: "250 ok"}, {Expect: "RCPT TO:<b@y>", Reply: "250 ok"}}, tc.script...)
			fs := startFake(t, "220 fake", script...)
			s := fs.settings()
			s.ChunkSize = 128
			res, err, _ := sendFake(t, fs, s, env1("a@x", "b@y"), tc.body)
			if err != nil || !res.Recipients[0].Delivered {
				t.Fatalf("err = %v", err)
			}
			if strings.Contains(strings.Join(fs.data, ""), "..x") {
				t.Fatal("BDAT content was dot-stuffed (angus-mail#209)")
			}
		})
	}
}

func TestBDATChunkRefusedDropsConnection(t *testing.T) {
	fs := startFake(t, "220 fake", step{Expect: "EHLO client.test", Reply: ehloReply("CHUNKING")},
		step{Expect: "MAIL FROM:<a@x>", Reply: "250 ok"}, step{Expect: "RCPT TO:<b@y>", Reply: "250 ok"},
		step{Expect: "BDAT 4 LAST", Bytes: 4, Reply: "452 full"})
	s := fs.settings()
	s.ChunkSize = 128
	res, err, lines := sendFake(t, fs, s, env1("a@x", "b@y"), "ab\n")
	var sf *SendFailedError
	if !errors.As(err, &sf) || res.Recipients[0].Final.Code != 452 || slices.Contains(lines, "RSET") {
		t.Fatalf("err = %v lines = %q", err, lines)
	}
}

func TestDataTermTimeoutIsLongerThanReadTimeout(t *testing.T) {
	fs := startFake(t, "220 fake", step{Expect: "EHLO client.test", Reply: ehloReply("X")},
		step{Expect: "MAIL FROM:<a@x>", Reply: "250 ok"}, step{Expect: "RCPT TO:<b@y>", Reply: "250 ok"},
		step{Expect: "DATA", Reply: "354 go"}, step{Data: true, Delay: 600 * time.Millisecond, Reply: "250 late but fine"})
	s := fs.settings()
	s.Timeout = intp(200)
	c, err := Dial(context.Background(), s, DialOptions{DataTermTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Send(context.Background(), env1("a@x", "b@y"), strings.NewReader("x\n"))
	if err != nil || !res.Recipients[0].Delivered {
		t.Fatalf("err = %v", err)
	}
	fs.finish(c)
}

func TestWriteTimeoutDuringData(t *testing.T) {
	// The server stops reading for longer than the test can last; only the
	// 500 ms write timeout can end the send, and the error must say so (a
	// stall that ended would close the connection: a reset, not a timeout).
	fs := startFake(t, "220 fake", step{Expect: "EHLO client.test", Reply: ehloReply("X")},
		step{Expect: "MAIL FROM:<a@x>", Reply: "250 ok"}, step{Expect: "RCPT TO:<b@y>", Reply: "250 ok"},
		step{Expect: "DATA", Reply: "354 go"}, step{Stall: time.Hour})
	s := fs.settings()
	s.WriteTimeout = intp(500)
	c, err := dialFake(t, fs, s)
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat(strings.Repeat("y", 998)+"\n", 64<<10) // 64 MB: more than socket buffers hold
	start := time.Now()
	res, err := c.Send(context.Background(), env1("a@x", "b@y"), strings.NewReader(big))
	var pe *ProtocolError
	if !errors.As(err, &pe) || res.Recipients[0].Delivered || !c.broken {
		t.Fatalf("err = %v", err)
	}
	// Generous for -race on a loaded machine (filling the socket buffers
	// has taken 7 s), far below the default 5-minute timeout.
	if el := time.Since(start); el > time.Minute {
		t.Fatalf("write timeout took %v: the default timeout ended it, not the 500 ms one", el)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("err = %v, want the write timeout", err)
	}
	c.drop()
}

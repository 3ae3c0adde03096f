package policy

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"mailq/smtpproto"
)

func rp(code int, enh, text string) *smtpproto.Reply {
	return &smtpproto.Reply{Code: code, Enhanced: enh, Text: text}
}

// rcpt builds one recipient result.
func rcpt(addr string, rcptReply, final *smtpproto.Reply, delivered bool) smtpproto.RecipientResult {
	return smtpproto.RecipientResult{Address: addr, Rcpt: rcptReply, Final: final, Delivered: delivered}
}

// want is the expected decision for one recipient; Diagnostic is checked as a substring.
type want struct {
	action     Action
	status     string
	replyCode  int // 0 = Reply must be nil
	diagnostic string
	operator   bool
}

func TestClassify(t *testing.T) {
	ok250 := rp(250, "2.1.5", "ok")
	queued := rp(250, "2.0.0", "queued as 1234")
	tests := []struct {
		name string
		res  *smtpproto.Result
		err  error
		want []want
	}{
		{
			name: "delivered: end-of-data 2xx",
			res: &smtpproto.Result{Recipients: []smtpproto.RecipientResult{
				rcpt("a@x.org", ok250, queued, true), rcpt("b@x.org", ok250, rp(250, "", "ok"), true),
			}},
			want: []want{{Deliver, "2.0.0", 250, "smtp; 250 2.0.0 queued as 1234", false}, {Deliver, "2.0.0", 250, "smtp; 250 ok", false}},
		},
		{
			name: "sender rejected 5xx: every recipient bounces",
			res: &smtpproto.Result{Recipients: []smtpproto.RecipientResult{
				rcpt("a@x.org", nil, rp(553, "5.1.8", "bad sender domain"), false), rcpt("b@x.org", nil, rp(553, "5.1.8", "bad sender domain"), false),
			}},
			err:  &smtpproto.SenderFailedError{Address: "s@y.org", Reply: smtpproto.Reply{Code: 553, Enhanced: "5.1.8"}},
			want: []want{{Bounce, "5.1.8", 553, "smtp; 553 5.1.8 bad sender domain", false}, {Bounce, "5.1.8", 553, "bad sender domain", false}},
		},
		{
			name: "sender rejected 4xx: every recipient retries",
			res: &smtpproto.Result{Recipients: []smtpproto.RecipientResult{
				rcpt("a@x.org", nil, rp(451, "", "greylisted"), false), rcpt("b@x.org", nil, rp(451, "", "greylisted"), false),
			}},
			err:  &smtpproto.SenderFailedError{Reply: smtpproto.Reply{Code: 451}},
			want: []want{{Retry, "4.0.0", 451, "smtp; 451 greylisted", false}, {Retry, "4.0.0", 451, "greylisted", false}},
		},
		{
			name: "address failed 5xx and 4xx, address succeeded delivered",
			res: &smtpproto.Result{Recipients: []smtpproto.RecipientResult{
				rcpt("a@x.org", rp(550, "5.1.1", "no such user"), rp(550, "5.1.1", "no such user"), false),
				rcpt("b@x.org", rp(450, "4.2.1", "mailbox busy"), rp(450, "4.2.1", "mailbox busy"), false),
				rcpt("c@x.org", ok250, queued, true),
			}},
			err: &smtpproto.SendFailedError{ValidSent: []string{"c@x.org"}, ValidUnsent: []string{"b@x.org"}, Invalid: []string{"a@x.org"}},
			want: []want{
				{Bounce, "5.1.1", 550, "smtp; 550 5.1.1 no such user", false},
				{Retry, "4.2.1", 450, "smtp; 450 4.2.1 mailbox busy", false},
				{Deliver, "2.0.0", 250, "queued", false},
			},
		},
		{
			name: "452 too many recipients still left over: retry",
			res: &smtpproto.Result{Recipients: []smtpproto.RecipientResult{
				rcpt("a@x.org", ok250, queued, true),
				rcpt("b@x.org", rp(452, "4.5.3", "too many recipients"), rp(452, "4.5.3", "too many recipients"), false),
			}},
			want: []want{{Deliver, "2.0.0", 250, "", false}, {Retry, "4.5.3", 452, "too many recipients", false}},
		},
		{
			name: "send failed 5xx at DATA/end-of-data: accepted recipients bounce, refused one keeps its RCPT reply",
			res: &smtpproto.Result{Recipients: []smtpproto.RecipientResult{
				rcpt("a@x.org", ok250, rp(554, "5.6.0", "message content rejected"), false),
				rcpt("b@x.org", ok250, rp(554, "5.6.0", "message content rejected"), false),
				rcpt("c@x.org", rp(550, "5.1.1", "unknown"), rp(550, "5.1.1", "unknown"), false),
			}},
			err: &smtpproto.SendFailedError{Command: "DATA", Reply: rp(554, "5.6.0", "message content rejected")},
			want: []want{
				{Bounce, "5.6.0", 554, "smtp; 554 5.6.0 message content rejected", false},
				{Bounce, "5.6.0", 554, "content rejected", false},
				{Bounce, "5.1.1", 550, "unknown", false},
			},
		},
		{
			name: "send failed 4xx at end-of-data: accepted recipients retry",
			res: &smtpproto.Result{Recipients: []smtpproto.RecipientResult{
				rcpt("a@x.org", ok250, rp(451, "4.3.0", "local error"), false),
				rcpt("b@x.org", ok250, rp(451, "4.3.0", "local error"), false),
			}},
			err:  &smtpproto.SendFailedError{Command: ".", Reply: rp(451, "4.3.0", "local error")},
			want: []want{{Retry, "4.3.0", 451, "local error", false}, {Retry, "4.3.0", 451, "local error", false}},
		},
		{
			name: "reply with a mismatched enhanced class: basic code decides",
			res: &smtpproto.Result{Recipients: []smtpproto.RecipientResult{
				rcpt("a@x.org", rp(550, "4.1.1", "odd"), rp(550, "4.1.1", "odd"), false),
			}},
			want: []want{{Bounce, "5.1.1", 550, "odd", false}},
		},
		{
			name: "connection lost mid-DATA: accepted recipients retry",
			res: &smtpproto.Result{Recipients: []smtpproto.RecipientResult{
				rcpt("a@x.org", ok250, nil, false), rcpt("b@x.org", ok250, ok250, false),
			}},
			err:  &smtpproto.ProtocolError{Host: "mx.x.org", Command: "DATA", Err: errors.New("connection reset by peer")},
			want: []want{{Retry, "4.4.2", 0, "connection reset by peer", false}, {Retry, "4.4.2", 0, "connection reset", false}},
		},
		{
			name: "connection lost after the final dot, before its reply: retry (at-least-once)",
			res: &smtpproto.Result{Recipients: []smtpproto.RecipientResult{
				rcpt("a@x.org", ok250, nil, false),
			}},
			err:  &smtpproto.ProtocolError{Host: "mx.x.org", Command: ".", Err: errors.New("EOF")},
			want: []want{{Retry, "4.4.2", 0, "EOF", false}},
		},
		{
			name: "timeout waiting for a reply: retry",
			res: &smtpproto.Result{Recipients: []smtpproto.RecipientResult{
				rcpt("a@x.org", nil, nil, false),
			}},
			err:  fmt.Errorf("sending: %w", &smtpproto.ProtocolError{Host: "mx.x.org", Command: "MAIL FROM:<s@y.org>", Err: os.ErrDeadlineExceeded}),
			want: []want{{Retry, "4.4.2", 0, "i/o timeout", false}},
		},
		{
			name: "greeting not 2xx: retry keeping the reply, class 4",
			res: &smtpproto.Result{Recipients: []smtpproto.RecipientResult{
				rcpt("a@x.org", nil, nil, false), rcpt("b@x.org", nil, nil, false),
			}},
			err:  &smtpproto.ProtocolError{Host: "mx.x.org", Reply: rp(554, "5.7.1", "go away")},
			want: []want{{Retry, "4.7.1", 554, "go away", false}, {Retry, "4.7.1", 554, "go away", false}},
		},
		{
			name: "TLS failure: retry, operator error",
			res: &smtpproto.Result{Recipients: []smtpproto.RecipientResult{
				rcpt("a@x.org", nil, nil, false),
			}},
			err:  &smtpproto.TLSError{Host: "mx.x.org", Err: errors.New("x509: certificate signed by unknown authority")},
			want: []want{{Retry, "4.7.0", 0, "unknown authority", true}},
		},
		{
			name: "AUTH rejected: retry, never bounce, operator error",
			res: &smtpproto.Result{Recipients: []smtpproto.RecipientResult{
				rcpt("a@x.org", nil, nil, false), rcpt("b@x.org", nil, nil, false),
			}},
			err:  &smtpproto.AuthError{Host: "mx.x.org", Mechanism: "PLAIN", Reply: rp(535, "5.7.8", "bad credentials")},
			want: []want{{Retry, "4.7.0", 535, "bad credentials", true}, {Retry, "4.7.0", 535, "bad credentials", true}},
		},
		{
			name: "AUTH impossible (no common mechanism): retry, operator error",
			res: &smtpproto.Result{Recipients: []smtpproto.RecipientResult{
				rcpt("a@x.org", nil, nil, false),
			}},
			err:  &smtpproto.AuthError{Host: "mx.x.org", Err: errors.New("no common mechanism")},
			want: []want{{Retry, "4.7.0", 0, "no common mechanism", true}},
		},
		{
			name: "not an SMTP outcome (3xx as final): retry, never bounce",
			res: &smtpproto.Result{Recipients: []smtpproto.RecipientResult{
				rcpt("a@x.org", ok250, rp(354, "", "go ahead"), false),
			}},
			want: []want{{Retry, "4.5.0", 354, "354 go ahead", false}},
		},
		{
			name: "no reply and no error: retry",
			res: &smtpproto.Result{Recipients: []smtpproto.RecipientResult{
				rcpt("a@x.org", nil, nil, false),
			}},
			want: []want{{Retry, "4.4.2", 0, "before the server replied", false}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds := Classify(tt.res, tt.err)
			if len(ds) != len(tt.want) {
				t.Fatalf("got %d decisions, want %d: %+v", len(ds), len(tt.want), ds)
			}
			for i, w := range tt.want {
				checkDecision(t, ds[i], tt.res.Recipients[i].Address, w)
			}
		})
	}
}

func checkDecision(t *testing.T, d Decision, addr string, w want) {
	t.Helper()
	if d.Recipient != addr {
		t.Errorf("decision for %q, want %q", d.Recipient, addr)
	}
	if d.Action != w.action || d.Status != w.status || d.OperatorError != w.operator {
		t.Errorf("%s: action %s status %s operator %v; want %s %s %v", addr, d.Action, d.Status, d.OperatorError, w.action, w.status, w.operator)
	}
	switch {
	case w.replyCode == 0 && d.Reply != nil:
		t.Errorf("%s: reply %+v, want none", addr, d.Reply)
	case w.replyCode != 0 && (d.Reply == nil || d.Reply.Code != w.replyCode):
		t.Errorf("%s: reply %+v, want code %d", addr, d.Reply, w.replyCode)
	}
	if !strings.Contains(d.Diagnostic, w.diagnostic) || strings.ContainsAny(d.Diagnostic, "\r\n") {
		t.Errorf("%s: diagnostic %q, want one line containing %q", addr, d.Diagnostic, w.diagnostic)
	}
	if !d.RetryAt.IsZero() {
		t.Errorf("%s: Classify set RetryAt; that is Schedule's job", addr)
	}
}

func TestConnectionFailure(t *testing.T) {
	err := &smtpproto.ConnectError{Host: "127.0.0.1", Port: 25, Err: errors.New("connection refused")}
	ds := ConnectionFailure([]string{"a@x.org", "b@x.org"}, err)
	if len(ds) != 2 {
		t.Fatalf("got %d decisions, want 2", len(ds))
	}
	for i, addr := range []string{"a@x.org", "b@x.org"} {
		checkDecision(t, ds[i], addr, want{Retry, "4.4.1", 0, "connection refused", false})
	}
	if Classify(nil, err) != nil {
		t.Error("Classify(nil, err) should be nil")
	}
}

// sampleResult is a Result with n recipients alternating delivered, 450 and 550.
func sampleResult(n int) *smtpproto.Result {
	res := &smtpproto.Result{}
	for i := 0; i < n; i++ {
		var rr smtpproto.RecipientResult
		rr.Address = fmt.Sprintf("r%d@x.org", i)
		switch i % 3 {
		case 0:
			rr.Rcpt, rr.Final, rr.Delivered = rp(250, "2.1.5", "ok"), rp(250, "2.0.0", "queued"), true
		case 1:
			rr.Rcpt = rp(450, "4.2.1", "busy")
			rr.Final = rr.Rcpt
		default:
			rr.Rcpt = rp(550, "5.1.1", "no such user")
			rr.Final = rr.Rcpt
		}
		res.Recipients = append(res.Recipients, rr)
	}
	return res
}

// TestReplyBeforeEndOfDataRetries: smtpproto's "reply before end of data"
// (a server that answered before the final dot) retries the accepted
// recipient with 4.5.0; it is never delivered nor bounced on that reply.
func TestReplyBeforeEndOfDataRetries(t *testing.T) {
	res := &smtpproto.Result{Recipients: []smtpproto.RecipientResult{{Address: "a@x.org", Rcpt: rp(250, "2.1.5", "ok")}}}
	err := &smtpproto.ProtocolError{Host: "mx", Command: ".", Reply: rp(451, "4.5.0", "reply before end of data: the server sent \"554 5.7.1 no\""), Err: errors.New("reply out of turn")}
	ds := Classify(res, err)
	if len(ds) != 1 || ds[0].Action != Retry || ds[0].Status != "4.5.0" || !strings.Contains(ds[0].Diagnostic, "reply before end of data") {
		t.Fatalf("decision %+v, want retry with 4.5.0 naming the early reply", ds)
	}
}

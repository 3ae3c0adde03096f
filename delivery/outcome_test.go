package delivery

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"mailq/queue"
)

// TestOutcomesAgainstScriptedServer runs the real queue and engine against
// the scripted server, one behaviour per case, and checks each recipient's
// final state, the attempt history and, for bounces, the DSN.
func TestOutcomesAgainstScriptedServer(t *testing.T) {
	const sender = "sender@client.test"
	cases := []struct {
		name      string
		sender    string
		rcpts     []string
		timeoutMS int
		// want per recipient: state and the code of its last reply (0 = none)
		want map[string]struct {
			state queue.RecipientState
			code  int
		}
		wantReply  string // a reply code that must appear in the attempt's replies
		dsnStatus  map[string]string
		dsnDiagHas string
	}{
		{name: "accepted", rcpts: []string{"ok-1@fake.test", "ok-2@fake.test"},
			want: map[string]struct {
				state queue.RecipientState
				code  int
			}{"ok-1@fake.test": {queue.Delivered, 250}, "ok-2@fake.test": {queue.Delivered, 250}}},
		{name: "rcpt 450 retries", rcpts: []string{"r450-a@fake.test"}, wantReply: "450",
			want: map[string]struct {
				state queue.RecipientState
				code  int
			}{"r450-a@fake.test": {queue.Deferred, 450}}},
		{name: "rcpt 550 bounces", rcpts: []string{"r550-a@fake.test"}, wantReply: "550",
			want: map[string]struct {
				state queue.RecipientState
				code  int
			}{"r550-a@fake.test": {queue.Bounced, 550}},
			dsnStatus: map[string]string{"r550-a@fake.test": "5.1.1"}, dsnDiagHas: "550 5.1.1 no such user"},
		{name: "rcpt 552 bounces", rcpts: []string{"r552-a@fake.test"},
			want: map[string]struct {
				state queue.RecipientState
				code  int
			}{"r552-a@fake.test": {queue.Bounced, 552}},
			dsnStatus: map[string]string{"r552-a@fake.test": "5.2.2"}, dsnDiagHas: "552 5.2.2"},
		{name: "rcpt 452 retries", rcpts: []string{"r452-a@fake.test"},
			want: map[string]struct {
				state queue.RecipientState
				code  int
			}{"r452-a@fake.test": {queue.Deferred, 452}}},
		{name: "partial: valid one delivered, invalid one bounced", rcpts: []string{"ok-a@fake.test", "r550-b@fake.test"},
			want: map[string]struct {
				state queue.RecipientState
				code  int
			}{"ok-a@fake.test": {queue.Delivered, 250}, "r550-b@fake.test": {queue.Bounced, 550}},
			dsnStatus: map[string]string{"r550-b@fake.test": "5.1.1"}, dsnDiagHas: "no such user"},
		{name: "mail from 553 bounces all", sender: "m553-s@client.test", rcpts: []string{"ok-a@fake.test", "ok-b@fake.test"},
			want: map[string]struct {
				state queue.RecipientState
				code  int
			}{"ok-a@fake.test": {queue.Bounced, 553}, "ok-b@fake.test": {queue.Bounced, 553}},
			dsnStatus: map[string]string{"ok-a@fake.test": "5.1.8", "ok-b@fake.test": "5.1.8"}, dsnDiagHas: "553"},
		{name: "mail from 451 retries all", sender: "m451-s@client.test", rcpts: []string{"ok-a@fake.test"},
			want: map[string]struct {
				state queue.RecipientState
				code  int
			}{"ok-a@fake.test": {queue.Deferred, 451}}},
		{name: "end of data 554 bounces", rcpts: []string{"d554-a@fake.test", "ok-b@fake.test"}, wantReply: "554",
			want: map[string]struct {
				state queue.RecipientState
				code  int
			}{"d554-a@fake.test": {queue.Bounced, 554}, "ok-b@fake.test": {queue.Bounced, 554}},
			dsnStatus: map[string]string{"d554-a@fake.test": "5.6.0", "ok-b@fake.test": "5.6.0"}, dsnDiagHas: "content rejected"},
		{name: "end of data 451 retries", rcpts: []string{"d451-a@fake.test"},
			want: map[string]struct {
				state queue.RecipientState
				code  int
			}{"d451-a@fake.test": {queue.Deferred, 451}}},
		{name: "connection dropped mid-DATA retries", rcpts: []string{"drop-a@fake.test"},
			want: map[string]struct {
				state queue.RecipientState
				code  int
			}{"drop-a@fake.test": {queue.Deferred, 0}}},
		{name: "stalled server times out and retries", rcpts: []string{"stall-a@fake.test"}, timeoutMS: 300,
			want: map[string]struct {
				state queue.RecipientState
				code  int
			}{"stall-a@fake.test": {queue.Deferred, 0}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := newFakeServer(t)
			route := testRoute("fake", srv.port())
			if tc.timeoutMS > 0 {
				route.Settings.Timeout = ptr(tc.timeoutMS)
			}
			// Notices go to client.test, which has its own route to the
			// same server, so they are delivered too.
			h := newHarness(t, []Route{route}, nil)
			from := tc.sender
			if from == "" {
				from = sender
			}
			start := h.clock.Now()
			id := h.enqueue(t, from, tc.rcpts...)
			h.start()
			m := h.settled(t, id, 1)

			if len(m.Attempts) != 1 {
				t.Fatalf("attempts = %d, want 1: %+v", len(m.Attempts), m.Attempts)
			}
			a := m.Attempts[0]
			if a.Route != "fake" || !strings.HasPrefix(a.Remote, "127.0.0.1:") || len(a.Recipients) != len(tc.rcpts) {
				t.Errorf("attempt record: route %q remote %q recipients %v", a.Route, a.Remote, a.Recipients)
			}
			if tc.wantReply != "" && !hasReplyCode(a, tc.wantReply) {
				t.Errorf("attempt replies %+v lack a %s reply", a.Replies, tc.wantReply)
			}
			for addr, w := range tc.want {
				rc := recipientOf(t, m, addr)
				if rc.State != w.state {
					t.Errorf("%s: state %s, want %s (last reply %+v)", addr, rc.State, w.state, rc.LastReply)
				}
				if rc.Attempts != 1 {
					t.Errorf("%s: attempts %d, want 1", addr, rc.Attempts)
				}
				if rc.LastReply == nil {
					t.Errorf("%s: no last_reply recorded", addr)
				} else if rc.LastReply.Code != w.code {
					t.Errorf("%s: last reply %+v, want code %d", addr, rc.LastReply, w.code)
				}
				if w.state == queue.Deferred {
					// First failure: next attempt after initial = 5m (jitter 0).
					if want := start.Add(5 * time.Minute); !rc.NextAttempt.Equal(want) {
						t.Errorf("%s: next attempt %s, want %s", addr, rc.NextAttempt, want)
					}
				}
			}
			if tc.dsnStatus == nil {
				if ds := h.dsns(t); len(ds) != 0 {
					t.Fatalf("no DSN expected, got %d", len(ds))
				}
				return
			}
			d := h.onlyDSN(t, from)
			checkDSN(t, d, "failed", tc.dsnStatus, tc.dsnDiagHas)
		})
	}
}

func hasReplyCode(a queue.Attempt, code string) bool {
	for _, r := range a.Replies {
		if strconv.Itoa(r.Code) == code {
			return true
		}
	}
	return false
}

// checkDSN asserts a parsed report: multipart/report, one block per
// expected recipient with Action, Status, Final-Recipient and a
// Diagnostic-Code containing diag, and the original's headers.
func checkDSN(t *testing.T, d parsedDSN, action string, status map[string]string, diag string) {
	t.Helper()
	if d.ContentType != "multipart/report" {
		t.Errorf("DSN content type %q, want multipart/report", d.ContentType)
	}
	if got := d.PerMessage.Get("Reporting-Mta"); !strings.Contains(got, "mailq.test") {
		t.Errorf("Reporting-MTA %q, want dns; mailq.test", got)
	}
	if len(d.Per) != len(status) {
		t.Fatalf("DSN has %d recipient blocks, want %d: %v", len(d.Per), len(status), d.Per)
	}
	for _, blk := range d.Per {
		fr := blk.Get("Final-Recipient")
		addr := strings.TrimSpace(fr[strings.IndexByte(fr, ';')+1:])
		want, ok := status[addr]
		if !ok {
			t.Errorf("unexpected Final-Recipient %q", fr)
			continue
		}
		if !strings.HasPrefix(strings.ToLower(fr), "rfc822;") {
			t.Errorf("Final-Recipient %q lacks the rfc822 address type", fr)
		}
		if got := blk.Get("Action"); got != action {
			t.Errorf("%s: Action %q, want %q", addr, got, action)
		}
		if got := blk.Get("Status"); got != want {
			t.Errorf("%s: Status %q, want %q", addr, got, want)
		}
		if diag != "" && !strings.Contains(blk.Get("Diagnostic-Code"), diag) {
			t.Errorf("%s: Diagnostic-Code %q lacks %q", addr, blk.Get("Diagnostic-Code"), diag)
		}
	}
	if !strings.Contains(d.Original, "Subject: test message") || !strings.Contains(d.Original, "Message-ID: <orig-1@mailq.test>") {
		t.Errorf("DSN lacks the original headers; third part (%s):\n%s", d.OriginalCT, d.Original)
	}
	if strings.Contains(d.Original, "Hello there.") && d.OriginalCT == "text/rfc822-headers" {
		t.Errorf("headers-only DSN carries the body")
	}
}

// TestReportSuccess: with reportsuccess each accepted RCPT is recorded in
// the attempt history with its reply and logged; without it only the final
// reply is recorded (docs/delivery.md, SMTPAddressSucceededException).
func TestReportSuccess(t *testing.T) {
	for _, report := range []bool{false, true} {
		t.Run(strconv.FormatBool(report), func(t *testing.T) {
			srv := newFakeServer(t)
			route := testRoute("fake", srv.port())
			route.Settings.ReportSuccess = report
			h := newHarness(t, []Route{route}, nil)
			id := h.enqueue(t, "sender@client.test", "ok-a@fake.test", "ok-b@fake.test")
			h.start()
			m := h.settled(t, id, 1)
			var rcptSteps []string
			for _, r := range m.Attempts[0].Replies {
				if strings.HasPrefix(r.Command, "RCPT TO:") {
					if r.Code != 250 || !strings.Contains(r.Text, "recipient ok") {
						t.Errorf("RCPT step %+v, want the server's 250 recipient ok", r)
					}
					rcptSteps = append(rcptSteps, r.Command)
				}
			}
			want := []string(nil)
			if report {
				want = []string{"RCPT TO:<ok-a@fake.test>", "RCPT TO:<ok-b@fake.test>"}
			}
			if strings.Join(rcptSteps, ",") != strings.Join(want, ",") {
				t.Errorf("RCPT steps in the history %q, want %q", rcptSteps, want)
			}
			if !hasReplyCode(m.Attempts[0], "250") {
				t.Errorf("final reply missing from the history: %+v", m.Attempts[0].Replies)
			}
			if logged := strings.Count(h.logBuf.String(), `"message":"recipient accepted"`); report && logged != 2 || !report && logged != 0 {
				t.Errorf("%d \"recipient accepted\" log lines, want %d:\n%s", logged, map[bool]int{true: 2}[report], h.logBuf.String())
			}
		})
	}
}

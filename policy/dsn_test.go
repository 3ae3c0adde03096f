package policy

import (
	"bufio"
	"bytes"
	"io"
	netmail "net/mail"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
)

const originalMsg = "From: Alice <alice@example.com>\n" +
	"To: bob@example.org, carol@example.org\n" +
	"Subject: quarterly report\n" +
	"Message-ID: <orig-1@example.com>\n" +
	"\n" +
	"Hello Bob,\n" +
	"the numbers are attached.\n"

// parsedDSN is a DSN read back with go-message.
type parsedDSN struct {
	header     mail.Header
	params     map[string]string
	parts      []string // content types
	text       string
	perMessage textproto.Header
	perRcpt    []textproto.Header
	third      []byte
}

func parseDSN(t *testing.T, raw []byte) parsedDSN {
	t.Helper()
	if i := bytes.Index(bytes.ReplaceAll(raw, []byte("\r\n"), nil), []byte("\n")); i >= 0 {
		t.Fatalf("DSN has a bare LF line ending near byte %d", i)
	}
	e, err := message.Read(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("reading DSN: %v", err)
	}
	var p parsedDSN
	p.header = mail.Header{Header: e.Header}
	mt, params, err := e.Header.ContentType()
	if err != nil || mt != "multipart/report" {
		t.Fatalf("Content-Type %q, %v; want multipart/report", mt, err)
	}
	p.params = params
	mr := e.MultipartReader()
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading part %d: %v", len(p.parts)+1, err)
		}
		ct, _, _ := part.Header.ContentType()
		p.parts = append(p.parts, ct)
		body, err := io.ReadAll(part.Body)
		if err != nil {
			t.Fatalf("reading part %s: %v", ct, err)
		}
		switch len(p.parts) {
		case 1:
			p.text = string(body)
		case 2:
			br := bufio.NewReader(bytes.NewReader(body))
			if p.perMessage, err = textproto.ReadHeader(br); err != nil {
				t.Fatalf("per-message fields: %v\n%s", err, body)
			}
			for {
				if _, err := br.Peek(1); err == io.EOF {
					break
				}
				h, err := textproto.ReadHeader(br)
				if err != nil {
					t.Fatalf("per-recipient fields: %v\n%s", err, body)
				}
				p.perRcpt = append(p.perRcpt, h)
			}
		case 3:
			p.third = body
		}
	}
	return p
}

func sampleNotice() Notice {
	return Notice{
		ReportingMTA: "mx.example.net",
		EnvID:        "env-42",
		Arrival:      t0,
		Sender:       "alice@example.com",
		MessageID:    "Q123",
		Now:          t0.Add(2 * time.Hour),
		Recipients: []NoticeRecipient{
			{
				Address: "bob@example.org", ORCPT: "rfc822;Bob+sales@Example.org", Action: ActionFailed, Status: "5.1.1",
				RemoteMTA: "smtp.example.org", Diagnostic: "smtp; 550 5.1.1 no such user", LastAttempt: t0.Add(2 * time.Hour),
			},
			{
				Address: "carol@example.org", Action: ActionFailed, Status: "4.4.7",
				Diagnostic: "connect to smtp.example.org: connection refused", LastAttempt: t0.Add(time.Hour),
			},
		},
	}
}

func TestBuildDSNFailureHDRS(t *testing.T) {
	raw, err := BuildDSN(sampleNotice(), strings.NewReader(originalMsg))
	if err != nil {
		t.Fatal(err)
	}
	p := parseDSN(t, raw)
	if p.params["report-type"] != "delivery-status" {
		t.Errorf("report-type = %q, want delivery-status", p.params["report-type"])
	}
	wantParts := []string{"text/plain", "message/delivery-status", "text/rfc822-headers"}
	if strings.Join(p.parts, ",") != strings.Join(wantParts, ",") {
		t.Fatalf("parts %v, want %v", p.parts, wantParts)
	}
	headerChecks := map[string]string{
		"From":           `"Mail Delivery System" <MAILER-DAEMON@mx.example.net>`,
		"To":             "<alice@example.com>",
		"Subject":        "Undelivered Mail Returned to Sender",
		"Auto-Submitted": "auto-replied",
	}
	for k, want := range headerChecks {
		if got := p.header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if d, err := p.header.Date(); err != nil || !d.Equal(t0.Add(2*time.Hour)) {
		t.Errorf("Date = %v, %v; want %v", d, err, t0.Add(2*time.Hour))
	}
	if id, err := p.header.MessageID(); err != nil || !strings.HasSuffix(id, "@mx.example.net") {
		t.Errorf("Message-ID = %q, %v", id, err)
	}

	if got := p.perMessage.Get("Reporting-MTA"); got != "dns; mx.example.net" {
		t.Errorf("Reporting-MTA = %q", got)
	}
	if got := p.perMessage.Get("Original-Envelope-Id"); got != "env-42" {
		t.Errorf("Original-Envelope-Id = %q", got)
	}
	if got, err := netmail.ParseDate(p.perMessage.Get("Arrival-Date")); err != nil || !got.Equal(t0) {
		t.Errorf("Arrival-Date = %q (%v)", p.perMessage.Get("Arrival-Date"), err)
	}

	if len(p.perRcpt) != 2 {
		t.Fatalf("got %d recipient blocks, want 2", len(p.perRcpt))
	}
	want := []map[string]string{
		{
			"Original-Recipient": "rfc822; Bob+sales@Example.org",
			"Final-Recipient":    "rfc822; bob@example.org",
			"Action":             "failed",
			"Status":             "5.1.1",
			"Remote-MTA":         "dns; smtp.example.org",
			"Diagnostic-Code":    "smtp; 550 5.1.1 no such user",
			"Last-Attempt-Date":  t0.Add(2 * time.Hour).Format(time.RFC1123Z),
			"Will-Retry-Until":   "",
		},
		{
			"Original-Recipient": "",
			"Final-Recipient":    "rfc822; carol@example.org",
			"Action":             "failed",
			"Status":             "4.4.7",
			"Remote-MTA":         "",
			"Diagnostic-Code":    "X-mailq; connect to smtp.example.org: connection refused",
		},
	}
	for i, fields := range want {
		for k, v := range fields {
			if got := p.perRcpt[i].Get(k); got != v {
				t.Errorf("recipient %d %s = %q, want %q", i+1, k, got, v)
			}
		}
	}

	if strings.Contains(p.text, "smtp;") {
		t.Errorf("explanation shows the diagnostic type:\n%s", p.text)
	}
	for _, s := range []string{"bob@example.org", "550 5.1.1 no such user", "carol@example.org", "Q123", "too long"} {
		if !strings.Contains(p.text, s) {
			t.Errorf("explanation lacks %q:\n%s", s, p.text)
		}
	}

	hdr, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(p.third)))
	if err != nil {
		t.Fatalf("original headers: %v", err)
	}
	if hdr.Get("Subject") != "quarterly report" || hdr.Get("Message-Id") != "<orig-1@example.com>" {
		t.Errorf("original headers not attached: %q", p.third)
	}
	if bytes.Contains(p.third, []byte("Hello Bob")) {
		t.Error("HDRS attached the body")
	}
}

func TestBuildDSNFull(t *testing.T) {
	n := sampleNotice()
	n.Ret = "FULL"
	raw, err := BuildDSN(n, strings.NewReader(originalMsg))
	if err != nil {
		t.Fatal(err)
	}
	p := parseDSN(t, raw)
	if len(p.parts) != 3 || p.parts[2] != "message/rfc822" {
		t.Fatalf("parts %v, want message/rfc822 third", p.parts)
	}
	want := strings.ReplaceAll(originalMsg, "\n", "\r\n")
	if string(p.third) != want {
		t.Errorf("attached original:\n%q\nwant\n%q", p.third, want)
	}
}

func TestBuildDSNKinds(t *testing.T) {
	until := t0.Add(120 * time.Hour)
	tests := []struct {
		name    string
		rcpt    NoticeRecipient
		subject string
		fields  map[string]string
	}{
		{
			"delay warning",
			NoticeRecipient{Address: "b@example.org", Action: ActionDelayed, Status: "4.2.1", RemoteMTA: "mx.example.org",
				Diagnostic: "smtp; 450 4.2.1 busy", LastAttempt: t0.Add(4 * time.Hour), WillRetryUntil: until},
			"Delayed Mail (still being retried)",
			map[string]string{"Action": "delayed", "Status": "4.2.1", "Will-Retry-Until": until.Format(time.RFC1123Z)},
		},
		{
			"success relayed",
			NoticeRecipient{Address: "b@example.org", Action: ActionRelayed, Status: "2.0.0", RemoteMTA: "mx.example.org",
				Diagnostic: "smtp; 250 2.0.0 ok"},
			"Successful Mail Delivery Report",
			map[string]string{"Action": "relayed", "Status": "2.0.0", "Will-Retry-Until": ""},
		},
	}
	for _, tt := range tests {
		n := sampleNotice()
		n.EnvID = ""
		n.Recipients = []NoticeRecipient{tt.rcpt}
		raw, err := BuildDSN(n, strings.NewReader(originalMsg))
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		p := parseDSN(t, raw)
		if got := p.header.Get("Subject"); got != tt.subject {
			t.Errorf("%s: Subject %q, want %q", tt.name, got, tt.subject)
		}
		if p.perMessage.Has("Original-Envelope-Id") {
			t.Errorf("%s: Original-Envelope-Id present without ENVID", tt.name)
		}
		for k, v := range tt.fields {
			if got := p.perRcpt[0].Get(k); got != v {
				t.Errorf("%s: %s = %q, want %q", tt.name, k, got, v)
			}
		}
	}
}

func TestBuildDSNDegrades(t *testing.T) {
	// A header that cannot be parsed still yields a bounce, without part 3.
	raw, err := BuildDSN(sampleNotice(), strings.NewReader("this is not a header line\n\nbody\n"))
	if err != nil {
		t.Fatal(err)
	}
	p := parseDSN(t, raw)
	if len(p.parts) != 2 || !strings.Contains(p.text, "could not be read") {
		t.Errorf("parts %v, text %q: want 2 parts and a note about the header", p.parts, p.text)
	}
	// A long diagnostic is folded but reads back whole.
	n := sampleNotice()
	long := "smtp; 550 5.7.1 " + strings.Repeat("policy rejection reason ", 20)
	n.Recipients[0].Diagnostic = long
	raw, err = BuildDSN(n, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\r\n") {
		if len(line) > 998 {
			t.Fatalf("line of %d bytes exceeds RFC 5322's limit", len(line))
		}
	}
	p = parseDSN(t, raw)
	if got := p.perRcpt[0].Get("Diagnostic-Code"); got != strings.TrimSpace(long) {
		t.Errorf("folded Diagnostic-Code reads back as %q", got)
	}
	// A header-injection attempt in a diagnostic stays inside its field.
	n = sampleNotice()
	n.Recipients[0].Diagnostic = "smtp; 550 bad\r\nStatus: 2.0.0"
	raw, _ = BuildDSN(n, nil)
	p = parseDSN(t, raw)
	if got := p.perRcpt[0].Values("Status"); len(got) != 1 || got[0] != "5.1.1" {
		t.Errorf("Status values %v: a diagnostic injected a field", got)
	}
}

func TestBuildDSNGlobal(t *testing.T) {
	n := sampleNotice()
	n.Recipients[1].Address = "jürgen@例え.jp"
	raw, err := BuildDSN(n, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := parseDSN(t, raw)
	if p.parts[1] != "message/global-delivery-status" {
		t.Errorf("part 2 is %s, want message/global-delivery-status for a UTF-8 address", p.parts[1])
	}
	if got := p.perRcpt[1].Get("Final-Recipient"); got != "utf-8; jürgen@例え.jp" {
		t.Errorf("Final-Recipient = %q", got)
	}
}

func TestBuildDSNErrors(t *testing.T) {
	for _, sender := range []string{"", "<>"} {
		n := sampleNotice()
		n.Sender = sender
		if _, err := BuildDSN(n, nil); err == nil {
			t.Errorf("DSN to null sender %q: want an error", sender)
		}
	}
	n := sampleNotice()
	n.ReportingMTA = ""
	if _, err := BuildDSN(n, nil); err == nil || !strings.Contains(err.Error(), "hostname") {
		t.Errorf("no reporting MTA: error %v, want one pointing at hostname", err)
	}
	n = sampleNotice()
	n.Recipients = nil
	if _, err := BuildDSN(n, nil); err == nil {
		t.Error("no recipients: want an error")
	}
}

package submission

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"mailq/queue"
	"mailq/queue/boltstore"
)

func dialClient(t *testing.T, addr string) *smtp.Client {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	return c
}

// send runs one transaction and returns the queue id from the 250.
func send(t *testing.T, c *smtp.Client, from string, mopts *smtp.MailOptions, to []string, ropts *smtp.RcptOptions, msg string) queue.ID {
	t.Helper()
	if err := c.Mail(from, mopts); err != nil {
		t.Fatalf("MAIL: %v", err)
	}
	for _, r := range to {
		if err := c.Rcpt(r, ropts); err != nil {
			t.Fatalf("RCPT %s: %v", r, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		t.Fatalf("end of data: %v", err)
	}
	return idFromReply(t, resp.StatusText)
}

func wantSMTPError(t *testing.T, err error, code int, enhanced string) {
	t.Helper()
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		t.Fatalf("error %v, want SMTP %d %s", err, code, enhanced)
	}
	got := fmt.Sprintf("%d.%d.%d", se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2])
	if se.Code != code || got != enhanced {
		t.Fatalf("reply %d %s %q, want %d %s", se.Code, got, se.Message, code, enhanced)
	}
}

func TestEHLOAdvertises(t *testing.T) {
	r := startListener(t, nil)
	rc := dialRaw(t, r.addr)
	rc.send("EHLO client.test\r\n")
	ehlo := rc.expect("250")
	for _, ext := range []string{"PIPELINING", "8BITMIME", "SMTPUTF8", "DSN", "ENHANCEDSTATUSCODES", "CHUNKING", fmt.Sprintf("SIZE %d", 1<<20)} {
		if !strings.Contains(ehlo, ext) {
			t.Errorf("EHLO reply lacks %s:\n%s", ext, ehlo)
		}
	}
	for _, ext := range []string{"STARTTLS", "AUTH"} {
		if strings.Contains(ehlo, ext) {
			t.Errorf("EHLO advertises %s without TLS/auth configured", ext)
		}
	}
}

func TestSubmitSingleAndMultiRecipient(t *testing.T) {
	r := startListener(t, nil)
	c := dialClient(t, r.addr)
	tests := []struct {
		from string
		to   []string
		msg  string
	}{
		{"a@example.com", []string{"b@example.org"}, "Subject: one\r\n\r\nhello\r\n"},
		{"", []string{"b@example.org", "c@example.org", "d@example.net"}, "Subject: three\r\n\r\n.leading dot\r\nend\r\n"},
		{"a@example.com", []string{"x@example.org"}, "Subject: 8bit\r\n\r\nGrüße\r\n"},
	}
	for _, tt := range tests {
		id := send(t, c, tt.from, nil, tt.to, nil, tt.msg)
		m, body := r.stored(t, id)
		if body != tt.msg {
			t.Errorf("stored body %q, want %q", body, tt.msg)
		}
		if m.Sender != tt.from || len(m.Recipients) != len(tt.to) || m.Source != "smtp" {
			t.Errorf("stored %+v", m)
		}
		for i, rc := range m.Recipients {
			if rc.Address != tt.to[i] {
				t.Errorf("recipient %d = %s, want %s", i, rc.Address, tt.to[i])
			}
		}
	}
}

func TestReceivedHeader(t *testing.T) {
	r := startListener(t, nil)
	c := dialClient(t, r.addr)
	id := send(t, c, "a@example.com", nil, []string{"b@example.org"}, nil, "Subject: x\r\n\r\nx\r\n")
	rc, _ := r.store.Body(id)
	defer rc.Close()
	buf := make([]byte, 200)
	n, _ := rc.Read(buf)
	head := string(buf[:n])
	if !strings.HasPrefix(head, "Received: from client.test ([127.0.0.1])\r\n\tby mx.test with ESMTP id ") {
		t.Errorf("Received: line %q", head)
	}
}

func TestBDATAndPipelining(t *testing.T) {
	r := startListener(t, nil)
	rc := dialRaw(t, r.addr)
	rc.send("EHLO client.test\r\n")
	rc.expect("250")
	part1, part2 := "Subject: bdat\r\n\r\nfirst ", "chunk\r\nno dot-stuffing:\r\n.\r\n"
	// Everything in one write: PIPELINING (RFC 2920) and CHUNKING (RFC 3030).
	rc.send("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\n" +
		fmt.Sprintf("BDAT %d\r\n%s", len(part1), part1) + fmt.Sprintf("BDAT %d LAST\r\n%s", len(part2), part2))
	for range 4 {
		rc.expect("250")
	}
	id := idFromReply(t, rc.expect("250 2.0.0 Ok: queued as "))
	m, body := r.stored(t, id)
	if body != part1+part2 || len(m.Recipients) != 2 {
		t.Errorf("stored %q for %d recipients", body, len(m.Recipients))
	}
	// Pipelined DATA transaction on the same connection.
	rc.send("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n")
	rc.expect("250")
	rc.expect("250")
	rc.expect("354")
	rc.send("Subject: piped\r\n\r\n..dot\r\n.\r\n")
	id = idFromReply(t, rc.expect("250"))
	if _, body := r.stored(t, id); body != "Subject: piped\r\n\r\n.dot\r\n" {
		t.Errorf("pipelined DATA stored %q", body)
	}
}

func TestDSNParametersStored(t *testing.T) {
	r := startListener(t, nil)
	c := dialClient(t, r.addr)
	id := send(t, c, "a@example.com", &smtp.MailOptions{Return: smtp.DSNReturnHeaders, EnvelopeID: "env 42+x"},
		[]string{"b@example.org"}, &smtp.RcptOptions{Notify: []smtp.DSNNotify{smtp.DSNNotifyFailure, smtp.DSNNotifyDelayed},
			OriginalRecipientType: smtp.DSNAddressTypeRFC822, OriginalRecipient: "B@example.org"}, "Subject: dsn\r\n\r\nx\r\n")
	m, _ := r.stored(t, id)
	if m.Ret != "HDRS" || m.EnvID != "env 42+x" {
		t.Errorf("RET %q ENVID %q", m.Ret, m.EnvID)
	}
	rc := m.Recipients[0]
	if rc.Notify != "FAILURE,DELAY" || !strings.EqualFold(rc.ORCPT, "rfc822;B@example.org") {
		t.Errorf("NOTIFY %q ORCPT %q", rc.Notify, rc.ORCPT)
	}
	// NOTIFY=NEVER with another value is refused (go-smtp: 501 5.5.4).
	raw := dialRaw(t, r.addr)
	raw.send("EHLO c\r\nMAIL FROM:<a@example.com> RET=FULL\r\nRCPT TO:<b@example.org> NOTIFY=NEVER,DELAY\r\n")
	raw.expect("250")
	raw.expect("250")
	raw.expect("501 5.5.4")
}

func TestBadAddresses(t *testing.T) {
	r := startListener(t, nil)
	tests := []struct {
		cmd, want string
	}{
		{"MAIL FROM:<a..b@example.com>", "553 5.1.7"},
		{"MAIL FROM:<user@-bad.example>", "553 5.1.7"},
		{"RCPT TO:<nodomain>", "553 5.1.3"},
		{"RCPT TO:b@example.org", "501 5.5.2"}, // RFC 5321 §4.1.2: angle brackets are required
		{"RCPT TO:<b@exa_mple.org>", "553 5.1.3"},
		{"RCPT TO:<" + strings.Repeat("x", 65) + "@example.org>", "553 5.1.3"},
		{"RCPT TO:<ü@example.org>", "553 5.6.7"}, // non-ASCII without SMTPUTF8
	}
	for _, tt := range tests {
		rc := dialRaw(t, r.addr)
		rc.send("EHLO c\r\n")
		rc.expect("250")
		if strings.HasPrefix(tt.cmd, "RCPT") {
			rc.send("MAIL FROM:<a@example.com>\r\n")
			rc.expect("250")
		}
		rc.send(tt.cmd + "\r\n")
		rc.expect(tt.want)
	}
	// With SMTPUTF8 the same address is fine, and the message is marked.
	c := dialClient(t, r.addr)
	id := send(t, c, "ä@example.com", &smtp.MailOptions{UTF8: true}, []string{"ü@example.org"}, nil, "Subject: u\r\n\r\nu\r\n")
	if m, _ := r.stored(t, id); !m.SMTPUTF8 {
		t.Errorf("SMTPUTF8 not stored")
	}
}

func TestOversize(t *testing.T) {
	r := startListener(t, func(o *Options) { o.MaxMessageSize = 1000 })
	c := dialClient(t, r.addr)
	// Declared too large: refused at MAIL.
	wantSMTPError(t, c.Mail("a@example.com", &smtp.MailOptions{Size: 5000}), 552, "5.3.4")
	// Undeclared, too large in DATA.
	if err := c.Mail("a@example.com", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("b@example.org", nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("Subject: big\r\n\r\n" + strings.Repeat(strings.Repeat("x", 98)+"\r\n", 20)))
	_, err = w.CloseWithResponse()
	wantSMTPError(t, err, 552, "5.3.4")
	// BDAT too large.
	rc := dialRaw(t, r.addr)
	body := strings.Repeat("y", 1500)
	rc.send("EHLO c\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\n" + fmt.Sprintf("BDAT %d LAST\r\n%s", len(body), body))
	rc.expect("250")
	rc.expect("250")
	rc.expect("250")
	rc.expect("552 5.3.4")
	n := 0
	r.store.List(queue.Filter{}, func(*queue.Message) error { n++; return nil })
	if n != 0 {
		t.Errorf("%d oversize messages were stored", n)
	}
}

func TestStoreUnavailable(t *testing.T) {
	r := startListener(t, nil)
	c := dialClient(t, r.addr)
	r.store.Close()
	if err := c.Mail("a@example.com", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("b@example.org", nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("Subject: x\r\n\r\nx\r\n"))
	_, err = w.CloseWithResponse()
	wantSMTPError(t, err, 452, "4.3.1")
}

func TestAuth(t *testing.T) {
	authFile := writeAuthFile(t)
	r := startListener(t, func(o *Options) { o.AuthFile = authFile; o.RequireAuth = true })
	tests := []struct {
		name string
		auth sasl.Client
		ok   bool
	}{
		{"plain bcrypt", sasl.NewPlainClient("", "alice", "wonderland"), true},
		{"login argon2id", sasl.NewLoginClient("bob", "builder"), true},
		{"plain wrong password", sasl.NewPlainClient("", "alice", "nope"), false},
		{"login wrong password", sasl.NewLoginClient("bob", "nope"), false},
		{"unknown user", sasl.NewPlainClient("", "mallory", "wonderland"), false},
		{"proxy authorization", sasl.NewPlainClient("bob", "alice", "wonderland"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialClient(t, r.addr)
			err := c.Auth(tt.auth)
			if !tt.ok {
				wantSMTPError(t, err, 535, "5.7.8")
				wantSMTPError(t, c.Mail("a@example.com", nil), 530, "5.7.0")
				return
			}
			if err != nil {
				t.Fatalf("AUTH: %v", err)
			}
			id := send(t, c, "a@example.com", nil, []string{"b@example.org"}, nil, "Subject: a\r\n\r\na\r\n")
			rc, _ := r.store.Body(id)
			buf := make([]byte, 120)
			n, _ := rc.Read(buf)
			rc.Close()
			if !strings.Contains(string(buf[:n]), "with ESMTPA id") {
				t.Errorf("Received: does not say ESMTPA: %q", buf[:n])
			}
		})
	}
	// Without AUTH: refused at MAIL.
	c := dialClient(t, r.addr)
	wantSMTPError(t, c.Mail("a@example.com", nil), 530, "5.7.0")
}

func TestSTARTTLSAndRequireTLS(t *testing.T) {
	serverTLS, clientTLS := selfSignedTLS(t)
	authFile := writeAuthFile(t)
	r := startListener(t, func(o *Options) {
		o.TLSConfig = serverTLS
		o.RequireTLS = true
		o.AuthFile = authFile
	})
	// In clear text: STARTTLS offered, AUTH not, MAIL refused.
	rc := dialRaw(t, r.addr)
	rc.send("EHLO c\r\n")
	ehlo := rc.expect("250")
	if !strings.Contains(ehlo, "STARTTLS") || strings.Contains(ehlo, "AUTH") {
		t.Errorf("clear-text EHLO with require_tls:\n%s", ehlo)
	}
	rc.send("MAIL FROM:<a@example.com>\r\n")
	rc.expect("530 5.7.0")
	rc.send("AUTH PLAIN AGFsaWNlAHdvbmRlcmxhbmQ=\r\n")
	rc.expect("538 5.7.11") // RFC 4954 §6: encryption required for the mechanism
	// After STARTTLS: AUTH offered and mail accepted.
	c, err := smtp.DialStartTLS(r.addr, clientTLS)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ok, mechs := c.Extension("AUTH"); !ok || !strings.Contains(mechs, "PLAIN") || !strings.Contains(mechs, "LOGIN") {
		t.Errorf("AUTH after TLS: %v %q", ok, mechs)
	}
	if err := c.Auth(sasl.NewPlainClient("", "alice", "wonderland")); err != nil {
		t.Fatal(err)
	}
	id := send(t, c, "a@example.com", nil, []string{"b@example.org"}, nil, "Subject: tls\r\n\r\nsecret\r\n")
	rcb, _ := r.store.Body(id)
	buf := make([]byte, 120)
	n, _ := rcb.Read(buf)
	rcb.Close()
	if !strings.Contains(string(buf[:n]), "with ESMTPSA id") {
		t.Errorf("Received: does not say ESMTPSA: %q", buf[:n])
	}
}

func TestImplicitTLS(t *testing.T) {
	serverTLS, clientTLS := selfSignedTLS(t)
	r := startListener(t, func(o *Options) { o.TLSConfig = serverTLS; o.ImplicitTLS = true })
	c, err := smtp.DialTLS(r.addr, clientTLS)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("c"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		t.Error("STARTTLS offered inside implicit TLS")
	}
	send(t, c, "a@example.com", nil, []string{"b@example.org"}, nil, "Subject: x\r\n\r\nx\r\n")
}

func TestNewRefusesBadOptions(t *testing.T) {
	st, _ := boltstore.Open(t.TempDir()+"/q.db", queue.Options{})
	defer st.Close()
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"no store", Options{Listen: "127.0.0.1:0"}, "store"},
		{"require_tls without cert", Options{Listen: "127.0.0.1:0", Store: st, RequireTLS: true}, "require_tls"},
		{"require_auth without file", Options{Listen: "127.0.0.1:0", Store: st, RequireAuth: true}, "auth_file"},
		{"missing auth file", Options{Listen: "127.0.0.1:0", Store: st, AuthFile: "/nonexistent/auth"}, "auth_file"},
		{"bad address", Options{Listen: "127.0.0.1:99999", Store: st}, "listen"},
	}
	for _, tt := range tests {
		if _, err := New(tt.opts); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: New = %v, want error mentioning %q", tt.name, err, tt.want)
		}
	}
}

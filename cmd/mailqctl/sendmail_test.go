package main

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"mailq/control/server"
	"mailq/queue"
)

// me is the login name sendmail defaults the sender to (from the uid, not $USER).
var me = func() string {
	u, err := user.Current()
	if err != nil {
		panic(err)
	}
	return u.Username
}()

func addresses(m *queue.Message) []string {
	var out []string
	for _, r := range m.Recipients {
		out = append(out, r.Address)
	}
	return out
}

const headerMessage = "From: Alice <a@example.com>\n" +
	"To: To One <to@example.org>\n" +
	"Cc: team: c1@example.org, =?utf-8?q?J=C3=B6rg?= <c2@example.org>;\n" +
	"Bcc: hidden@example.net\n" +
	"Subject: t\n" +
	"\n" +
	"body line\n" +
	".\n" +
	"after dot\n"

func TestSendmailExtractsRecipients(t *testing.T) {
	d := startDaemon(t, server.Options{})
	// Invoked as "sendmail" (argv[0]), finding the socket through MAILQ_CONFIG.
	r := exe(t, "sendmail", []string{"MAILQ_CONFIG=" + d.config}, headerMessage, "-t", "-oem")
	if r.code != 0 {
		t.Fatalf("sendmail -t: exit %d, stderr %q", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "ignoring option -oem") {
		t.Errorf("historic option not logged: stderr %q", r.stderr)
	}
	m := d.onlyMessage(t)
	if got, want := addresses(m), []string{"to@example.org", "c1@example.org", "c2@example.org", "hidden@example.net"}; !reflect.DeepEqual(got, want) {
		t.Errorf("recipients = %v, want %v", got, want)
	}
	if m.Sender != me+"@host.test" || m.Source != "sendmail" {
		t.Errorf("sender %q source %q, want %s@host.test from sendmail", m.Sender, m.Source, me)
	}
	body := d.body(t, m.ID)
	for _, bad := range []string{"Bcc", "hidden@", "after dot", "\n.\r\n"} {
		if strings.Contains(body, bad) {
			t.Errorf("stored message contains %q:\n%s", bad, body)
		}
	}
	for _, want := range []string{"Received: ", "\r\nDate: ", "\r\nMessage-Id: <", "@host.test>", "\r\nSubject: t\r\n", "\r\n\r\nbody line\r\n"} {
		if !strings.Contains(body, want) {
			t.Errorf("stored message lacks %q:\n%s", want, body)
		}
	}
	if n := strings.Count(body, "Received:"); n != 1 || !strings.HasPrefix(body, "Received: ") {
		t.Errorf("stored message has %d Received: fields, want exactly one, first (docs/delivery.md)", n)
	}
	if strings.Contains(strings.ReplaceAll(body, "\r\n", ""), "\n") {
		t.Errorf("stored message has bare LF line ends:\n%q", body)
	}
}

func TestSendmailEnvelopeOptions(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		input      string
		sender     string
		recipients []string
		check      func(t *testing.T, m *queue.Message, body string)
	}{
		{name: "-f and argument recipients", args: []string{"-f", "bob@example.com", "x@example.org", "y@example.org"},
			input: "Subject: s\n\nhi\n", sender: "bob@example.com", recipients: []string{"x@example.org", "y@example.org"},
			check: func(t *testing.T, m *queue.Message, body string) {
				if !strings.Contains(body, "\r\nFrom: <bob@example.com>\r\n") {
					t.Errorf("no From: added:\n%s", body)
				}
			}},
		{name: "-f attached with brackets", args: []string{"-f<bob@example.com>", "x@example.org"},
			input: "Subject: s\n\nhi\n", sender: "bob@example.com", recipients: []string{"x@example.org"}},
		{name: "-f <> null sender", args: []string{"-f", "<>", "x@example.org"},
			input: "Subject: s\n\nhi\n", sender: "", recipients: []string{"x@example.org"}},
		{name: "-f '' null sender", args: []string{"-f", "", "x@example.org"},
			input: "Subject: s\n\nhi\n", sender: "", recipients: []string{"x@example.org"}},
		{name: "-F full name", args: []string{"-F", "Bob Builder", "-f", "bob@example.com", "x@example.org"},
			input: "Subject: s\n\nhi\n", sender: "bob@example.com", recipients: []string{"x@example.org"},
			check: func(t *testing.T, m *queue.Message, body string) {
				if !strings.Contains(body, "From: \"Bob Builder\" <bob@example.com>\r\n") {
					t.Errorf("From: without the -F name:\n%s", body)
				}
			}},
		{name: "-N -R -V", args: []string{"-N", "failure,delay", "-R", "hdrs", "-V", "env-42", "--", "x@example.org"},
			input: "Subject: s\n\nhi\n", sender: me + "@host.test", recipients: []string{"x@example.org"},
			check: func(t *testing.T, m *queue.Message, body string) {
				if m.Recipients[0].Notify != "FAILURE,DELAY" || m.Ret != "HDRS" || m.EnvID != "env-42" {
					t.Errorf("notify %q ret %q envid %q", m.Recipients[0].Notify, m.Ret, m.EnvID)
				}
			}},
		{name: "lone dot ends input", args: []string{"x@example.org"},
			input: "Subject: s\n\nbefore\n.\nafter\n", sender: me + "@host.test", recipients: []string{"x@example.org"},
			check: func(t *testing.T, m *queue.Message, body string) {
				if !strings.HasSuffix(body, "\r\n\r\nbefore\r\n") {
					t.Errorf("body does not end at the dot:\n%q", body)
				}
			}},
		{name: "-i keeps the dot", args: []string{"-i", "x@example.org"},
			input: "Subject: s\n\nbefore\n.\nafter\n", sender: me + "@host.test", recipients: []string{"x@example.org"},
			check: func(t *testing.T, m *queue.Message, body string) {
				if !strings.HasSuffix(body, "\r\n\r\nbefore\r\n.\r\nafter\r\n") {
					t.Errorf("body lost the dot line:\n%q", body)
				}
			}},
		{name: "-oi clustered with -t", args: []string{"-ti", "-oi"},
			input: "To: x@example.org\n\nbefore\n.\nafter\n", sender: me + "@host.test", recipients: []string{"x@example.org"},
			check: func(t *testing.T, m *queue.Message, body string) {
				if !strings.HasSuffix(body, "before\r\n.\r\nafter\r\n") {
					t.Errorf("body lost the dot line:\n%q", body)
				}
			}},
		{name: "no header at all", args: []string{"x@example.org"},
			input: "just text\n", sender: me + "@host.test", recipients: []string{"x@example.org"},
			check: func(t *testing.T, m *queue.Message, body string) {
				if !strings.HasSuffix(body, "\r\n\r\njust text\r\n") || !strings.Contains(body, "\r\nDate: ") {
					t.Errorf("headerless message:\n%q", body)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := startDaemon(t, server.Options{})
			r := d.ctl(t, tt.input, append([]string{"--config", d.config, "sendmail"}, tt.args...)...)
			if r.code != 0 {
				t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
			}
			m := d.onlyMessage(t)
			if m.Sender != tt.sender || !reflect.DeepEqual(addresses(m), tt.recipients) {
				t.Errorf("envelope %q -> %v, want %q -> %v", m.Sender, addresses(m), tt.sender, tt.recipients)
			}
			if tt.check != nil {
				tt.check(t, m, d.body(t, m.ID))
			}
		})
	}
}

func TestSendmailFallsBackToMaildrop(t *testing.T) {
	dir := t.TempDir()
	maildrop := filepath.Join(dir, "maildrop")
	for _, sub := range []string{"tmp", "new", "failed"} {
		os.MkdirAll(filepath.Join(maildrop, sub), 0o700)
	}
	r := exe(t, "mailqctl", nil, headerMessage, "--socket", filepath.Join(dir, "down.sock"), "--maildrop", maildrop,
		"sendmail", "-t", "-i", "-f", "a@example.com", "-N", "never", "-V", "env-7")
	if r.code != 0 {
		t.Fatalf("sendmail with the daemon down: exit %d, stderr %q", r.code, r.stderr)
	}
	files, _ := os.ReadDir(filepath.Join(maildrop, "new"))
	if len(files) != 1 {
		t.Fatalf("maildrop/new holds %d files, want 1", len(files))
	}
	data, err := os.ReadFile(filepath.Join(maildrop, "new", files[0].Name()))
	if err != nil {
		t.Fatal(err)
	}
	head, msg, _ := bytes.Cut(data, []byte("\n\n"))
	want := "a@example.com ENVID=env-7\nto@example.org NOTIFY=NEVER\nc1@example.org NOTIFY=NEVER\nc2@example.org NOTIFY=NEVER\nhidden@example.net NOTIFY=NEVER"
	if string(head) != want {
		t.Errorf("envelope lines:\n%s\nwant:\n%s", head, want)
	}
	// The maildrop adds the one Received: when it takes the file in.
	if bytes.Contains(msg, []byte("Bcc")) || !bytes.Contains(msg, []byte("after dot")) || bytes.Contains(msg, []byte("Received:")) {
		t.Errorf("dropped message:\n%s", msg)
	}
	if tmp, _ := os.ReadDir(filepath.Join(maildrop, "tmp")); len(tmp) != 0 {
		t.Errorf("maildrop/tmp left with %d files", len(tmp))
	}

	// No daemon and no usable maildrop: not stored, EX_TEMPFAIL.
	r = exe(t, "mailqctl", nil, "Subject: x\n\nx\n", "--socket", filepath.Join(dir, "down.sock"), "--maildrop", filepath.Join(dir, "missing"),
		"sendmail", "x@example.org")
	if r.code != exTempFail || !strings.Contains(r.stderr, "not stored") {
		t.Errorf("no daemon, no maildrop: exit %d, stderr %q; want 75", r.code, r.stderr)
	}
}

func TestSendmailModesAndUsage(t *testing.T) {
	d := startDaemon(t, server.Options{})
	id := d.enqueue(t, "a@example.com", "b@example.org")
	if r := d.ctl(t, "", "sendmail", "-bp"); r.code != 0 || !strings.Contains(r.stdout, string(id)) {
		t.Errorf("-bp: exit %d, stdout %q", r.code, r.stdout)
	}
	if r := d.ctl(t, "", "sendmail", "-q"); r.code != 0 || !strings.Contains(r.stdout, "due now") {
		t.Errorf("-q: exit %d, stdout %q", r.code, r.stdout)
	}
	for _, args := range [][]string{{"-Z"}, {"-bs"}, {"-f"}, {"-N", "sometimes", "x@example.org"}, {}} {
		if r := d.ctl(t, "Subject: x\n\nx\n", append([]string{"sendmail"}, args...)...); r.code != exUsage {
			t.Errorf("sendmail %q: exit %d, want %d (stderr %q)", args, r.code, exUsage, r.stderr)
		}
	}
	// an invalid recipient is refused by the daemon: a data error, nothing stored
	if r := d.ctl(t, "Subject: x\n\nx\n", "sendmail", "not an address"); r.code != exDataErr {
		t.Errorf("bad recipient: exit %d, stderr %q", r.code, r.stderr)
	}
	// a message the daemon refuses says so once, not "message refused: message refused: ..."
	long := "Subject: x\n\n" + strings.Repeat("x", 3000) + "\n"
	if r := d.ctl(t, long, "sendmail", "b@example.org"); r.code != exDataErr || strings.Count(r.stderr, "message refused") != 1 {
		t.Errorf("line too long: exit %d, stderr %q; want %d and \"message refused\" once", r.code, r.stderr, exDataErr)
	}
}

func TestParseSendmailArgs(t *testing.T) {
	tests := []struct {
		args    []string
		want    sendmailOptions
		ignored []string
	}{
		{[]string{"-t", "-i"}, sendmailOptions{extractRecipients: true, ignoreDots: true, mode: 'm'}, nil},
		{[]string{"-oi", "-fme@x.org", "a@b.org"}, sendmailOptions{ignoreDots: true, sender: "me@x.org", senderSet: true, mode: 'm', recipients: []string{"a@b.org"}}, nil},
		{[]string{"-odi", "-oem", "-v", "-B8BITMIME", "-h", "10", "a@b.org"}, sendmailOptions{mode: 'm', recipients: []string{"a@b.org"}},
			[]string{"-odi", "-oem", "-v", "-B8BITMIME", "-h10"}},
		{[]string{"-bp"}, sendmailOptions{mode: 'p'}, nil},
		{[]string{"-q15m"}, sendmailOptions{mode: 'q'}, nil},
		{[]string{"-F", "Full Name", "-N", "Success,Failure", "-R", "full", "-V", "e1", "--", "-weird@b.org"},
			sendmailOptions{fullName: "Full Name", notify: "SUCCESS,FAILURE", ret: "FULL", envid: "e1", mode: 'm', recipients: []string{"-weird@b.org"}}, nil},
	}
	for _, tt := range tests {
		var ignored []string
		got, err := parseSendmailArgs(tt.args, func(o string) { ignored = append(ignored, o) })
		if err != nil || !reflect.DeepEqual(got, tt.want) || !reflect.DeepEqual(ignored, tt.ignored) {
			t.Errorf("parse %q = %+v, %v, ignored %q; want %+v, ignored %q", tt.args, got, err, ignored, tt.want, tt.ignored)
		}
	}
}

func TestLineReader(t *testing.T) {
	long := strings.Repeat("y", 200<<10)
	tests := []struct {
		in      string
		dotEnds bool
		want    string
	}{
		{"a\nb\n", true, "a\r\nb\r\n"},
		{"a\r\nb", true, "a\r\nb\r\n"},
		{"a\n.\nb\n", true, "a\r\n"},
		{"a\n.\r\nb\n", true, "a\r\n"},
		{"a\n.", true, "a\r\n"},
		{"a\n.\nb\n", false, "a\r\n.\r\nb\r\n"},
		{"a\n..\nb\n", true, "a\r\n..\r\nb\r\n"},
		{long + "\r\n.\n", true, long + "\r\n"},
		{"x" + long + ".\nz\n", true, "x" + long + ".\r\nz\r\n"},
	}
	for i, tt := range tests {
		got, err := io.ReadAll(&lineReader{br: bufio.NewReaderSize(strings.NewReader(tt.in), 4096), dotEnds: tt.dotEnds, atLineStart: true})
		if err != nil || string(got) != tt.want {
			t.Errorf("case %d: got %q (%v), want %q", i, truncate(string(got), 80), err, truncate(tt.want, 80))
		}
	}
}

package smtpproto

// Integration test against a real next hop: a private Postfix 3.7 instance
// with Cyrus SASL (sasldb), which checks AUTH for every mechanism mailq
// speaks and the DSN/SMTPUTF8/8BITMIME syntax of what mailq sends, and
// relays to an in-process go-smtp sink that records what arrived. Postfix's
// master must start as root; CI runs as root (.ci/run).

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// relayed is one message as the sink behind Postfix received it.
type relayed struct {
	from     string
	body     string // MAIL FROM BODY=
	utf8     bool   // MAIL FROM SMTPUTF8
	rcpts    []string
	orcpts   []string // RCPT TO ORCPT= decoded, "type;address"
	notifies []string
	data     string
}

type relaySink struct {
	mu   sync.Mutex
	msgs []relayed
}

func (b *relaySink) NewSession(*smtp.Conn) (smtp.Session, error) { return &relaySession{b: b}, nil }

type relaySession struct {
	b   *relaySink
	cur relayed
}

func (s *relaySession) Mail(from string, o *smtp.MailOptions) error {
	s.cur = relayed{from: from}
	if o != nil {
		s.cur.body, s.cur.utf8 = string(o.Body), o.UTF8
	}
	return nil
}

func (s *relaySession) Rcpt(to string, o *smtp.RcptOptions) error {
	s.cur.rcpts = append(s.cur.rcpts, to)
	orcpt, notify := "", ""
	if o != nil {
		if o.OriginalRecipient != "" {
			orcpt = string(o.OriginalRecipientType) + ";" + o.OriginalRecipient
		}
		for _, n := range o.Notify {
			notify += string(n) + ","
		}
	}
	s.cur.orcpts = append(s.cur.orcpts, orcpt)
	s.cur.notifies = append(s.cur.notifies, strings.TrimSuffix(notify, ","))
	return nil
}

func (s *relaySession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.data = string(b)
	s.b.mu.Lock()
	s.b.msgs = append(s.b.msgs, s.cur)
	s.b.mu.Unlock()
	return nil
}

func (s *relaySession) Reset()        {}
func (s *relaySession) Logout() error { return nil }

// waitFor returns the relayed message whose first recipient is rcpt.
func (b *relaySink) waitFor(t *testing.T, rcpt string, log func() string) relayed {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		b.mu.Lock()
		for _, m := range b.msgs {
			if len(m.rcpts) > 0 && m.rcpts[0] == rcpt {
				b.mu.Unlock()
				return m
			}
		}
		b.mu.Unlock()
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("Postfix did not relay the message for %s within 60s; its log:\n%s", rcpt, log())
	return relayed{}
}

// postfixPeer is a private Postfix instance under dir.
type postfixPeer struct {
	dir, etc string
	port     int
	log      string
}

func (p *postfixPeer) maillog() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

const (
	saslRealm    = "mailq.test"
	saslUser     = "alice"
	saslPassword = "s3cret-Pw"
)

func startPostfixSASL(t *testing.T, sinkPort int) *postfixPeer {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("the Postfix test must run as root in CI (Postfix's master starts as root)")
		}
		t.Skip("needs root: Postfix's master must start as root (CI runs this test as root)")
	}
	for _, prog := range []string{"postfix", "postconf", "saslpasswd2"} {
		needProgram(t, prog)
	}
	if _, err := os.Stat("/usr/lib/x86_64-linux-gnu/sasl2/libscram.so"); err != nil {
		if matches, _ := filepath.Glob("/usr/lib/*/sasl2/libscram.so"); len(matches) == 0 {
			t.Fatal("install libsasl2-modules (see .ci/install-peers): no Cyrus SASL SCRAM module")
		}
	}
	// Not t.TempDir: Postfix's unprivileged daemons must traverse the path
	// (0711), and postfix-script refuses to start with its queue under a
	// world-writable directory such as /tmp (it exits 1 without a word), so
	// the instance lives in /var/tmp.
	dir, err := os.MkdirTemp("/var/tmp", "mailq-postfix-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o711)
	p := &postfixPeer{dir: dir, etc: filepath.Join(dir, "etc"), log: filepath.Join(dir, "maillog"), port: freePort(t)}
	t.Cleanup(func() {
		exec.Command("postfix", "-c", p.etc, "stop").Run()
		if b, err := os.ReadFile(filepath.Join(dir, "spool", "pid", "master.pid")); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				for i := 0; i < 100 && processAlive(pid); i++ {
					time.Sleep(100 * time.Millisecond)
				}
			}
		}
		if t.Failed() {
			t.Logf("Postfix log:\n%s", p.maillog())
		}
		os.RemoveAll(dir)
	})
	run := func(name string, args ...string) {
		t.Helper()
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
	}
	for _, d := range []string{"etc/sasl", "spool", "data"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	run("cp", "-a", "/etc/postfix/.", p.etc)
	os.Remove(filepath.Join(p.etc, "makedefs.out")) // a symlink out of the directory; postfix check warns
	os.WriteFile(filepath.Join(p.etc, "main.cf"), nil, 0o644)
	run("chown", "postfix:", filepath.Join(dir, "data"))
	os.Chmod(filepath.Join(dir, "data"), 0o700)

	// The sasldb: alice's password in the realm Postfix authenticates in.
	db := filepath.Join(p.etc, "sasl", "sasldb2")
	cmd := exec.Command("saslpasswd2", "-p", "-c", "-f", db, "-u", saslRealm, saslUser)
	cmd.Stdin = strings.NewReader(saslPassword)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("saslpasswd2: %v\n%s", err, out)
	}
	run("chown", "postfix:", db)
	os.Chmod(db, 0o600)
	// Debian's Postfix reads this file, <config_directory>/sasl/smtpd.conf.
	conf := "pwcheck_method: auxprop\nauxprop_plugin: sasldb\nsasldb_path: " + db +
		"\nmech_list: PLAIN LOGIN CRAM-MD5 DIGEST-MD5 NTLM SCRAM-SHA-256\n"
	if err := os.WriteFile(filepath.Join(p.etc, "sasl", "smtpd.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}

	run("postconf", "-c", p.etc, "-e",
		"compatibility_level = 3.6",
		"config_directory = "+p.etc,
		"queue_directory = "+filepath.Join(dir, "spool"),
		"data_directory = "+filepath.Join(dir, "data"),
		"maillog_file = "+p.log,
		"myhostname = postfix.mailq.test",
		"inet_interfaces = 127.0.0.1",
		"inet_protocols = ipv4",
		"mydestination =",
		"mynetworks =",
		"relayhost = [127.0.0.1]:"+strconv.Itoa(sinkPort),
		// Only an authenticated client may relay: a message that arrives
		// at the sink proves AUTH worked.
		"smtpd_relay_restrictions = permit_sasl_authenticated, reject",
		"smtpd_sasl_auth_enable = yes",
		"smtpd_sasl_type = cyrus",
		"smtpd_sasl_path = smtpd",
		"smtpd_sasl_local_domain = "+saslRealm,
		"smtpd_sasl_security_options = noanonymous",
		"smtpd_tls_security_level = none",
		"smtp_tls_security_level = none",
		"smtputf8_enable = yes",
		"alias_maps =",
		"alias_database =",
		"smtpd_discard_ehlo_keywords =")
	run("postconf", "-c", p.etc, "-F", "*/*/chroot = n")
	run("postconf", "-c", p.etc, "-MX", "smtp/inet")
	run("postconf", "-c", p.etc, "-M", fmt.Sprintf("127.0.0.1:%d/inet = 127.0.0.1:%d inet n - n - - smtpd", p.port, p.port))
	if out, err := exec.Command("postfix", "-c", p.etc, "start").CombinedOutput(); err != nil {
		t.Fatalf("postfix start: %v\n%s\nits log:\n%s", err, out, p.maillog())
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(p.port), time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Postfix is not listening on 127.0.0.1:%d; its log:\n%s", p.port, p.maillog())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return p
}

// processAlive: signal 0 checks that pid exists without touching it.
func processAlive(pid int) bool {
	proc, err := os.FindProcess(pid)
	return err == nil && proc.Signal(syscall.Signal(0)) == nil
}

// TestPostfixCyrusSASL delivers through Postfix with every SASL mechanism
// mailq implements that Cyrus offers, then the ORCPT, SMTPUTF8 and
// 8BITMIME cases, and checks what Postfix logged and relayed.
func TestPostfixCyrusSASL(t *testing.T) {
	sink := &relaySink{}
	srv := smtp.NewServer(sink)
	srv.Domain = "sink.test"
	srv.EnableDSN, srv.EnableSMTPUTF8 = true, true
	srv.AllowInsecureAuth = true
	srv.ReadTimeout, srv.WriteTimeout = 30*time.Second, 30*time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	pf := startPostfixSASL(t, ln.Addr().(*net.TCPAddr).Port)

	route := func(mech string) *Settings {
		return &Settings{Name: "postfix", Host: "127.0.0.1", Port: pf.port, Localhost: "client.mailq.test",
			User: saslUser, Password: saslPassword, Auth: boolp(true), AuthMechanisms: mech,
			AuthXOAuth2Disable: boolp(true), DSNNotify: "FAILURE", Timeout: intp(30000)}
	}
	send := func(t *testing.T, s *Settings, env Envelope, body string) *Conn {
		t.Helper()
		c, err := Dial(context.Background(), s, DialOptions{Transcript: true})
		if err != nil {
			t.Fatalf("Dial with %s: %v\nPostfix log:\n%s", s.AuthMechanisms, err, pf.maillog())
		}
		res, err := c.Send(context.Background(), env, strings.NewReader(body))
		if err != nil || !res.Recipients[0].Delivered {
			t.Fatalf("Send: %v (%+v)\ntranscript:\n%s", err, res, strings.Join(c.Transcript(), "\n"))
		}
		return c
	}

	mechs := []string{"PLAIN", "LOGIN", "CRAM-MD5", "DIGEST-MD5", "NTLM", "SCRAM-SHA-256"}
	for _, mech := range mechs {
		t.Run(mech, func(t *testing.T) {
			rcpt := "to-" + strings.ToLower(mech) + "@dst.test"
			c := send(t, route(mech), env1("sender@src.test", rcpt), "Subject: "+mech+"\r\n\r\nauthenticated with "+mech+"\r\n")
			if !c.Authenticated() {
				t.Errorf("not authenticated")
			}
			tr := strings.Join(c.Transcript(), "\n")
			if !strings.Contains(tr, "AUTH "+mech+" <redacted>") || strings.Contains(tr, saslPassword) {
				t.Errorf("transcript does not show a redacted AUTH %s:\n%s", mech, tr)
			}
			c.Close()
			m := sink.waitFor(t, rcpt, pf.maillog)
			if m.from != "sender@src.test" || !strings.Contains(m.data, "authenticated with "+mech) {
				t.Errorf("relayed from %q: %q", m.from, m.data)
			}
			if log := pf.maillog(); !strings.Contains(log, "sasl_method="+mech+", sasl_username="+saslUser) {
				t.Errorf("Postfix did not log sasl_method=%s, sasl_username=%s:\n%s", mech, saslUser, log)
			}
		})
	}

	t.Run("ORCPT plus-address", func(t *testing.T) {
		// Stored decoded; Postfix answers a raw "+" ORCPT with
		// 501 5.5.4 Bad ORCPT parameter syntax.
		env := Envelope{From: "sender@src.test", Recipients: []Recipient{{Address: "bob+tag@dst.test", Notify: "FAILURE", ORCPT: "rfc822;bob+tag@dst.test"}}}
		send(t, route("PLAIN"), env, "Subject: orcpt\r\n\r\nplus address\r\n").Close()
		m := sink.waitFor(t, "bob+tag@dst.test", pf.maillog)
		if len(m.orcpts) != 1 || !strings.EqualFold(m.orcpts[0], "rfc822;bob+tag@dst.test") || m.notifies[0] != "FAILURE" {
			t.Errorf("relayed ORCPT %q NOTIFY %q, want rfc822;bob+tag@dst.test and FAILURE", m.orcpts, m.notifies)
		}
		// Postfix logs the delivery once the sink's reply is back, which
		// may be just after the sink has the message: wait for the line.
		logged := func(log string) bool {
			return strings.Contains(log, "orig_to=<bob+tag@dst.test>") || strings.Contains(log, "to=<bob+tag@dst.test>")
		}
		deadline := time.Now().Add(30 * time.Second)
		for !logged(pf.maillog()) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if log := pf.maillog(); !logged(log) {
			t.Errorf("Postfix did not log the recipient within 30s:\n%s", log)
		}
	})

	t.Run("SMTPUTF8", func(t *testing.T) {
		env := env1("sender@src.test", "utf8@dst.test")
		env.SMTPUTF8 = true // a UTF-8 Subject (intake decides it from the header section)
		send(t, route("PLAIN"), env, "Subject: Grüße aus Köln\r\n\r\nhallo\r\n").Close()
		m := sink.waitFor(t, "utf8@dst.test", pf.maillog)
		if !m.utf8 || !strings.Contains(m.data, "Subject: Grüße aus Köln") {
			t.Errorf("relayed with SMTPUTF8 %v, data %q", m.utf8, m.data)
		}
	})

	t.Run("8BITMIME", func(t *testing.T) {
		env := env1("sender@src.test", "eightbit@dst.test")
		env.EightBit = true
		send(t, route("PLAIN"), env, "Subject: 8bit\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGrüße\r\n").Close()
		m := sink.waitFor(t, "eightbit@dst.test", pf.maillog)
		if m.body != "8BITMIME" || !strings.Contains(m.data, "Grüße") {
			t.Errorf("relayed with BODY=%q, data %q", m.body, m.data)
		}
	})
}

package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"mailq/events"
	"mailq/events/eventstest"
)

// evSink is a go-smtp next hop for the event tests. By local part:
// "flaky" gets 450 the first time and 250 after, "gone" 550 5.1.1, "late"
// always 450; everything else is accepted. It counts RCPTs per address.
type evSink struct {
	port  int
	mu    sync.Mutex
	rcpts map[string]int
}

type evSession struct{ s *evSink }

func (e *evSession) Reset()                               {}
func (e *evSession) Logout() error                        { return nil }
func (e *evSession) Mail(string, *smtp.MailOptions) error { return nil }
func (e *evSession) Data(r io.Reader) error               { _, err := io.Copy(io.Discard, r); return err }
func (e *evSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	e.s.mu.Lock()
	e.s.rcpts[to]++
	n := e.s.rcpts[to]
	e.s.mu.Unlock()
	switch local, _, _ := strings.Cut(to, "@"); {
	case local == "flaky" && n == 1, local == "late":
		return &smtp.SMTPError{Code: 450, EnhancedCode: smtp.EnhancedCode{4, 2, 1}, Message: "try again later"}
	case local == "gone":
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user here"}
	}
	return nil
}

func startEvSink(t *testing.T) *evSink {
	s := &evSink{rcpts: map[string]int{}}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &evSession{s: s}, nil }))
	srv.Domain = "events.sink.test"
	s.port = serveSink(t, srv)
	return s
}

func (s *evSink) rcptsTo(addr string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rcpts[addr]
}

// eventsConfig is a daemon with routes for dest.test (retry after 1s),
// slow.test (3s lifetime, delay warning after 1s), parked.test (nothing
// listens; retry in an hour) and notices.test (the senders, so DSNs have
// somewhere to go), plus the extra TOML given.
func eventsConfig(t *testing.T, dir string, sinkPort int, extra string) string {
	t.Helper()
	return testConfig(t, dir, fmt.Sprintf(`hostname = "mailq.test"
%s
[metrics]
listen = "127.0.0.1:0"
[retry]
initial = "1s"
jitter = 0.0
max_interval = "2s"
delay_warning = "1h"
[[route]]
name = "dest"
domains = ["dest.test", "notices.test"]
host = "127.0.0.1"
port = %[2]d
[[route]]
name = "slow"
domains = ["slow.test"]
host = "127.0.0.1"
port = %[2]d
[route.retry]
max_lifetime = "3s"
delay_warning = "1s"
[[route]]
name = "parked"
domains = ["parked.test"]
host = "127.0.0.1"
port = 1
[route.retry]
initial = "1h"
max_interval = "1h"
`, extra, sinkPort))
}

func writeSecret(t *testing.T, dir, name, secret string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// ctlEvents reads `mailqctl events --json` (the whole log).
func ctlEvents(t *testing.T, cfg string) []events.Event {
	t.Helper()
	var out []events.Event
	sc := bufio.NewScanner(strings.NewReader(mustCtl(t, cfg, "", "events", "--json")))
	for sc.Scan() {
		var e events.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("mailqctl events --json line %q: %v", sc.Text(), err)
		}
		out = append(out, e)
	}
	return out
}

// typesOf lists, per queue id and recipient, the event types in id order.
func typesOf(evs map[uint64]events.Event, ids map[string]bool) map[string]string {
	var sorted []events.Event
	for _, e := range evs {
		sorted = append(sorted, e)
	}
	for i := range sorted { // insertion sort by id: small sets
		for j := i; j > 0 && sorted[j].ID < sorted[j-1].ID; j-- {
			sorted[j], sorted[j-1] = sorted[j-1], sorted[j]
		}
	}
	out := map[string]string{}
	for _, e := range sorted {
		if ids[e.QueueID] {
			k := e.Recipient
			out[k] = strings.TrimPrefix(out[k]+" "+string(e.Type), " ")
		}
	}
	return out
}

// TestWebhookEventsForEveryOutcome runs the daemon with an HTTPS webhook
// (certificate from a test CA, every event) and a plain HTTP one (failures
// only), the HTTP one down at first. Every outcome of a message set —
// delivered, 450 then 250, 550, expired after a delay warning, held then
// deleted, bounced by the operator — yields exactly the expected events,
// signed, in order per message; the HTTP receiver, once back, gets every
// event it missed. Then the suppression list: the 550 5.1.1 address is
// bounced without reaching the sink, `remove` lets it through.
func TestWebhookEventsForEveryOutcome(t *testing.T) {
	dir := t.TempDir()
	sink := startEvSink(t)
	secure := eventstest.NewHTTPS(t, []byte("https-secret"))
	plain := eventstest.NewHTTP(t, []byte("http-secret"))
	plain.SetDown(true)
	cfg := eventsConfig(t, dir, sink.port, "")
	text, _ := os.ReadFile(cfg)
	text = append(text, fmt.Sprintf(`
[[webhook]]
name = "secure"
url = %q
secret_file = %q
ca_file = %q
[[webhook]]
name = "plain"
url = %q
events = ["bounced", "expired", "deleted"]
secret_file = %q
`, secure.URL, writeSecret(t, dir, "secure.secret", "https-secret"), secure.CAFile,
		plain.URL, writeSecret(t, dir, "plain.secret", "http-secret"))...)
	if err := os.WriteFile(cfg, text, 0o600); err != nil {
		t.Fatal(err)
	}
	d, metricsAddr := startOpsDaemon(t, cfg)
	keepLogs(d)
	defer d.stop(t)

	ids := map[string]bool{}
	send := func(to string) string {
		msg := fmt.Sprintf("From: <app@notices.test>\r\nTo: <%s>\r\nMessage-ID: <%s@app.test>\r\nSubject: events\r\n\r\nHello.\r\n", to, to)
		id := strings.TrimSpace(mustCtl(t, cfg, msg, "enqueue", "--from", "app@notices.test", "--to", to, "--envid", "app-"+to))
		ids[id] = true
		return id
	}
	send("ok@dest.test")
	send("flaky@dest.test")
	send("gone@dest.test")
	send("late@slow.test")
	held := send("held@parked.test")
	mustCtl(t, cfg, "", "hold", held)
	mustCtl(t, cfg, "", "delete", held)
	opBounce := send("bounced@parked.test")
	mustCtl(t, cfg, "", "bounce", opBounce)

	want := map[string]string{
		"ok@dest.test":        "queued delivered",
		"flaky@dest.test":     "queued deferred delivered",
		"gone@dest.test":      "queued bounced",
		"late@slow.test":      "queued deferred delayed deferred expired",
		"held@parked.test":    "queued deleted",
		"bounced@parked.test": "queued bounced",
	}
	// parked.test refuses connections: a message may be tried once before
	// the hold or the bounce reaches it.
	normalize := func(got map[string]string) map[string]string {
		for _, k := range []string{"held@parked.test", "bounced@parked.test"} {
			got[k] = strings.Replace(got[k], "queued deferred ", "queued ", 1)
		}
		// How many times late@ was retried before its lifetime ran out
		// depends on timing; its first and last events do not.
		if v := got["late@slow.test"]; strings.HasPrefix(v, "queued deferred") && strings.Contains(v, " delayed ") && strings.HasSuffix(v, " expired") {
			got["late@slow.test"] = want["late@slow.test"]
		}
		return got
	}
	secure.WaitFor(t, 60*time.Second, "every outcome's events", func(m map[uint64]events.Event) bool {
		got := normalize(typesOf(m, ids))
		return fmt.Sprint(got) == fmt.Sprint(want)
	})

	byID, dups := secure.Distinct()
	for _, e := range byID {
		if !ids[e.QueueID] {
			continue
		}
		if e.Sender != "app@notices.test" || e.MessageID != "<"+e.Recipient+"@app.test>" || e.EnvID != "app-"+e.Recipient || e.Time.IsZero() {
			t.Errorf("event %d lacks sender, Message-ID, ENVID or time: %+v", e.ID, e)
		}
		switch {
		case e.Recipient == "gone@dest.test" && e.Type == events.Bounced:
			if e.Reply == nil || e.Reply.Code != 550 || e.Reply.Enhanced != "5.1.1" || e.Route != "dest" || e.Attempt != 1 || !strings.HasPrefix(e.Remote, "127.0.0.1:") {
				t.Errorf("bounce event = %+v, want the 550 5.1.1 reply on route dest, attempt 1", e)
			}
		case e.Recipient == "flaky@dest.test" && e.Type == events.Delivered:
			if e.Attempt != 2 || e.Reply == nil || e.Reply.Code != 250 {
				t.Errorf("delivered-after-450 event = %+v, want attempt 2 with a 250 reply", e)
			}
		case e.Recipient == "bounced@parked.test" && e.Type == events.Bounced:
			if e.Reason != "operator" {
				t.Errorf("operator bounce event reason = %q, want operator", e.Reason)
			}
		case e.Type == events.Expired:
			if e.Reply == nil || e.Reply.Code != 450 {
				t.Errorf("expired event = %+v, want the last 450 reply", e)
			}
		}
	}
	checkReceiver(t, "https", secure)
	if dups != 0 {
		t.Errorf("https receiver: %d duplicates in a run without a crash", dups)
	}

	// The plain receiver was down all along: its failures show in
	// `mailqctl webhooks` and the metrics, then it gets everything.
	var st []events.WebhookStatus
	if err := json.Unmarshal([]byte(mustCtl(t, cfg, "", "webhooks", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if len(st) != 2 || st[1].Name != "plain" || st[1].Failures == 0 || !strings.Contains(st[1].LastError, "503") || st[1].Pending == 0 {
		t.Fatalf("mailqctl webhooks while plain is down: %+v; want failures with a 503 and events pending", st)
	}
	fams := scrape(t, metricsAddr)
	if metricValue(fams, "mailq_webhook_posts_total", "result=error", "webhook=plain") == 0 ||
		metricValue(fams, "mailq_webhook_posts_total", "result=ok", "webhook=secure") == 0 ||
		metricValue(fams, "mailq_webhook_pending", "webhook=plain") == 0 {
		t.Errorf("webhook metrics do not show the failures, the posts and the pending events")
	}
	checkMetricNames(t, fams)
	plain.SetDown(false)
	wantPlain := map[string]string{
		"gone@dest.test": "bounced", "late@slow.test": "expired",
		"held@parked.test": "deleted", "bounced@parked.test": "bounced",
	}
	plain.WaitFor(t, 60*time.Second, "the failure events once back", func(m map[uint64]events.Event) bool {
		return fmt.Sprint(typesOf(m, ids)) == fmt.Sprint(wantPlain)
	})
	checkReceiver(t, "http", plain)

	// The event log over the control socket holds the same events.
	logged := map[uint64]events.Event{}
	for _, e := range ctlEvents(t, cfg) {
		logged[e.ID] = e
	}
	if got := normalize(typesOf(logged, ids)); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("mailqctl events: %v, want %v", got, want)
	}

	// Suppression: gone@ is on the list; the next message to it is bounced
	// without an RCPT at the sink; after remove it goes out again.
	var entry struct {
		Address string             `json:"address"`
		Reply   struct{ Code int } `json:"reply"`
	}
	if err := json.Unmarshal([]byte(mustCtl(t, cfg, "", "suppression", "check", "gone@dest.test", "--json")), &entry); err != nil || entry.Reply.Code != 550 {
		t.Fatalf("suppression check: %+v, %v", entry, err)
	}
	if r := runCtl(t, buildMailqctl(t), cfg, "", "suppression", "check", "ok@dest.test"); r.code != 1 || !strings.Contains(r.stdout, "not suppressed") {
		t.Errorf("suppression check of a good address: exit %d, %q", r.code, r.stdout)
	}
	before := sink.rcptsTo("gone@dest.test")
	again := send("gone@dest.test")
	secure.WaitFor(t, 30*time.Second, "the suppressed bounce", func(m map[uint64]events.Event) bool {
		for _, e := range m {
			if e.QueueID == again && e.Type == events.Bounced {
				return e.Reason == "suppressed" && e.Reply != nil && e.Reply.Enhanced == "5.1.1" &&
					strings.HasPrefix(e.Reply.Text, "suppressed: 550 5.1.1")
			}
		}
		return false
	})
	if n := sink.rcptsTo("gone@dest.test"); n != before {
		t.Fatalf("the suppressed address reached the sink (%d RCPTs, was %d)", n, before)
	}
	mustCtl(t, cfg, "", "suppression", "remove", "gone@dest.test")
	last := send("gone@dest.test")
	eventually(t, 30*time.Second, "a message after remove to reach the sink", func() (bool, string) {
		return sink.rcptsTo("gone@dest.test") == before+1, fmt.Sprint(sink.rcptsTo("gone@dest.test"))
	})
	// The sink refuses gone@ again (550): its bounce, then the notice to
	// the sender, queued and delivered, are logged after the sink's reply.
	// Wait for the last of them, so the two reads of the log below see
	// the same events.
	secure.WaitFor(t, 30*time.Second, "the bounce after remove and its notice delivered", func(m map[uint64]events.Event) bool {
		var bounce uint64
		for id, e := range m {
			if e.QueueID == last && e.Type == events.Bounced {
				bounce = id
			}
		}
		for id, e := range m {
			if bounce != 0 && id > bounce && e.Recipient == "app@notices.test" && e.Type == events.Delivered {
				return true
			}
		}
		return false
	})
	if out := mustCtl(t, cfg, "", "events", "--since", "1h"); strings.Count(out, "\n") != len(ctlEvents(t, cfg)) || !strings.Contains(out, "bounced") {
		t.Errorf("events --since 1h does not print the whole log:\n%s", out)
	}
	if out := mustCtl(t, cfg, "", "events", "--since", time.Now().Add(time.Hour).UTC().Format(time.RFC3339)); out != "" {
		t.Errorf("events --since an hour ahead printed %q", out)
	}
	followEvents(t, cfg, func() string { return send("follow@dest.test") })
	mustCtl(t, cfg, "", "suppression", "add", "manual@dest.test", "--reason", "asked to stop")
	if out := mustCtl(t, cfg, "", "suppression", "list"); !strings.Contains(out, "manual@dest.test") || !strings.Contains(out, "asked to stop") {
		t.Errorf("suppression list after add: %q", out)
	}
}

// followEvents runs `mailqctl events --follow --json`, makes a message
// with makeMessage, waits for its queued and delivered events on the
// stream, then interrupts mailqctl, which must exit 0.
func followEvents(t *testing.T, cfg string, makeMessage func() string) {
	t.Helper()
	cmd := exec.Command(buildMailqctl(t), "events", "--follow", "--json", "--since", "1h")
	cmd.Env = append(os.Environ(), "MAILQ_CONFIG="+cfg)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan events.Event, 100)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var e events.Event
			if json.Unmarshal(sc.Bytes(), &e) == nil {
				lines <- e
			}
		}
		close(lines)
	}()
	// --since reaches back before the message exists, so the events are
	// seen however late the follower connects; other messages' are skipped.
	id := makeMessage()
	var got []string
	timeout := time.After(30 * time.Second)
	for len(got) < 2 {
		select {
		case e, ok := <-lines:
			if !ok {
				t.Fatalf("events --follow ended; got %v", got)
			}
			if e.QueueID == id {
				got = append(got, string(e.Type))
			}
		case <-timeout:
			t.Fatalf("events --follow: saw %v for %s within 30s, want queued and delivered", got, id)
		}
	}
	if fmt.Sprint(got) != "[queued delivered]" {
		t.Errorf("events --follow for %s: %v", id, got)
	}
	cmd.Process.Signal(os.Interrupt)
	if err := cmd.Wait(); err != nil {
		t.Errorf("events --follow after SIGINT: %v, want exit 0", err)
	}
}

func checkReceiver(t *testing.T, name string, r *eventstest.Receiver) {
	t.Helper()
	for _, p := range r.Problems() {
		t.Errorf("%s receiver: %s", name, p)
	}
	for _, p := range r.OrderProblems() {
		t.Errorf("%s receiver: %s", name, p)
	}
}

// TestWebhookEventsSurviveKill9: the daemon is killed with SIGKILL while
// posting to a slow receiver, with most outcomes recorded and not posted;
// after a restart the receiver has every event of the log (duplicates
// allowed, counted), in order per message.
func TestWebhookEventsSurviveKill9(t *testing.T) {
	dir := t.TempDir()
	sink := startEvSink(t)
	r := eventstest.NewHTTP(t, []byte("k"))
	r.SetDown(true) // until every outcome is recorded

	cfg := eventsConfig(t, dir, sink.port, "")
	text, _ := os.ReadFile(cfg)
	text = append(text, fmt.Sprintf("[[webhook]]\nurl = %q\nsecret_file = %q\nworkers = 2\n", r.URL, writeSecret(t, dir, "s", "k"))...)
	os.WriteFile(cfg, text, 0o600)

	d, _ := startOpsDaemon(t, cfg)
	keepLogs(d)
	const n = 40
	for i := range n {
		enqueue(t, cfg, "", fmt.Sprintf("r%d@dest.test", i)) // null sender: no DSNs
	}
	eventually(t, 30*time.Second, "every outcome recorded", func() (bool, string) {
		got := 0
		for _, e := range ctlEvents(t, cfg) {
			if e.Type == events.Delivered {
				got++
			}
		}
		return got == n, fmt.Sprintf("%d delivered events", got)
	})
	// Up again but slow (2 workers: 10 posts a second): killed while
	// posting, with most events recorded and not yet posted.
	r.SetDelay(200 * time.Millisecond)
	r.SetDown(false)
	eventually(t, 30*time.Second, "some events posted", func() (bool, string) {
		return len(r.Received()) >= 10, fmt.Sprint(len(r.Received()))
	})
	posted := len(r.Received())
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		t.Fatal("mailq did not die within 10s of SIGKILL")
	}
	d2, _ := startOpsDaemon(t, cfg)
	keepLogs(d2)
	defer d2.stop(t)
	logged := ctlEvents(t, cfg)
	if len(logged) != 2*n {
		t.Fatalf("the log holds %d events, want %d (queued and delivered per message)", len(logged), 2*n)
	}
	r.SetDelay(0)
	r.WaitFor(t, 60*time.Second, "every logged event after the restart", func(m map[uint64]events.Event) bool {
		for _, e := range logged {
			if _, ok := m[e.ID]; !ok {
				return false
			}
		}
		return true
	})
	checkReceiver(t, "http", r)
	_, dups := r.Distinct()
	t.Logf("kill -9 with %d of %d events posted: every event arrived after the restart, %d duplicate posts", posted, 2*n, dups)
}

// TestSuppressionRefusedAtRCPT: with refuse_at_rcpt, a suppressed address
// is refused at SMTP RCPT with 550 5.1.1, so the submitting application
// learns at once; other recipients are taken.
func TestSuppressionRefusedAtRCPT(t *testing.T) {
	dir := t.TempDir()
	sink := startEvSink(t)
	cfg := eventsConfig(t, dir, sink.port, `submission = [{listen = "127.0.0.1:0"}]`)
	text, _ := os.ReadFile(cfg)
	text = []byte(strings.Replace(string(text), "submission = []\n", "", 1))
	text = append(text, "[suppression]\nrefuse_at_rcpt = true\n"...)
	os.WriteFile(cfg, text, 0o600)
	d := startDaemon(t, cfg)
	_, before := d.waitFor(t, "ready", 20*time.Second)
	keepLogs(d)
	defer d.stop(t)
	var addr string
	for _, l := range before {
		if l["message"] == "SMTP submission listening" {
			addr = fmt.Sprint(l["listen"])
		}
	}
	mustCtl(t, cfg, "", "suppression", "add", "gone@dest.test")
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("app@notices.test", nil); err != nil {
		t.Fatal(err)
	}
	err = c.Rcpt("gone@dest.test", nil)
	se, ok := err.(*smtp.SMTPError)
	if !ok || se.Code != 550 || se.EnhancedCode != (smtp.EnhancedCode{5, 1, 1}) || !strings.Contains(se.Message, "suppressed") {
		t.Fatalf("RCPT to a suppressed address: %v, want 550 5.1.1 suppressed", err)
	}
	if err := c.Rcpt("ok@dest.test", nil); err != nil {
		t.Fatalf("RCPT to a good address: %v", err)
	}
}

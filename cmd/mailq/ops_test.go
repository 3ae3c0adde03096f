package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/rs/zerolog"

	"mailq/queue"
	"mailq/queue/boltstore"
)

// This file runs the daemon binary as an operator would (issue 7): real
// mailqctl, a go-smtp next hop, /metrics scraped over HTTP, SIGHUP.
// Its helpers (the go-smtp sink, mailqctl, the log book, polling) are
// shared by tour_test.go and sendmail_daemon_test.go.

// opsSink is an in-process emersion/go-smtp next hop. Unless it accepts
// everything, a recipient whose local part starts with "defer" gets 450
// 4.2.1 (mailq defers it) and one starting with "bounce" gets 550 5.1.1
// (mailq bounces it); the rest are accepted and kept.
type opsSink struct {
	name      string
	port      int
	acceptAll bool

	mu   sync.Mutex
	msgs []sinkMessage
}

// sinkMessage is one accepted transaction, with the RFC 3461 parameters
// the client sent (the sink offers DSN).
type sinkMessage struct {
	From   string
	To     []string
	Data   string
	Ret    string            // RET=
	EnvID  string            // ENVID=
	Notify map[string]string // recipient → NOTIFY=, comma separated
}

type opsSession struct {
	s   *opsSink
	msg sinkMessage
}

func (s *opsSession) Reset()        { s.msg = sinkMessage{} }
func (s *opsSession) Logout() error { return nil }
func (s *opsSession) Mail(from string, opts *smtp.MailOptions) error {
	s.msg = sinkMessage{From: from, Notify: map[string]string{}}
	if opts != nil {
		s.msg.Ret, s.msg.EnvID = string(opts.Return), opts.EnvelopeID
	}
	return nil
}
func (s *opsSession) Rcpt(to string, opts *smtp.RcptOptions) error {
	switch {
	case s.s.acceptAll:
	case strings.HasPrefix(to, "defer"):
		return &smtp.SMTPError{Code: 450, EnhancedCode: smtp.EnhancedCode{4, 2, 1}, Message: "mailbox busy, try later"}
	case strings.HasPrefix(to, "bounce"):
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user here"}
	}
	s.msg.To = append(s.msg.To, to)
	if opts != nil && len(opts.Notify) > 0 {
		var n []string
		for _, v := range opts.Notify {
			n = append(n, string(v))
		}
		s.msg.Notify[to] = strings.Join(n, ",")
	}
	return nil
}
func (s *opsSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.s.mu.Lock()
	m := s.msg
	m.To = append([]string(nil), m.To...)
	m.Data = string(b)
	s.s.msgs = append(s.s.msgs, m)
	s.s.mu.Unlock()
	return nil
}

// startOpsSink serves go-smtp on 127.0.0.1, on a port of its own.
func startOpsSink(t *testing.T, name string, acceptAll bool) *opsSink {
	t.Helper()
	s := &opsSink{name: name, acceptAll: acceptAll}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &opsSession{s: s}, nil
	}))
	srv.Domain = name + ".sink.test"
	srv.EnableDSN = true
	s.port = serveSink(t, srv)
	return s
}

// serveSink serves a test SMTP server on a loopback port of its own until
// the test ends, and returns the port.
func serveSink(t *testing.T, srv *smtp.Server) int {
	t.Helper()
	srv.ReadTimeout = 30 * time.Second
	srv.WriteTimeout = 30 * time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("sink %s: listen on loopback: %v", srv.Domain, err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// messagesTo returns the messages this sink accepted for rcpt.
func (s *opsSink) messagesTo(rcpt string) []sinkMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []sinkMessage
	for _, m := range s.msgs {
		for _, to := range m.To {
			if to == rcpt {
				out = append(out, m)
			}
		}
	}
	return out
}

// sinkRoute is a [retry] and one catch-all route to port. The retry policy
// waits an hour, so a deferred message stays deferred for the whole test
// unless the test retries it.
func sinkRoute(port int) string {
	return fmt.Sprintf(`hostname = "mailq.test"
[retry]
initial = "1h"
jitter = 0.0
[[route]]
name = "sink"
domains = ["*"]
host = "127.0.0.1"
port = %d
connectiontimeout = 5000
timeout = 10000
`, port)
}

var (
	ctlOnce sync.Once
	ctlPath string
	ctlErr  error
	ctlDir  string
)

// buildMailqctl builds cmd/mailqctl once per test run, beside the daemon
// that buildMailq built (so TestMain's cleanup removes it too).
func buildMailqctl(t *testing.T) string {
	t.Helper()
	buildMailq(t)
	ctlOnce.Do(func() {
		ctlDir = filepath.Dir(binPath)
		ctlPath = filepath.Join(ctlDir, "mailqctl")
		// As the Makefile builds it: static (CGO_ENABLED=0).
		build := exec.Command("go", "build", "-o", ctlPath, "../mailqctl")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		out, err := build.CombinedOutput()
		if err != nil {
			ctlErr = fmt.Errorf("go build ../mailqctl: %v\n%s", err, out)
		}
	})
	if ctlErr != nil {
		t.Fatal(ctlErr)
	}
	return ctlPath
}

// ctlResult is one mailqctl run.
type ctlResult struct {
	stdout, stderr string
	code           int
}

// runCtl runs bin (mailqctl, or a link to it) with MAILQ_CONFIG=configPath.
func runCtl(t *testing.T, bin, configPath, stdin string, args ...string) ctlResult {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "MAILQ_CONFIG="+configPath)
	return runCmd(t, cmd, stdin)
}

// runCmd runs a prepared command with stdin and collects its output.
func runCmd(t *testing.T, cmd *exec.Cmd, stdin string) ctlResult {
	t.Helper()
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := exitCode(err)
	if code < 0 {
		t.Fatalf("%s %v: %v", filepath.Base(cmd.Path), cmd.Args[1:], err)
	}
	return ctlResult{stdout.String(), stderr.String(), code}
}

// mustCtl is runCtl that fails the test unless mailqctl exits 0.
func mustCtl(t *testing.T, configPath, stdin string, args ...string) string {
	t.Helper()
	r := runCtl(t, buildMailqctl(t), configPath, stdin, args...)
	if r.code != 0 {
		t.Fatalf("mailqctl %v: exit %d\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// enqueue submits a small message with mailqctl enqueue and returns its id.
func enqueue(t *testing.T, configPath, from string, to ...string) string {
	t.Helper()
	args := []string{"enqueue", "--from", from}
	for _, rc := range to {
		args = append(args, "--to", rc)
	}
	msg := fmt.Sprintf("From: <%s>\r\nTo: <%s>\r\nSubject: ops test\r\n\r\nHello.\r\n", from, to[0])
	id := strings.TrimSpace(mustCtl(t, configPath, msg, args...))
	if id == "" || strings.ContainsAny(id, " \n") {
		t.Fatalf("mailqctl enqueue printed %q, want only an id", id)
	}
	return id
}

// shownMessage is the part of `mailqctl show --json` the tests read.
type shownMessage struct {
	ID         string `json:"id"`
	Status     string `json:"status"`
	Sender     string `json:"sender"`
	Envid      string `json:"envid"`
	Ret        string `json:"ret"`
	Recipients []struct {
		Address string `json:"address"`
		State   string `json:"state"`
		Notify  string `json:"notify"`
	} `json:"recipients"`
	Attempts []struct {
		Route  string `json:"route"`
		Remote string `json:"remote"`
	} `json:"attempts"`
}

func showMessage(t *testing.T, configPath, id string) shownMessage {
	t.Helper()
	var m shownMessage
	out := mustCtl(t, configPath, "", "show", id, "--json")
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("mailqctl show %s --json: %v\n%s", id, err, out)
	}
	return m
}

// eventually polls cond until it holds or timeout passes; cond returns a
// description of what it saw, for the failure message.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, saw := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; last saw: %s", what, timeout, saw)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// logBook keeps every log line of a running daemon, so the daemon never
// blocks on a full stderr pipe while a test is busy elsewhere.
type logBook struct {
	mu    sync.Mutex
	lines []map[string]any
}

// keepLogs reads d's log lines from now on. d.waitFor must not be used
// after it (the lines go to the book instead).
func keepLogs(d *daemonProc) *logBook {
	b := &logBook{}
	go func() {
		for l := range d.lines {
			b.mu.Lock()
			b.lines = append(b.lines, l)
			b.mu.Unlock()
		}
	}()
	return b
}

// mark is the number of lines so far; find(from=mark) looks only later.
func (b *logBook) mark() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.lines)
}

// waitFor returns the first line at or after from whose message is msg
// and that has every field of want.
func (b *logBook) waitFor(t *testing.T, from int, msg string, want map[string]any, timeout time.Duration) map[string]any {
	t.Helper()
	var found map[string]any
	eventually(t, timeout, fmt.Sprintf("log line %q %v", msg, want), func() (bool, string) {
		b.mu.Lock()
		defer b.mu.Unlock()
	lines:
		for _, l := range b.lines[min(from, len(b.lines)):] {
			if l["message"] != msg {
				continue
			}
			for k, v := range want {
				if fmt.Sprint(l[k]) != fmt.Sprint(v) {
					continue lines
				}
			}
			found = l
			return true, ""
		}
		return false, fmt.Sprintf("%d lines; last: %v", len(b.lines), b.lines[max(len(b.lines)-5, 0):])
	})
	return found
}

// startOpsDaemon starts mailq on config and waits for ready; it returns
// the metrics address when [metrics] listen is set.
func startOpsDaemon(t *testing.T, configPath string) (*daemonProc, string) {
	t.Helper()
	d := startDaemon(t, configPath)
	_, before := d.waitFor(t, "ready", 20*time.Second)
	var addr string
	for _, l := range before {
		if l["message"] == "serving Prometheus metrics on /metrics" {
			addr = fmt.Sprint(l["listen"])
		}
	}
	return d, addr
}

// scrape fetches /metrics and parses it with the Prometheus text parser
// (legacy name validation: every name must match [a-zA-Z_:][a-zA-Z0-9_:]*).
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape %s: %v", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("scrape %s: %s\n%s", addr, resp.Status, b)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics is not valid Prometheus text: %v", err)
	}
	return families
}

// metricValue is the value of the series of family name whose labels are
// exactly labels ("k=v" pairs); 0 when there is no such series yet (a
// counter vector shows a label set only once it was incremented).
func metricValue(families map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f := families[name]
	if f == nil {
		return 0
	}
	for _, m := range f.GetMetric() {
		var got []string
		for _, lp := range m.GetLabel() {
			got = append(got, lp.GetName()+"="+lp.GetValue())
		}
		if strings.Join(got, ",") != strings.Join(labels, ",") {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return 0
}

// series names one series for the delta table.
type series struct {
	name   string
	labels []string
}

func (s series) String() string { return s.name + "{" + strings.Join(s.labels, ",") + "}" }

// TestMetricsMoveWithDeliveries delivers, defers and bounces through the
// real daemon and checks each counter and gauge moved by exactly what
// happened, and that every exported name follows Prometheus conventions.
func TestMetricsMoveWithDeliveries(t *testing.T) {
	sink := startOpsSink(t, "a", false)
	dir := t.TempDir()
	cfg := testConfig(t, dir, sinkRoute(sink.port)+"[metrics]\nlisten = \"127.0.0.1:0\"\n")
	d, addr := startOpsDaemon(t, cfg)
	logs := keepLogs(d)
	if addr == "" {
		t.Fatal("no \"serving Prometheus metrics on /metrics\" line before ready")
	}
	before := scrape(t, addr)

	delivered := enqueue(t, cfg, "app@client.test", "one@dest.test", "two@dest.test")
	deferred := enqueue(t, cfg, "app@client.test", "defer-me@dest.test")
	bounced := enqueue(t, cfg, "app@client.test", "bounce-me@dest.test")

	// Settled: the two finished messages and the bounce's DSN (sent to
	// app@client.test through the same route) are done, one is deferred.
	var after map[string]*dto.MetricFamily
	eventually(t, 20*time.Second, "queue settles (3 done, 1 deferred, nothing queued or active)", func() (bool, string) {
		after = scrape(t, addr)
		var saw []string
		for _, st := range []string{"queued", "active", "deferred", "done"} {
			saw = append(saw, fmt.Sprintf("%s=%v", st, metricValue(after, "mailq_queue_messages", "status="+st)))
		}
		ok := metricValue(after, "mailq_queue_messages", "status=done") == 3 &&
			metricValue(after, "mailq_queue_messages", "status=deferred") == 1 &&
			metricValue(after, "mailq_queue_messages", "status=queued") == 0 &&
			metricValue(after, "mailq_queue_messages", "status=active") == 0 &&
			metricValue(after, "mailq_dsn_sent_total", "action=failed") >= 1
		return ok, strings.Join(saw, " ")
	})
	for id, want := range map[string]string{delivered: "done", deferred: "deferred", bounced: "done"} {
		if got := showMessage(t, cfg, id).Status; got != want {
			t.Errorf("message %s: status %s, want %s", id, got, want)
		}
	}
	if n := len(sink.messagesTo("app@client.test")); n != 1 {
		t.Errorf("sink got %d notices for app@client.test, want 1 (the bounce's DSN)", n)
	}

	deltas := []struct {
		series series
		want   float64
	}{
		{series{"mailq_enqueued_total", []string{"source=control"}}, 3},
		{series{"mailq_enqueued_total", []string{"source=dsn"}}, 1},
		{series{"mailq_deliveries_total", []string{"route=sink"}}, 3}, // two recipients and the DSN
		{series{"mailq_deferrals_total", []string{"route=sink"}}, 1},
		{series{"mailq_bounces_total", []string{"route=sink"}}, 1},
		{series{"mailq_dsn_sent_total", []string{"action=failed"}}, 1},
		{series{"mailq_dsn_sent_total", []string{"action=delayed"}}, 0},
		{series{"mailq_replies_total", []string{"class=4", "decision=retry", "route=sink"}}, 1},
		{series{"mailq_replies_total", []string{"class=5", "decision=bounce", "route=sink"}}, 1},
		{series{"mailq_maildrop_failed_total", nil}, 0},
		{series{"mailq_queue_messages", []string{"status=deferred"}}, 1},
		{series{"mailq_queue_messages", []string{"status=done"}}, 3},
		{series{"mailq_queue_messages", []string{"status=held"}}, 0},
	}
	for _, d := range deltas {
		if got := metricValue(after, d.series.name, d.series.labels...) - metricValue(before, d.series.name, d.series.labels...); got != d.want {
			t.Errorf("%v moved by %v, want %v", d.series, got, d.want)
		}
	}
	if attempts := metricValue(after, "mailq_attempt_duration_seconds", "route=sink"); attempts < 3 {
		t.Errorf("mailq_attempt_duration_seconds{route=sink} counts %v attempts, want at least 3", attempts)
	}
	if age := metricValue(after, "mailq_queue_oldest_message_age_seconds"); age <= 0 || age > 60 {
		t.Errorf("mailq_queue_oldest_message_age_seconds = %v with one message deferred since this test began, want (0, 60]", age)
	}

	// Every write went through a commit: at least the four enqueues, and
	// never fewer writes than commits.
	commits := metricValue(after, "mailq_queue_commits_total") - metricValue(before, "mailq_queue_commits_total")
	writes := metricValue(after, "mailq_queue_commit_writes_total") - metricValue(before, "mailq_queue_commit_writes_total")
	if commits < 1 || writes < 4 || writes < commits {
		t.Errorf("mailq_queue_commits_total moved by %v and mailq_queue_commit_writes_total by %v; want commits ≥ 1, writes ≥ 4 and ≥ commits", commits, writes)
	}

	checkMetricNames(t, after)

	// The deferral, as an operator reads it in the log.
	line := logs.waitFor(t, 0, "retry", map[string]any{"queue_id": deferred}, 5*time.Second)
	if line["route"] != "sink" || fmt.Sprint(line["code"]) != "450" {
		t.Errorf("deferral log line lacks route or the server's code: %v", line)
	}
	d.stop(t)
}

// checkMetricNames: every name is a valid Prometheus name, every family
// of ours starts with mailq_, counters end in _total, and the families of
// docs/observability.md "Metrics" are all there.
func checkMetricNames(t *testing.T, families map[string]*dto.MetricFamily) {
	t.Helper()
	valid := regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	ours := 0
	for name, f := range families {
		if !valid.MatchString(name) {
			t.Errorf("metric name %q is not a valid Prometheus name", name)
		}
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if !valid.MatchString(lp.GetName()) || strings.HasPrefix(lp.GetName(), "__") {
					t.Errorf("%s: label name %q is not valid", name, lp.GetName())
				}
			}
		}
		if strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") || strings.HasPrefix(name, "promhttp_") {
			continue
		}
		ours++
		if !strings.HasPrefix(name, "mailq_") {
			t.Errorf("metric %q: mailq's own metrics start with mailq_", name)
		}
		if f.GetType() == dto.MetricType_COUNTER && !strings.HasSuffix(name, "_total") {
			t.Errorf("counter %q does not end in _total", name)
		}
		if f.GetType() != dto.MetricType_COUNTER && strings.HasSuffix(name, "_total") {
			t.Errorf("%s %q ends in _total but is not a counter", f.GetType(), name)
		}
		if f.GetHelp() == "" {
			t.Errorf("metric %q has no help text", name)
		}
	}
	if ours == 0 {
		t.Error("no mailq metrics at all")
	}
	// The reference names every metric mailq serves.
	doc, err := os.ReadFile("../../docs/observability.md")
	if err != nil {
		t.Fatal(err)
	}
	for name := range families {
		if strings.HasPrefix(name, "mailq_") && !strings.Contains(string(doc), "| `"+name) {
			t.Errorf("metric %s is not in docs/observability.md's table", name)
		}
	}
	var mfs []*dto.MetricFamily
	for name, f := range families {
		if strings.HasPrefix(name, "mailq_") {
			mfs = append(mfs, f)
		}
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Errorf("promlint: %v", err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	for _, name := range []string{
		"mailq_queue_messages", "mailq_queue_oldest_message_age_seconds", "mailq_enqueued_total",
		"mailq_deliveries_total", "mailq_deferrals_total", "mailq_bounces_total",
		"mailq_attempt_duration_seconds", "mailq_maildrop_failed_total", "mailq_dsn_sent_total",
		"go_goroutines", "process_open_fds",
	} {
		if families[name] == nil {
			t.Errorf("/metrics lacks %s (docs/observability.md \"Metrics\")", name)
		}
	}
	if f := families["mailq_attempt_duration_seconds"]; f != nil && f.GetType() != dto.MetricType_HISTOGRAM {
		t.Errorf("mailq_attempt_duration_seconds is a %s, want a histogram", f.GetType())
	}
}

// TestSIGHUPReroutesAndKeepsOldConfigOnError: a route moved to a second
// server takes effect for the next attempt of a deferred message and for
// new mail; an invalid file on SIGHUP is logged and the old route kept.
func TestSIGHUPReroutesAndKeepsOldConfigOnError(t *testing.T) {
	oldSink, newSink := startOpsSink(t, "old", false), startOpsSink(t, "new", true)
	dir := t.TempDir()
	cfg := testConfig(t, dir, sinkRoute(oldSink.port))
	d, _ := startOpsDaemon(t, cfg)
	logs := keepLogs(d)

	// defer-x gets 450 from the old server; the new one accepts everyone.
	first := enqueue(t, cfg, "app@client.test", "later@dest.test", "defer-x@dest.test")
	eventually(t, 15*time.Second, "first message deferred at the old server", func() (bool, string) {
		m := showMessage(t, cfg, first)
		return m.Status == "deferred", fmt.Sprintf("status %s", m.Status)
	})
	if n := len(oldSink.messagesTo("later@dest.test")); n != 1 {
		t.Fatalf("old server got %d copies for later@dest.test, want 1", n)
	}

	// An invalid file: the reload fails, the old route stays. mailqctl
	// reads a copy of the valid file meanwhile (it refuses an invalid one).
	running, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctlCfg := filepath.Join(dir, "mailqctl.toml")
	if err := os.WriteFile(ctlCfg, running, 0o600); err != nil {
		t.Fatal(err)
	}
	mark := logs.mark()
	if err := os.WriteFile(cfg, []byte(sinkRoute(newSink.port)+"prot = 25\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d.cmd.Process.Signal(syscall.SIGHUP)
	line := logs.waitFor(t, mark, "reload failed; keeping the running configuration", nil, 10*time.Second)
	if !strings.Contains(fmt.Sprint(line["error"]), "prot") {
		t.Errorf("reload error does not name the bad key: %v", line)
	}
	second := enqueue(t, ctlCfg, "app@client.test", "second@dest.test")
	eventually(t, 15*time.Second, "after a failed reload, new mail goes to the old server", func() (bool, string) {
		return len(oldSink.messagesTo("second@dest.test")) == 1, showMessage(t, ctlCfg, second).Status
	})
	if n := len(newSink.messagesTo("second@dest.test")); n != 0 {
		t.Errorf("the new server got mail although the reload failed")
	}

	// A valid file naming the new server: retried and new mail go there.
	mark = logs.mark()
	testConfig(t, dir, sinkRoute(newSink.port))
	d.cmd.Process.Signal(syscall.SIGHUP)
	logs.waitFor(t, mark, "configuration reloaded", nil, 10*time.Second)
	mustCtl(t, cfg, "", "retry", first)
	third := enqueue(t, cfg, "app@client.test", "third@dest.test")
	eventually(t, 15*time.Second, "after the reload, new mail goes to the new server", func() (bool, string) {
		return len(newSink.messagesTo("third@dest.test")) == 1, showMessage(t, cfg, third).Status
	})
	eventually(t, 15*time.Second, "the retried recipient arrives at the new server", func() (bool, string) {
		return len(newSink.messagesTo("defer-x@dest.test")) == 1, showMessage(t, cfg, first).Status
	})
	if m := showMessage(t, cfg, first); m.Status != "done" || len(m.Attempts) != 2 ||
		m.Attempts[1].Remote != fmt.Sprintf("127.0.0.1:%d", newSink.port) {
		t.Errorf("retried message: status %s, attempts %+v; want done after a second attempt at 127.0.0.1:%d", m.Status, m.Attempts, newSink.port)
	}
	if n := len(newSink.messagesTo("later@dest.test")); n != 0 {
		t.Errorf("the retry resent to later@dest.test, which the old server had accepted")
	}
	if n := len(oldSink.messagesTo("third@dest.test")); n != 0 {
		t.Errorf("the old server still got new mail after the reload")
	}
	d.stop(t)
}

// TestQueueCollector reads the queue gauges in process, with a fake clock:
// counts by status, the oldest message's age, and nothing (not a failed
// scrape) once the store is closed.
func TestQueueCollector(t *testing.T) {
	now := time.Date(2026, 11, 26, 5, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	store, err := boltstore.Open(filepath.Join(t.TempDir(), "queue.db"), queue.Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	for _, rcpt := range []string{"a@dest.test", "b@dest.test"} {
		env := queue.Envelope{Sender: "app@client.test", Recipients: []queue.RecipientSpec{{Address: rcpt}}, Source: "control"}
		if _, err := store.Enqueue(env, strings.NewReader("Subject: x\r\n\r\nx\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	now = now.Add(90 * time.Second)
	mu.Unlock()

	c := queueCollector{store: store, log: zerolog.Nop()}
	want := `
# HELP mailq_queue_messages Messages in the queue by status (queued, active, deferred, held, done, damaged); the same counts as ` + "`mailqctl stats`" + `.
# TYPE mailq_queue_messages gauge
mailq_queue_messages{status="active"} 0
mailq_queue_messages{status="damaged"} 0
mailq_queue_messages{status="deferred"} 0
mailq_queue_messages{status="done"} 0
mailq_queue_messages{status="held"} 0
mailq_queue_messages{status="queued"} 2
# HELP mailq_queue_oldest_message_age_seconds Age of the oldest message not yet done, in seconds; 0 when the queue is empty.
# TYPE mailq_queue_oldest_message_age_seconds gauge
mailq_queue_oldest_message_age_seconds 90
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Errorf("promlint: %v %v", problems, err)
	}
	store.Close()
	if n := testutil.CollectAndCount(c); n != 0 {
		t.Errorf("a closed store yields %d queue series, want none (and a logged error)", n)
	}
}

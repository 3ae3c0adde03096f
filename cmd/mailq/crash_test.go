package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// This file proves mailq's central promise on the whole daemon
// (docs/delivery.md "Promises"): an acknowledged message survives
// kill -9 at any instant; delivery is at least once, never a loss. Mail
// comes in by all three intakes at once (SMTP submission, `mailqctl
// enqueue`, the maildrop) while deliveries to a go-smtp next hop that
// now and then answers 450 are in flight; the daemon is SIGKILLed at a
// random moment, restarted, and must deliver every acknowledged
// (token, recipient) pair.

// crashRecipients are the addresses a crash-test message goes to (one or two of them).
var crashRecipients = []string{"one@dest.test", "two@dest.test", "three@dest.test"}

// crashTokenHeader finds the token every crash-test message carries.
var crashTokenHeader = regexp.MustCompile(`(?m)^X-Test-Token: ([A-Za-z0-9-]+)\r?$`)

// crashSink is a go-smtp next hop that answers 450 to a random share of
// RCPTs (so mailq defers and retries them) and counts, per token and
// recipient, how often it accepted a message.
type crashSink struct {
	port      int
	deferRate float64

	mu      sync.Mutex
	got     map[string]int // "token recipient" → copies accepted
	unknown int            // accepted messages without a token
}

type crashSession struct {
	sink  *crashSink
	rcpts []string
}

func (s *crashSession) Reset()        { s.rcpts = nil }
func (s *crashSession) Logout() error { return nil }
func (s *crashSession) Mail(string, *smtp.MailOptions) error {
	s.rcpts = nil
	return nil
}

func (s *crashSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if rand.Float64() < s.sink.deferRate {
		return &smtp.SMTPError{Code: 450, EnhancedCode: smtp.EnhancedCode{4, 2, 1}, Message: "mailbox busy, try later (crash test)"}
	}
	s.rcpts = append(s.rcpts, to)
	return nil
}

func (s *crashSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.sink.mu.Lock()
	defer s.sink.mu.Unlock()
	m := crashTokenHeader.FindSubmatch(b)
	if m == nil {
		s.sink.unknown++
		return nil
	}
	for _, rcpt := range s.rcpts {
		s.sink.got[string(m[1])+" "+rcpt]++
	}
	return nil
}

func startCrashSink(t *testing.T, deferRate float64) *crashSink {
	t.Helper()
	s := &crashSink{deferRate: deferRate, got: map[string]int{}}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &crashSession{sink: s}, nil
	}))
	srv.Domain = "crash.sink.test"
	srv.ErrorLog = log.New(io.Discard, "", 0) // resets from the killed daemon are expected
	s.port = serveSink(t, srv)
	return s
}

func (s *crashSink) copies(token, rcpt string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got[token+" "+rcpt]
}

// crashConfig writes the daemon's configuration: an SMTP listener on a
// port the kernel picks, fast retries without jitter that never expire
// during the test, 8 delivery workers, one catch-all route to the sink.
// (testConfig cannot be used: its `submission = []` excludes a listener.)
func crashConfig(t *testing.T, dir string, sinkPort int) string {
	t.Helper()
	text := fmt.Sprintf(`data_dir = %q
hostname = "mailq.test"
shutdown_grace = "5s"
[control]
socket = %q
[maildrop]
dir = %q
poll_interval = "200ms"
[delivery]
workers = 8
[retry]
initial = "1s"
multiplier = 1.0
max_interval = "1s"
jitter = 0.0
max_lifetime = "24h"
[[submission]]
listen = "127.0.0.1:0"
[[route]]
name = "sink"
domains = ["*"]
host = "127.0.0.1"
port = %d
connectiontimeout = 5000
timeout = 10000
`, filepath.Join(dir, "data"), filepath.Join(dir, "control.sock"), filepath.Join(dir, "maildrop"), sinkPort)
	path := filepath.Join(dir, "mailq.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// crashAck is one acknowledged message: the intake said it is durable.
type crashAck struct {
	path  string // smtp, enqueue or maildrop
	token string
	rcpts []string
	ref   string // queue id from the 250 or from mailqctl; the maildrop file name
}

// crashLoad runs the three intakes until stop is closed and records what
// each acknowledged; problems are contract violations seen on the way.
type crashLoad struct {
	cfg, ctl, maildrop, smtpAddr string
	stop                         chan struct{}
	wg                           sync.WaitGroup
	seq                          atomic.Int64

	mu       sync.Mutex
	acks     []crashAck
	problems []string
}

func (l *crashLoad) stopped() bool {
	select {
	case <-l.stop:
		return true
	default:
		return false
	}
}

func (l *crashLoad) ack(a crashAck) {
	l.mu.Lock()
	l.acks = append(l.acks, a)
	l.mu.Unlock()
}

func (l *crashLoad) problem(f string, args ...any) {
	l.mu.Lock()
	l.problems = append(l.problems, fmt.Sprintf(f, args...))
	l.mu.Unlock()
}

// next returns a fresh token for path and one or two recipients.
func (l *crashLoad) next(path string) (string, []string) {
	token := fmt.Sprintf("%s-%05d", path, l.seq.Add(1)) // zero-padded: sorts in order
	perm := rand.Perm(len(crashRecipients))
	rcpts := []string{crashRecipients[perm[0]]}
	if rand.IntN(2) == 0 {
		rcpts = append(rcpts, crashRecipients[perm[1]])
	}
	return token, rcpts
}

func crashMessage(token string, rcpts []string, eol string) string {
	lines := []string{
		"From: <app@client.test>",
		"To: " + strings.Join(rcpts, ", "),
		"Subject: crash test " + token,
		"Message-ID: <" + token + "@client.test>",
		"X-Test-Token: " + token,
		"",
		"Body of " + token + ".",
		"",
	}
	return strings.Join(lines, eol)
}

// submitSMTP sends messages over go-smtp connections, a few per
// connection; a message counts only once the final 250 came back.
func (l *crashLoad) submitSMTP() {
	defer l.wg.Done()
	for !l.stopped() {
		c, err := smtp.Dial(l.smtpAddr)
		if err != nil {
			time.Sleep(10 * time.Millisecond) // the daemon is gone; wait for stop
			continue
		}
		c.CommandTimeout, c.SubmissionTimeout = 10*time.Second, 10*time.Second
		for k := 0; k < 5 && !l.stopped(); k++ {
			if !l.submitOne(c) {
				break
			}
		}
		c.Close()
	}
}

func (l *crashLoad) submitOne(c *smtp.Client) bool {
	token, rcpts := l.next("smtp")
	if err := c.Mail("app@client.test", nil); err != nil {
		return false
	}
	for _, r := range rcpts {
		if err := c.Rcpt(r, nil); err != nil {
			return false
		}
	}
	w, err := c.Data()
	if err != nil {
		return false
	}
	if _, err := io.WriteString(w, crashMessage(token, rcpts, "\r\n")); err != nil {
		return false
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return false
	}
	fields := strings.Fields(resp.StatusText) // "2.0.0 Ok: queued as ID"
	l.ack(crashAck{"smtp", token, rcpts, fields[len(fields)-1]})
	return true
}

// enqueueCtl runs `mailqctl enqueue`; a message counts once it printed an id and exited 0.
func (l *crashLoad) enqueueCtl() {
	defer l.wg.Done()
	for !l.stopped() {
		token, rcpts := l.next("enqueue")
		args := []string{"enqueue", "--from", "app@client.test"}
		for _, r := range rcpts {
			args = append(args, "--to", r)
		}
		cmd := exec.Command(l.ctl, args...)
		cmd.Env = append(os.Environ(), "MAILQ_CONFIG="+l.cfg)
		cmd.Stdin = strings.NewReader(crashMessage(token, rcpts, "\n"))
		out, err := cmd.Output()
		if err != nil {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		id := strings.TrimSpace(string(out))
		if id == "" || strings.ContainsAny(id, " \n") {
			l.problem("mailqctl enqueue exited 0 for %s but printed %q, not one id", token, out)
			continue
		}
		l.ack(crashAck{"enqueue", token, rcpts, id})
	}
}

// dropFiles writes envelope files the way docs/maildrop.md
// asks of a writer: create in tmp/, write, fsync, rename into new/. A file
// counts once it is renamed.
func (l *crashLoad) dropFiles() {
	defer l.wg.Done()
	for !l.stopped() {
		token, rcpts := l.next("maildrop")
		name := "crash-" + token
		tmp := filepath.Join(l.maildrop, "tmp", name)
		content := "app@client.test\n" + strings.Join(rcpts, "\n") + "\n\n" + crashMessage(token, rcpts, "\n")
		if err := writeSynced(tmp, content); err != nil {
			l.problem("maildrop writer: %v", err)
			return
		}
		if err := os.Rename(tmp, filepath.Join(l.maildrop, "new", name)); err != nil {
			l.problem("maildrop writer: %v", err)
			return
		}
		l.ack(crashAck{"maildrop", token, rcpts, name})
		time.Sleep(5 * time.Millisecond) // keep the maildrop's share near the others'
	}
}

func writeSynced(path, content string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// crashStats is the part of `mailqctl stats --json` this test reads.
type crashStats struct {
	Active         int   `json:"active"`
	Live           int   `json:"live"`
	Damaged        int   `json:"damaged"`
	BouncedTotal   int64 `json:"bounced_total"`
	MaildropFailed int   `json:"maildrop_failed"`
}

func readCrashStats(ctl, cfg string) (crashStats, error) {
	cmd := exec.Command(ctl, "stats", "--json")
	cmd.Env = append(os.Environ(), "MAILQ_CONFIG="+cfg)
	out, err := cmd.Output()
	var st crashStats
	if err != nil {
		return st, fmt.Errorf("mailqctl stats --json: %v", err)
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return st, fmt.Errorf("mailqctl stats --json: %v in %q", err, out)
	}
	return st, nil
}

func dirEntries(dir string) []string {
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// mentions returns the log lines (of either daemon run) that name ref, at most max.
func mentions(books []*logBook, ref string, max int) []string {
	var out []string
	for i, b := range books {
		b.mu.Lock()
		for _, l := range b.lines {
			j, _ := json.Marshal(l)
			if strings.Contains(string(j), ref) && len(out) < max {
				out = append(out, fmt.Sprintf("run %d: %s", i+1, j))
			}
		}
		b.mu.Unlock()
	}
	return out
}

// crashLost is one acknowledged recipient the next hop never got.
type crashLost struct {
	ack  crashAck
	rcpt string
}

// describeLost lists the first lost pairs with the log lines that name
// their queue id or file, then the tokens of the rest.
func describeLost(lost []crashLost, books []*logBook) string {
	sort.Slice(lost, func(i, j int) bool { return lost[i].ack.token < lost[j].ack.token })
	var lines []string
	for i, l := range lost {
		if i == 10 {
			var rest []string
			for _, r := range lost[i:] {
				rest = append(rest, r.ack.token+"→"+r.rcpt)
			}
			lines = append(lines, fmt.Sprintf("… and %d more: %s", len(rest), strings.Join(rest, " ")))
			break
		}
		line := fmt.Sprintf("%s to %s (acknowledged as %s)", l.ack.token, l.rcpt, l.ack.ref)
		for _, m := range mentions(books, l.ack.ref, 6) {
			line += "\n\t\t" + m
		}
		lines = append(lines, line)
	}
	return strings.Join(lines, "\n\t")
}

// crashRoundResult is what one round measured, for the summary.
type crashRoundResult struct {
	acked                 map[string]int // path → messages acknowledged
	duplicates, extraCopy int            // pairs received more than once; copies beyond the first
}

// TestCrashKill9 runs crash rounds with different kill points.
func TestCrashKill9(t *testing.T) {
	buildMailqctl(t)
	total := map[string]int{}
	for round := 1; round <= 3; round++ {
		var res crashRoundResult
		t.Run(fmt.Sprintf("round%d", round), func(t *testing.T) { res = crashRound(t) })
		for p, n := range res.acked {
			total[p] += n
		}
	}
	// Every intake must have been exercised at least once, or the test proved nothing for it.
	for _, p := range []string{"smtp", "enqueue", "maildrop"} {
		if total[p] == 0 {
			t.Errorf("no message was acknowledged via %s in any round before the kill; the crash test did not exercise that intake", p)
		}
	}
}

func crashRound(t *testing.T) crashRoundResult {
	start := time.Now()
	sink := startCrashSink(t, 0.2)
	dir := t.TempDir()
	cfg := crashConfig(t, dir, sink.port)
	ctl := buildMailqctl(t)
	// The maildrop exists before the daemon starts, as tmpfiles.d makes it
	// (the daemon creates it too, but only once its maildrop goroutine
	// runs, which may be after "ready").
	for _, sub := range []string{"tmp", "new", "failed"} {
		if err := os.MkdirAll(filepath.Join(dir, "maildrop", sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}

	d1 := startDaemon(t, cfg)
	_, before := d1.waitFor(t, "ready", 20*time.Second)
	var addr string
	for _, l := range before {
		if l["message"] == "SMTP submission listening" {
			addr = fmt.Sprint(l["listen"])
		}
	}
	if addr == "" {
		t.Fatalf("no \"SMTP submission listening\" line before ready: %v", before)
	}
	logs1 := keepLogs(d1)

	load := &crashLoad{cfg: cfg, ctl: ctl, maildrop: filepath.Join(dir, "maildrop"), smtpAddr: addr, stop: make(chan struct{})}
	for range 3 {
		load.wg.Add(1)
		go load.submitSMTP()
	}
	for range 2 {
		load.wg.Add(1)
		go load.enqueueCtl()
	}
	load.wg.Add(1)
	go load.dropFiles()

	killAfter := time.Duration(300+rand.IntN(1200)) * time.Millisecond
	time.Sleep(killAfter) // the random kill point, while all intakes and deliveries are in flight
	killErr := d1.cmd.Process.Signal(syscall.SIGKILL)
	var exitErr error
	select {
	case exitErr = <-d1.done:
	case <-time.After(10 * time.Second):
		t.Fatal("mailq did not die within 10s of SIGKILL")
	}
	close(load.stop)
	load.wg.Wait()
	if killErr != nil {
		t.Errorf("SIGKILL: %v (mailq had exited by itself before the kill: %v; its log: %v)", killErr, exitErr, mentions([]*logBook{logs1}, "error", 10))
	} else if ee := (*exec.ExitError)(nil); !errors.As(exitErr, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("mailq ended with %v, want death by SIGKILL", exitErr)
	}
	for _, p := range load.problems {
		t.Error(p)
	}

	acked := map[string]int{}
	for _, a := range load.acks {
		acked[a.path]++
	}

	// Restart on the same configuration and let the queue drain.
	d2 := startDaemon(t, cfg)
	_, before2 := d2.waitFor(t, "ready", 20*time.Second)
	logs2 := keepLogs(d2)
	logs2.mu.Lock()
	logs2.lines = append(before2, logs2.lines...)
	logs2.mu.Unlock()
	books := []*logBook{logs1, logs2}

	newDir, failedDir := filepath.Join(dir, "maildrop", "new"), filepath.Join(dir, "maildrop", "failed")
	drainStart := time.Now()
	var st crashStats
	var statsErr error
	drained := false
	for deadline := time.Now().Add(25 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		st, statsErr = readCrashStats(ctl, cfg)
		if statsErr == nil && st.Live == 0 && st.Active == 0 && len(dirEntries(newDir)) == 0 {
			drained = true
			break
		}
	}
	drainTime := time.Since(drainStart)

	// Every acknowledged (token, recipient) arrived at least once.
	lost := map[string][]crashLost{}
	res := crashRoundResult{acked: acked}
	for _, a := range load.acks {
		for _, r := range a.rcpts {
			switch n := sink.copies(a.token, r); {
			case n == 0:
				lost[a.path] = append(lost[a.path], crashLost{a, r})
			case n > 1:
				res.duplicates++
				res.extraCopy += n - 1
			}
		}
	}
	for _, p := range []string{"smtp", "enqueue", "maildrop"} {
		if len(lost[p]) > 0 {
			t.Errorf("LOST via %s: %d acknowledged (token, recipient) pairs never reached the next hop (killed after %v):\n\t%s",
				p, len(lost[p]), killAfter, describeLost(lost[p], books))
		}
	}
	if !drained {
		t.Errorf("queue did not drain within 25s of the restart: stats %+v (error %v), maildrop new/ %v", st, statsErr, dirEntries(newDir))
	}
	if left := dirEntries(newDir); len(left) > 0 {
		t.Errorf("maildrop new/ still holds %v after the restart drained", left)
	}
	if failed := dirEntries(failedDir); len(failed) > 0 {
		t.Errorf("maildrop failed/ holds %v: a file cut by the crash or refused on restart; its log: %v", failed, mentions(books, failed[0], 6))
	}
	if statsErr == nil {
		if st.Damaged != 0 {
			t.Errorf("stats: damaged %d after the restart, want 0 (a record the crash left half-written); log: %v", st.Damaged, mentions(books, "damaged", 6))
		}
		if st.MaildropFailed != 0 || st.BouncedTotal != 0 {
			t.Errorf("stats: maildrop_failed %d, bounced_total %d; want 0 and 0 (only 450s were answered)", st.MaildropFailed, st.BouncedTotal)
		}
	}
	sink.mu.Lock()
	unknown := sink.unknown
	sink.mu.Unlock()
	if unknown != 0 {
		t.Errorf("the sink accepted %d messages without an X-Test-Token header (bounces or warnings?)", unknown)
	}
	d2.stop(t)
	t.Logf("killed after %v; acknowledged smtp=%d enqueue=%d maildrop=%d; duplicates: %d pairs (%d extra copies); drained in %v; round took %v",
		killAfter, acked["smtp"], acked["enqueue"], acked["maildrop"], res.duplicates, res.extraCopy, drainTime.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	return res
}

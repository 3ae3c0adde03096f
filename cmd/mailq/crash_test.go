package main

import (
	"encoding/json"
	"errors"
	"flag"
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

// This file is the crash soak (issue 17). It proves mailq's central
// promise on the whole daemon (docs/delivery.md "Promises"): an
// acknowledged message survives kill -9 at any instant; delivery is at
// least once, never a loss. Mail comes in by all three intakes at once
// (SMTP submission, `mailqctl enqueue`, the maildrop) while deliveries to
// a go-smtp next hop that now and then answers 450 (and always 550 to
// bounce@) are in flight, DSNs for those bounces are made and sent, and
// `mailqctl backup` runs in a loop; the daemon is SIGKILLed at random
// moments — so during enqueue, delivery, the final dot's reply, DSN
// generation, maildrop pickup and backup alike — and restarted each time.
// At the end every acknowledged (token, recipient) pair must have arrived
// (a bounced one as a DSN to the sender), the queue must drain with
// nothing left in flight, and `mailq check-store` must find the store
// and the last backup clean.
//
// CI runs -crash.kills=20 (the default); the long soak is
//
//	go test ./cmd/mailq -run TestCrashKill9 -crash.kills=200 -timeout 2h -v

// crashRecipients are the addresses a crash-test message goes to (one or two of them).
var crashRecipients = []string{"one@dest.test", "two@dest.test", "three@dest.test"}

// crashBounce is refused for good by the sink: its messages make DSNs.
const crashBounce = "bounce@dest.test"

// crashSender is where those DSNs go (through the same route, to the sink).
const crashSender = "app@client.test"

var crashKills = flag.Int("crash.kills", 20, "kill -9 points in TestCrashKill9 (the long soak: 200)")

// crashQueueID is what mailq's 250 after the data names: a queue id.
var crashQueueID = regexp.MustCompile(`^[0-9a-f]{16}$`)

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
	if to == crashBounce {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user (crash test)"}
	}
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
	cfg, ctl, maildrop, backups string
	smtpAddr                    atomic.Value // string: the listener moves at each restart
	stop                        chan struct{}
	wg                          sync.WaitGroup
	seq                         atomic.Int64

	mu       sync.Mutex
	acks     []crashAck
	problems []string
	// backups made whole; the last one's name
	backupsDone int
	lastBackup  string
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
	if rand.IntN(10) == 0 {
		rcpts = append(rcpts, crashBounce)
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
		addr := l.smtpAddr.Load().(string)
		if addr == "" { // the daemon is being killed or restarted
			time.Sleep(10 * time.Millisecond)
			continue
		}
		c, err := smtp.Dial(addr)
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
	id := fields[len(fields)-1]
	if !crashQueueID.MatchString(id) {
		// Not mailq: after a kill another process on this machine may
		// take the port before the restarted daemon's address is known.
		return false
	}
	l.ack(crashAck{"smtp", token, rcpts, id})
	return true
}

// enqueueCtl runs `mailqctl enqueue`; a message counts once it printed an id and exited 0.
func (l *crashLoad) enqueueCtl() {
	defer l.wg.Done()
	for !l.stopped() {
		token, rcpts := l.next("enqueue")
		args := []string{"enqueue", "--from", crashSender}
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
		time.Sleep(40 * time.Millisecond) // keep the maildrop's share near the others'
		// The maildrop never refuses, so while the daemon restarts files
		// pile up; a writer that outran pickup for the whole soak would
		// only test the final drain. Wait while a backlog is waiting.
		for len(dirEntries(filepath.Join(l.maildrop, "new"))) > crashMaildropBacklog && !l.stopped() {
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// crashMaildropBacklog is how many files the writer lets wait in new/.
const crashMaildropBacklog = 50

// backupLoop runs `mailqctl backup` again and again, so kills land during
// backups too; a backup cut by a kill must leave no file behind.
func (l *crashLoad) backupLoop() {
	defer l.wg.Done()
	for n := 1; !l.stopped(); n++ {
		name := filepath.Join(l.backups, fmt.Sprintf("backup-%04d.db", n))
		cmd := exec.Command(l.ctl, "backup", name)
		cmd.Env = append(os.Environ(), "MAILQ_CONFIG="+l.cfg)
		if err := cmd.Run(); err != nil {
			if _, serr := os.Stat(name); serr == nil {
				l.problem("mailqctl backup failed (%v) but left %s", err, name)
			}
			time.Sleep(50 * time.Millisecond)
			continue
		}
		l.mu.Lock()
		prev := l.lastBackup
		l.backupsDone++
		l.lastBackup = name
		l.mu.Unlock()
		if prev != "" {
			os.Remove(prev) // keep the disk small; the last one is checked at the end
		}
		time.Sleep(time.Duration(100+rand.IntN(300)) * time.Millisecond)
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

// crashRun is one daemon process of the soak with its log.
type crashRun struct {
	d    *daemonProc
	logs *logBook
}

// startCrashRun starts the daemon, waits for ready and returns it with the
// address its SMTP listener took.
func startCrashRun(t *testing.T, cfg string) (crashRun, string) {
	t.Helper()
	d := startDaemon(t, cfg)
	_, before := d.waitFor(t, "ready", 30*time.Second)
	var addr string
	for _, l := range before {
		if l["message"] == "SMTP submission listening" {
			addr = fmt.Sprint(l["listen"])
		}
	}
	if addr == "" {
		t.Fatalf("no \"SMTP submission listening\" line before ready: %v", before)
	}
	logs := keepLogs(d)
	logs.mu.Lock()
	logs.lines = append(before, logs.lines...)
	logs.mu.Unlock()
	return crashRun{d, logs}, addr
}

// kill SIGKILLs the run and checks it died of it (not of something else before).
func (r crashRun) kill(t *testing.T) {
	t.Helper()
	killErr := r.d.cmd.Process.Signal(syscall.SIGKILL)
	var exitErr error
	select {
	case exitErr = <-r.d.done:
	case <-time.After(10 * time.Second):
		t.Fatal("mailq did not die within 10s of SIGKILL")
	}
	if killErr != nil {
		t.Fatalf("SIGKILL: %v (mailq had exited by itself before the kill: %v; its log: %v)", killErr, exitErr, mentions([]*logBook{r.logs}, "error", 10))
	} else if ee := (*exec.ExitError)(nil); !errors.As(exitErr, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("mailq ended with %v, want death by SIGKILL; its log: %v", exitErr, mentions([]*logBook{r.logs}, "error", 10))
	}
}

// TestCrashKill9 is the crash soak: -crash.kills kill -9 points under
// load on one spool, then the checks the file comment lists.
func TestCrashKill9(t *testing.T) {
	kills := *crashKills
	start := time.Now()
	sink := startCrashSink(t, 0.2)
	dir := t.TempDir()
	cfg := crashConfig(t, dir, sink.port)
	ctl := buildMailqctl(t)
	// The maildrop exists before the daemon starts, as tmpfiles.d makes it.
	for _, sub := range []string{"maildrop/tmp", "maildrop/new", "maildrop/failed", "backups"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}

	run, addr := startCrashRun(t, cfg)
	books := []*logBook{run.logs}
	load := &crashLoad{cfg: cfg, ctl: ctl, maildrop: filepath.Join(dir, "maildrop"), backups: filepath.Join(dir, "backups"), stop: make(chan struct{})}
	load.smtpAddr.Store(addr)
	for range 3 {
		load.wg.Add(1)
		go load.submitSMTP()
	}
	for range 2 {
		load.wg.Add(1)
		go load.enqueueCtl()
	}
	load.wg.Add(2)
	go load.dropFiles()
	go load.backupLoop()

	var restarts time.Duration // time from kill to ready, summed
	for k := 1; k <= kills; k++ {
		// The random kill point, while all intakes, deliveries, DSNs and a
		// backup are in flight.
		time.Sleep(time.Duration(200+rand.IntN(1000)) * time.Millisecond)
		load.smtpAddr.Store("") // no submission to a port the dead daemon let go
		run.kill(t)
		restartAt := time.Now()
		run, addr = startCrashRun(t, cfg)
		restarts += time.Since(restartAt)
		load.smtpAddr.Store(addr)
		books = append(books, run.logs)
		if k%20 == 0 {
			load.mu.Lock()
			acked := len(load.acks)
			load.mu.Unlock()
			t.Logf("%d kills so far, %d acknowledged, %v", k, acked, time.Since(start).Round(time.Second))
		}
	}
	time.Sleep(500 * time.Millisecond)
	close(load.stop)
	load.wg.Wait()
	for _, p := range load.problems {
		t.Error(p)
	}

	// The last run drains the queue.
	newDir, failedDir := filepath.Join(dir, "maildrop", "new"), filepath.Join(dir, "maildrop", "failed")
	drainStart := time.Now()
	var st crashStats
	var statsErr error
	drained := false
	// Drained when nothing is live, active or waiting in new/; given up
	// on only when that stops shrinking for 60 s (a loaded machine is
	// slow, a stuck message makes no progress at all).
	lastLeft, lastProgress := -1, time.Now()
	for time.Since(lastProgress) < 60*time.Second {
		st, statsErr = readCrashStats(ctl, cfg)
		left := len(dirEntries(newDir))
		if statsErr == nil {
			left += st.Live + st.Active
		}
		if statsErr == nil && left == 0 {
			drained = true
			break
		}
		if lastLeft < 0 || left < lastLeft {
			lastLeft, lastProgress = left, time.Now()
		}
		time.Sleep(100 * time.Millisecond)
	}
	drainTime := time.Since(drainStart)

	// Every acknowledged (token, recipient) arrived at least once; a
	// bounced one as a DSN to the sender (its returned header carries the token).
	acked := map[string]int{}
	lost := map[string][]crashLost{}
	pairs, duplicates, extra := 0, 0, 0
	for _, a := range load.acks {
		acked[a.path]++
		for _, r := range a.rcpts {
			got := r
			if r == crashBounce {
				got = crashSender
			}
			pairs++
			switch n := sink.copies(a.token, got); {
			case n == 0:
				lost[a.path] = append(lost[a.path], crashLost{a, r})
			case n > 1:
				duplicates++
				extra += n - 1
			}
		}
	}
	for _, p := range []string{"smtp", "enqueue", "maildrop"} {
		if acked[p] == 0 {
			t.Errorf("no message was acknowledged via %s; the soak did not exercise that intake", p)
		}
		if len(lost[p]) > 0 {
			t.Errorf("LOST via %s: %d acknowledged (token, recipient) pairs never reached the next hop:\n\t%s",
				p, len(lost[p]), describeLost(lost[p], books))
		}
	}
	if !drained {
		t.Errorf("queue stopped draining (no progress for 60s) after the last restart: stats %+v (error %v), maildrop new/ %v", st, statsErr, dirEntries(newDir))
	}
	if failed := dirEntries(failedDir); len(failed) > 0 {
		t.Errorf("maildrop failed/ holds %v: a file cut by a crash or refused on restart; its log: %v", failed, mentions(books, failed[0], 6))
	}
	if statsErr == nil && (st.Damaged != 0 || st.MaildropFailed != 0) {
		t.Errorf("stats: damaged %d, maildrop_failed %d after the soak, want 0 and 0; log: %v", st.Damaged, st.MaildropFailed, mentions(books, "damaged", 6))
	}
	sink.mu.Lock()
	unknown := sink.unknown
	sink.mu.Unlock()
	if unknown != 0 {
		t.Errorf("the sink accepted %d messages without an X-Test-Token header", unknown)
	}
	run.d.stop(t)

	// The store and the last whole backup are clean.
	if code, out := runMailq(t, "check-store", "--config", cfg); code != 0 || !strings.Contains(out, "problems: 0") {
		t.Errorf("check-store on the soaked store: exit %d\n%s", code, out)
	}
	load.mu.Lock()
	backups, last := load.backupsDone, load.lastBackup
	load.mu.Unlock()
	if backups == 0 {
		t.Error("no backup completed during the soak")
	} else {
		bdir := filepath.Join(dir, "backup-check")
		os.MkdirAll(bdir, 0o700)
		os.Rename(last, filepath.Join(bdir, "queue.db"))
		if code, out := runMailq(t, "check-store", "--data-dir", bdir); code != 0 {
			t.Errorf("check-store on the last backup: exit %d\n%s", code, out)
		}
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, "backups", ".*partial*")); len(leftovers) > 0 {
		t.Errorf("backups cut by a kill left partial files: %v", leftovers)
	}
	total := 0
	for _, n := range acked {
		total += n
	}
	lostPairs := 0
	for _, l := range lost {
		lostPairs += len(l)
	}
	t.Logf("crash soak: %d kill points; acknowledged %d messages (smtp=%d enqueue=%d maildrop=%d), %d recipient pairs; lost %d; duplicates %d pairs (%.3f %%), %d extra copies; %d backups completed; restarts took %v on average; drained in %v; took %v",
		kills, total, acked["smtp"], acked["enqueue"], acked["maildrop"], pairs, lostPairs, duplicates, 100*float64(duplicates)/float64(max(pairs, 1)), extra, backups,
		(restarts / time.Duration(max(kills, 1))).Round(time.Millisecond), drainTime.Round(time.Millisecond), time.Since(start).Round(time.Second))
}

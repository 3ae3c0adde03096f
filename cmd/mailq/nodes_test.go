package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"mailq/queue/pgstore/pgtest"
)

// This file is issue 14's three-node test: three daemons (the real binary)
// on one PostgreSQL database, mail submitted through all three listeners,
// one node SIGKILLed while it delivers and restarted. The next hop is a
// go-smtp sink that records every transaction with its start and end.

// nodesTx is one SMTP transaction the sink saw: from MAIL to the reply to
// the data (or to the end of the session when there was none).
type nodesTx struct {
	helo       string // the node (its EHLO name)
	token      string // the message (X-Test-Token); "" when it never got to the data
	rcpts      []string
	start, end time.Time
	accepted   bool
}

// nodesSink holds each transaction's data for delay before answering, so
// deliveries are in flight long enough to be interrupted and to overlap if
// two nodes ever delivered one message at once. The first RCPT to a
// "defer…" address gets 450.
type nodesSink struct {
	port  int
	delay time.Duration

	mu       sync.Mutex
	txs      []nodesTx
	deferred map[string]bool // "defer…" addresses already refused once
	rcptSeen map[string]int  // address → RCPTs received

	// The first transaction of gateHelo to reach its data announces
	// itself on entered and waits for release: the test kills that node
	// meanwhile, so the kill is certain to land mid-delivery.
	gateHelo string
	entered  chan struct{}
	release  chan struct{}
	gated    bool
}

type nodesSession struct {
	sink *nodesSink
	conn *smtp.Conn
	tx   *nodesTx
}

func (s *nodesSession) finish() {
	if s.tx == nil {
		return
	}
	s.tx.end = time.Now()
	s.sink.mu.Lock()
	s.sink.txs = append(s.sink.txs, *s.tx)
	s.sink.mu.Unlock()
	s.tx = nil
}

func (s *nodesSession) Reset()        { s.finish() }
func (s *nodesSession) Logout() error { s.finish(); return nil }
func (s *nodesSession) Mail(string, *smtp.MailOptions) error {
	s.finish()
	s.tx = &nodesTx{helo: s.conn.Hostname(), start: time.Now()}
	return nil
}

func (s *nodesSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.sink.mu.Lock()
	defer s.sink.mu.Unlock()
	s.sink.rcptSeen[to]++
	if strings.HasPrefix(to, "defer") && !s.sink.deferred[to] {
		s.sink.deferred[to] = true
		return &smtp.SMTPError{Code: 450, EnhancedCode: smtp.EnhancedCode{4, 2, 1}, Message: "busy, try later (nodes test)"}
	}
	s.tx.rcpts = append(s.tx.rcpts, to)
	return nil
}

func (s *nodesSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if m := crashTokenHeader.FindSubmatch(b); m != nil {
		s.tx.token = string(m[1])
	}
	s.sink.mu.Lock()
	gate := s.tx.helo == s.sink.gateHelo && !s.sink.gated
	s.sink.gated = s.sink.gated || gate
	s.sink.mu.Unlock()
	if gate {
		close(s.sink.entered)
		<-s.sink.release
	}
	time.Sleep(s.sink.delay)
	// A node killed meanwhile never sees the reply: that copy is not
	// delivered. The client waits for the reply and sends nothing, so a
	// short read tells a live connection (timeout) from a dead one.
	nc := s.conn.Conn()
	nc.SetReadDeadline(time.Now().Add(5 * time.Millisecond))
	_, rerr := nc.Read(make([]byte, 1))
	nc.SetReadDeadline(time.Time{})
	var ne net.Error
	if !errors.As(rerr, &ne) || !ne.Timeout() {
		s.finish()
		return errors.New("the client went away during the data")
	}
	s.tx.accepted = true
	s.finish()
	return nil
}

func startNodesSink(t *testing.T, delay time.Duration, gateHelo string) *nodesSink {
	t.Helper()
	s := &nodesSink{delay: delay, deferred: map[string]bool{}, rcptSeen: map[string]int{},
		entered: make(chan struct{}), release: make(chan struct{})}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &nodesSession{sink: s, conn: c}, nil
	}))
	srv.Domain = "sink.test"
	srv.AllowInsecureAuth = true
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.port = ln.Addr().(*net.TCPAddr).Port
	s.gateHelo = gateHelo
	go srv.Serve(ln)
	t.Cleanup(func() {
		s.mu.Lock()
		if !s.gated { // nobody will wait at the gate any more
			s.gated = true
		}
		s.mu.Unlock()
		select {
		case <-s.release:
		default:
			close(s.release)
		}
		srv.Close()
	})
	return s
}

func (s *nodesSink) rcpts(addr string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rcptSeen[addr]
}

// accepted is how often the sink accepted token for rcpt.
func (s *nodesSink) accepted(token, rcpt string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, tx := range s.txs {
		if tx.accepted && tx.token == token {
			for _, r := range tx.rcpts {
				if r == rcpt {
					n++
				}
			}
		}
	}
	return n
}

// overlaps lists every pair of transactions of one message (all mail
// takes the one route) that were open at the same time.
func (s *nodesSink) overlaps() []string {
	s.mu.Lock()
	byToken := map[string][]nodesTx{}
	for _, tx := range s.txs {
		if tx.token != "" {
			byToken[tx.token] = append(byToken[tx.token], tx)
		}
	}
	s.mu.Unlock()
	var out []string
	for token, txs := range byToken {
		sort.Slice(txs, func(i, j int) bool { return txs[i].start.Before(txs[j].start) })
		for i := 1; i < len(txs); i++ {
			if txs[i].start.Before(txs[i-1].end) {
				out = append(out, fmt.Sprintf("%s: %s %s–%s and %s %s–%s", token,
					txs[i-1].helo, txs[i-1].start.Format("15:04:05.000"), txs[i-1].end.Format("15:04:05.000"),
					txs[i].helo, txs[i].start.Format("15:04:05.000"), txs[i].end.Format("15:04:05.000")))
			}
		}
	}
	return out
}

func nodeConfig(t *testing.T, dir, node, dsn string, sinkPort int) string {
	t.Helper()
	dsnFile := filepath.Join(dir, "pg.dsn")
	if err := os.WriteFile(dsnFile, []byte(dsn+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	text := fmt.Sprintf(`data_dir = %q
hostname = "%s.test"
shutdown_grace = "5s"
[queue]
backend = "postgres"
dsn_file = %q
node_name = %q
lease_time = "10s"
[control]
socket = %q
[maildrop]
dir = %q
[delivery]
workers = 4
[retry]
initial = "2s"
multiplier = 1.0
max_interval = "2s"
jitter = 0.0
[[submission]]
listen = "127.0.0.1:0"
[[route]]
name = "sink"
domains = ["*"]
host = "127.0.0.1"
port = %d
connectiontimeout = 2000
timeout = 5000
writetimeout = 5000
`, filepath.Join(dir, "data"), node, dsnFile, node, filepath.Join(dir, "control.sock"), filepath.Join(dir, "maildrop"), sinkPort)
	path := filepath.Join(dir, "mailq.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// nodesAck is a message a listener acknowledged with a queue id.
type nodesAck struct {
	token, id string
	rcpts     []string
}

// submitTo sends n messages over one SMTP session to addr and returns those
// acknowledged; it stops at the first failure (the node was killed).
func submitTo(addr, prefix string, n int, rcpts func(i int) []string) []nodesAck {
	c, err := smtp.Dial(addr)
	if err != nil {
		return nil
	}
	defer c.Close()
	c.CommandTimeout, c.SubmissionTimeout = 20*time.Second, 20*time.Second
	var acks []nodesAck
	for i := 0; i < n; i++ {
		token := fmt.Sprintf("%s-%d", prefix, i)
		to := rcpts(i)
		if c.Mail("app@client.test", nil) != nil {
			return acks
		}
		for _, r := range to {
			if c.Rcpt(r, nil) != nil {
				return acks
			}
		}
		w, err := c.Data()
		if err != nil {
			return acks
		}
		if _, err := io.WriteString(w, crashMessage(token, to, "\r\n")); err != nil {
			return acks
		}
		resp, err := w.CloseWithResponse()
		if err != nil {
			return acks
		}
		fields := strings.Fields(resp.StatusText)
		if id := fields[len(fields)-1]; crashQueueID.MatchString(id) {
			acks = append(acks, nodesAck{token, id, to})
		}
	}
	return acks
}

// TestThreeNodesOnOneDatabase is the three-node test of issue 14.
func TestThreeNodesOnOneDatabase(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	sink := startNodesSink(t, 100*time.Millisecond, "node2.test")
	names := []string{"node1", "node2", "node3"}
	cfgs := make([]string, 3)
	runs := make([]crashRun, 3)
	addrs := make([]string, 3)
	for i, name := range names {
		cfgs[i] = nodeConfig(t, t.TempDir(), name, dsn, sink.port)
		runs[i], addrs[i] = startCrashRun(t, cfgs[i])
	}
	ctl := buildMailqctl(t)

	// Load through all three listeners; node2 is killed as soon as the
	// sink holds a transaction of its, then restarted.
	var mu sync.Mutex
	var acks []nodesAck
	two := func(i int) []string {
		if i%2 == 0 {
			return []string{"one@dest.test", "two@dest.test"}
		}
		return []string{"one@dest.test"}
	}
	submitAll := func(round string, n int) {
		var wg sync.WaitGroup
		for i := range names {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got := submitTo(addrs[i], round+"-"+names[i], n, two)
				mu.Lock()
				acks = append(acks, got...)
				mu.Unlock()
			}()
		}
		wg.Wait()
	}
	killed := make(chan error, 1) // SIGKILL's result; the wait for it is in the test goroutine
	go func() {
		select {
		case <-sink.entered:
			killed <- runs[1].d.cmd.Process.Signal(syscall.SIGKILL)
		case <-time.After(90 * time.Second):
			killed <- errors.New("node2 never delivered within 90s, so it could not be killed mid-delivery")
		}
	}()
	submitAll("before", 25)
	if err := <-killed; err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-runs[1].d.done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("node2 ended with %v, want death by SIGKILL", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("node2 did not die within 10s of SIGKILL")
	}
	close(sink.release) // node2 is dead: the transaction it had open finds its connection closed
	runs[1], addrs[1] = startCrashRun(t, cfgs[1])
	submitAll("after", 8)
	if len(acks) < 60 {
		t.Fatalf("only %d messages acknowledged over the three listeners", len(acks))
	}

	drained := func(node int) func() (bool, string) {
		return func() (bool, string) {
			var st struct{ Live int }
			out := mustCtl(t, cfgs[node], "", "stats", "--json")
			if err := json.Unmarshal([]byte(out), &st); err != nil {
				return false, out
			}
			return st.Live == 0, out
		}
	}
	eventually(t, 90*time.Second, "the queue to drain", drained(0))

	// Hold on node1 stops delivery on every node: a message deferred once
	// (450) is held on node1 before its retry (2s later) and must not be
	// tried while held, although node2 and node3 poll the same queue.
	held := submitTo(addrs[1], "held", 1, func(int) []string { return []string{"defer-held@dest.test"} })
	if len(held) != 1 {
		t.Fatal("node2 did not acknowledge the message to hold")
	}
	id := held[0].id
	eventually(t, 10*time.Second, "the first attempt refused with 450", func() (bool, string) {
		return sink.rcpts("defer-held@dest.test") == 1, fmt.Sprint(sink.rcpts("defer-held@dest.test"))
	})
	mustCtl(t, cfgs[0], "", "hold", id)
	for i := range names {
		var m shownMessage
		if err := json.Unmarshal([]byte(mustCtl(t, cfgs[i], "", "show", "--json", id)), &m); err != nil {
			t.Fatal(err)
		}
		if m.Status != "held" {
			t.Errorf("%s shows %s as %q after the hold on node1, want held", names[i], id, m.Status)
		}
	}
	lists := make([]string, 3)
	for i := range names {
		lists[i] = mustCtl(t, cfgs[i], "", "list", "--json")
	}
	if !strings.Contains(lists[0], id) || lists[0] != lists[1] || lists[0] != lists[2] {
		t.Errorf("list --json differs between nodes (or lacks the held %s):\nnode1: %s\nnode2: %s\nnode3: %s", id, lists[0], lists[1], lists[2])
	}
	time.Sleep(5 * time.Second) // two retry intervals
	if n := sink.rcpts("defer-held@dest.test"); n != 1 {
		t.Fatalf("the held message was tried %d times in all; a hold on node1 must stop every node", n)
	}
	mustCtl(t, cfgs[2], "", "release", id)
	eventually(t, 30*time.Second, "the released message delivered", func() (bool, string) {
		return sink.accepted(held[0].token, "defer-held@dest.test") == 1, fmt.Sprint(sink.rcpts("defer-held@dest.test"))
	})
	acks = append(acks, held...)
	eventually(t, 30*time.Second, "the queue to drain again", drained(2))

	// Every acknowledged recipient delivered; no two transactions of one
	// message at once.
	var lost []string
	for _, a := range acks {
		for _, r := range a.rcpts {
			if sink.accepted(a.token, r) == 0 {
				lost = append(lost, a.token+" "+r+" ("+a.id+")")
			}
		}
	}
	if len(lost) > 0 {
		t.Errorf("%d acknowledged recipients never delivered: %v", len(lost), lost)
	}
	sink.mu.Lock()
	cut, byNode := 0, map[string]int{}
	for _, tx := range sink.txs {
		if tx.accepted {
			byNode[tx.helo]++
		} else if tx.token != "" {
			cut++
		}
	}
	sink.mu.Unlock()
	t.Logf("%d messages acknowledged; transactions accepted per node %v; %d cut off by the kill", len(acks), byNode, cut)
	if cut == 0 {
		t.Error("no transaction was cut off: node2 was not killed mid-delivery")
	}
	if o := sink.overlaps(); len(o) > 0 {
		t.Errorf("%d pairs of transactions for one message overlapped in time:\n%s", len(o), strings.Join(o, "\n"))
	}
	for i := range names {
		lists[i] = mustCtl(t, cfgs[i], "", "list", "--json", "--status", "done")
	}
	if strings.Count(lists[0], "\n") < len(acks) || lists[0] != lists[1] || lists[0] != lists[2] {
		t.Errorf("list --json --status done differs between nodes or lacks messages (%d acknowledged):\nnode1: %s\nnode2: %s\nnode3: %s", len(acks), lists[0], lists[1], lists[2])
	}
	if r := runCtl(t, ctl, cfgs[0], "", "backup", filepath.Join(t.TempDir(), "b.db")); r.code == 0 || !strings.Contains(r.stderr, "PostgreSQL") {
		t.Errorf("mailqctl backup on a PostgreSQL queue: exit %d, stderr %q; want a refusal naming PostgreSQL", r.code, r.stderr)
	}
	for i := range runs {
		runs[i].d.stop(t)
	}
}

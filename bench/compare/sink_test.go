package main

import (
	"fmt"
	"net/textproto"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The head of a capture file is read up to smtp-sink's Received: line and
// no further: what follows is the message, whatever it says.
func TestCaptureRecipients(t *testing.T) {
	head := "X-Client-Addr: 127.0.0.1\nX-Client-Proto: ESMTP\nX-Helo-Args: vm\nX-Mail-Args: <a@example.com> SIZE=9\n" +
		"X-Rcpt-Args: <1x@r1-mailq-e2e.bench>\nX-Rcpt-Args: <2x@r1-mailq-e2e.bench> NOTIFY=NEVER\n"
	received := "Received: from vm ([127.0.0.1])\n\tby h (smtp-sink) with ESMTP id 0a1b2c3d;\n\tWed, 2 Dec 2026 03:30:00 +0000 (UTC)\n"
	for _, c := range []struct {
		name     string
		in       string
		want     []string
		complete bool
	}{
		{"two recipients", head + received + "Subject: x\n\nbody\n\n", []string{"1x@r1-mailq-e2e.bench", "2x@r1-mailq-e2e.bench"}, true},
		{"body lines that look like ours", head + received + "X-Rcpt-Args: <9x@r1-mailq-e2e.bench>\n\nX-Rcpt-Args: <8x@r1-mailq-e2e.bench>\n", []string{"1x@r1-mailq-e2e.bench", "2x@r1-mailq-e2e.bench"}, true},
		{"head cut before Received", head, []string{"1x@r1-mailq-e2e.bench", "2x@r1-mailq-e2e.bench"}, false},
		{"head cut inside a line", head + "Received: fr", []string{"1x@r1-mailq-e2e.bench", "2x@r1-mailq-e2e.bench"}, false},
		{"no closing bracket", "X-Rcpt-Args: <1x@t.bench\n" + received, nil, true},
		{"empty", "", nil, false},
	} {
		got, complete := captureRecipients([]byte(c.in))
		var gs []string
		for _, a := range got {
			gs = append(gs, string(a))
		}
		if strings.Join(gs, ",") != strings.Join(c.want, ",") || complete != c.complete {
			t.Errorf("%s: got %q, complete %v; want %q, %v", c.name, gs, complete, c.want, c.complete)
		}
	}
}

func FuzzCaptureRecipients(f *testing.F) {
	f.Add([]byte("X-Mail-Args: <a@b>\nX-Rcpt-Args: <1x@t.bench> X\nReceived: from x\nX-Rcpt-Args: <2x@t.bench>\n"))
	f.Add([]byte("X-Rcpt-Args: <\nReceived: "))
	f.Fuzz(func(t *testing.T, head []byte) {
		addrs, complete := captureRecipients(head)
		// Every address is the inside of an X-Rcpt-Args line before the
		// first Received: line, and complete says that line was seen whole.
		before := head
		if i := strings.Index("\n"+string(head), "\nReceived: "); i >= 0 {
			before = head[:i]
			if complete != strings.Contains(string(head[i:]), "\n") {
				t.Fatalf("complete = %v with a Received: line at %d in %q", complete, i, head)
			}
		} else if complete {
			t.Fatalf("complete without a Received: line: %q", head)
		}
		if n := strings.Count("\n"+string(before), "\nX-Rcpt-Args: <"); len(addrs) > n {
			t.Fatalf("%d addresses from %d X-Rcpt-Args lines: %q", len(addrs), n, head)
		}
		for _, a := range addrs {
			if strings.ContainsAny(string(a), ">\n") || !strings.Contains(string(before), "X-Rcpt-Args: <"+string(a)+">") {
				t.Fatalf("address %q is not an X-Rcpt-Args line's: %q", a, head)
			}
		}
	})
}

// The tally is what makes "nothing lost, nothing twice" exact: a count per
// tag (the address's domain), and an address that arrives twice noticed.
func TestTallyCountsRecipientsByTagAndFindsDuplicates(t *testing.T) {
	tl := newTally()
	for _, txn := range [][]string{
		{"1x@r1-mailq-e2e.bench", "2x@r1-mailq-e2e.bench"},
		{"1x@r1-postfix-e2e.bench"},
		{"1x@r1-postfix-e2e.bench"}, // the same address again: a duplicate
		{"no-domain"},
	} {
		var addrs [][]byte
		for _, a := range txn {
			addrs = append(addrs, []byte(a))
		}
		tl.record(addrs)
	}
	for _, c := range []struct {
		tag        string
		got, dups  int
		want       int
		verifyFail bool
	}{
		{"r1-mailq-e2e.bench", 2, 0, 2, false},
		{"r1-mailq-e2e.bench", 2, 0, 3, true}, // one lost
		{"r1-postfix-e2e.bench", 2, 1, 1, true},
		{"r1-mailq-sendmail.bench", 0, 0, 1, true},
	} {
		got, dups := tl.count(c.tag)
		if got != c.got || dups != c.dups {
			t.Errorf("%s: counted %d recipients, %d duplicates; want %d, %d", c.tag, got, dups, c.got, c.dups)
		}
		if err := tl.verify(c.tag, c.want); (err != nil) != c.verifyFail {
			t.Errorf("%s: verify(%d) = %v, want failure %v", c.tag, c.want, err, c.verifyFail)
		}
	}
	tl.fail(fmt.Errorf("inotify queue overflowed"))
	if err := tl.verify("r1-mailq-e2e.bench", 2); err == nil {
		t.Error("verify passed after the count was marked untrustworthy")
	}
}

func TestTallyWaitForWakesOnArrival(t *testing.T) {
	tl := newTally()
	go func() {
		time.Sleep(20 * time.Millisecond)
		tl.record([][]byte{[]byte("1x@t.bench"), []byte("2x@t.bench")})
	}()
	if _, err := tl.waitFor("t.bench", 2, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := tl.waitFor("t.bench", 3, 50*time.Millisecond); err == nil {
		t.Fatal("waitFor(3) returned with only 2 recipients counted")
	}
}

// smtpConn is a raw SMTP client, so a test can stop anywhere in a transaction.
type smtpConn struct {
	t *testing.T
	c *textproto.Conn
}

func dialSink(t *testing.T, sk *sink) *smtpConn {
	t.Helper()
	c, err := textproto.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", sk.port))
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpConn{t, c}
	s.expect("", 220)
	s.expect("EHLO test", 250)
	return s
}

func (s *smtpConn) expect(cmd string, code int) {
	s.t.Helper()
	if cmd != "" {
		if err := s.c.PrintfLine("%s", cmd); err != nil {
			s.t.Fatal(err)
		}
	}
	if _, _, err := s.c.ReadResponse(code); err != nil {
		s.t.Fatalf("%q: %v", cmd, err)
	}
}

// transaction sends MAIL, one RCPT per address and DATA, then the body; it
// ends the data with "." only when finish is set.
func (s *smtpConn) transaction(rcpts []string, body string, finish bool) {
	s.t.Helper()
	s.expect("MAIL FROM:<a@example.com>", 250)
	for _, r := range rcpts {
		s.expect("RCPT TO:<"+r+">", 250)
	}
	s.expect("DATA", 354)
	w := s.c.W
	w.WriteString(strings.ReplaceAll(body, "\n", "\r\n"))
	if finish {
		w.WriteString(".\r\n")
	}
	if err := w.Flush(); err != nil {
		s.t.Fatal(err)
	}
	if finish {
		s.expect("", 250)
	}
}

func startTestSink(t *testing.T) *sink {
	t.Helper()
	if _, err := exec.LookPath("smtp-sink"); err != nil {
		t.Fatal("smtp-sink is not installed (Debian's postfix; .ci/install-peers)")
	}
	if os.Geteuid() != 0 {
		t.Skip("smtp-sink -u nobody needs root, as bench/compare.sh does (CI runs as root)")
	}
	// Not t.TempDir(): its parent is 0700, and smtp-sink (nobody) must
	// reach its directory inside.
	dir, err := os.MkdirTemp("", "sink-test.")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sk, err := startSink(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sk.stop)
	return sk
}

// waitEmpty waits until smtp-sink's capture directory holds no file: an
// aborted transaction's file is unlinked, a completed one's taken.
func waitEmpty(t *testing.T, sk *sink) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		left, err := os.ReadDir(sk.dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("capture files left in %s: %v", sk.dir, left)
		}
	}
}

// Against the real smtp-sink: completed transactions count, each
// recipient once; transactions ended by RSET, by a lost connection in the
// middle of DATA, or still in progress when the sink stops do not; a
// repeat is a duplicate, a missing one a loss.
func TestSinkCountsCompletedTransactionsOnly(t *testing.T) {
	sk := startTestSink(t)
	const tag = "t.bench"
	body := "Subject: x\n\nX-Rcpt-Args: <9x@t.bench>\n" + filler(200<<10) + "\n"

	c := dialSink(t, sk)
	c.transaction([]string{"1x@" + tag, "2x@" + tag}, body, true)
	c.expect("MAIL FROM:<a@example.com>", 250)
	c.expect("RCPT TO:<3x@"+tag+">", 250)
	c.expect("RSET", 250)
	c.transaction([]string{"4x@" + tag}, body[:50<<10], false) // then the connection is lost mid-DATA
	c.c.Close()
	waitEmpty(t, sk)

	c = dialSink(t, sk)
	c.transaction([]string{"1x@" + tag}, "Subject: again\n\n", true)
	c.transaction([]string{"1x@sentinel.bench"}, "\n", true)
	if _, err := sk.waitFor("sentinel.bench", 1, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if got, dups := sk.count(tag); got != 3 || dups != 1 {
		t.Errorf("counted %d recipients of %s, %d duplicated; want 3 (1x twice, 2x), 1", got, tag, dups)
	}
	if err := sk.verify(tag, 2); err == nil || !strings.Contains(err.Error(), "more than once") {
		t.Errorf("verify with a duplicate = %v, want the duplicate named", err)
	}
	if err := sk.verify("sentinel.bench", 2); err == nil || !strings.Contains(err.Error(), "1 lost") {
		t.Errorf("verify with one missing = %v, want 1 lost", err)
	}
	waitEmpty(t, sk) // every completed capture is removed once counted

	// A transaction in the middle of DATA when the sink stops: smtp-sink's
	// exit closes its file, which must not count.
	c.transaction([]string{"1x@inflight.bench"}, body[:150<<10], false)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		// Most of the body written: the file holds the Received: line.
		left, _ := os.ReadDir(sk.dir)
		if len(left) == 1 {
			if fi, err := left[0].Info(); err == nil && fi.Size() > 8<<10 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no capture file of 8 KiB for the transaction in progress: %v", left)
		}
	}
	sk.stop()
	if got, _ := sk.count("inflight.bench"); got != 0 {
		t.Errorf("a transaction in progress when the sink stopped counted %d recipients", got)
	}
	if err := sk.verify("sentinel.bench", 1); err != nil {
		t.Errorf("after stopping with a transaction in progress: %v", err)
	}
	if err := sk.verify(tag, 3); err == nil {
		t.Error("verify passed with a duplicate")
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{[]float64{3, 1, 2}, 2}, {[]float64{4, 1}, 2.5}, {nil, 0}} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

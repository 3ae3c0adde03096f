package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"mailq/policy"
)

// readmeBlocks returns the fenced blocks of README.md whose info string is
// exactly info ("sh tour"), in order.
func readmeBlocks(t *testing.T, info string) []string {
	t.Helper()
	text, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	var cur *strings.Builder
	for _, line := range strings.Split(string(text), "\n") {
		switch {
		case cur == nil && line == "```"+info:
			cur = &strings.Builder{}
		case cur != nil && line == "```":
			blocks = append(blocks, cur.String())
			cur = nil
		case cur != nil:
			cur.WriteString(line + "\n")
		}
	}
	if cur != nil {
		t.Fatalf("README.md: a ```%s block is not closed", info)
	}
	return blocks
}

// freePort returns a loopback TCP port nobody listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestReadmeTour runs every ```sh tour block of README.md, in order, as
// one bash script (set -e), with the built mailq and mailqctl on PATH and
// a go-smtp sink as the tour's test server, then checks that the mail the
// tour sends arrived where the README says it does.
func TestReadmeTour(t *testing.T) {
	blocks := readmeBlocks(t, "sh tour")
	if len(blocks) < 5 {
		t.Fatalf("README.md has %d ```sh tour blocks; the tour (start, send, watch, fail, retry) needs more", len(blocks))
	}
	for _, port := range []int{1, 9} { // the tour's closed ports
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
			c.Close()
			t.Fatalf("something listens on 127.0.0.1:%d; the README's tour needs it closed", port)
		}
	}
	sink := startOpsSink(t, "tour", false)
	buildMailqctl(t)
	dir := t.TempDir()
	script := "set -ex\n" + strings.Join(blocks, "")
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"PATH="+filepath.Dir(binPath)+string(os.PathListSeparator)+os.Getenv("PATH"),
		"MAILQ_CONFIG=",
		fmt.Sprintf("SINK_PORT=%d", sink.port),
		fmt.Sprintf("METRICS_PORT=%d", freePort(t)),
	)
	// Its own process group, so that on a timeout the daemon the tour
	// started in the background is killed with the shell.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	logFile, _ := os.ReadFile(filepath.Join(dir, "tour", "mailq.log"))
	if err != nil {
		t.Fatalf("the README tour failed (%v):\n%s\nmailq.log:\n%s", err, out.String(), logFile)
	}

	t.Logf("tour output:\n%s", out.String())

	// What the tour promises, as the sink saw it.
	arrived := []struct{ rcpt, subject string }{
		{"you@example.com", "Subject: hello from mailqctl"},
		{"friend@example.org", "Subject: hello from sendmail -t"},
		{"someone@broken.test", "Subject: hello from mailqctl"}, // after the route was fixed
	}
	for _, a := range arrived {
		got := sink.messagesTo(a.rcpt)
		if len(got) == 0 || !strings.Contains(got[0].Data, a.subject) {
			t.Errorf("tour mail for %s (%s) did not reach the sink: %+v", a.rcpt, a.subject, got)
		}
	}
	if n := len(sink.messagesTo("you@example.com")); n != 2 {
		t.Errorf("you@example.com got %d messages, want 2 (enqueue and sendmail -t)", n)
	}
	for _, never := range []string{"a@parked.test", "b@parked.test"} {
		if n := len(sink.messagesTo(never)); n != 0 {
			t.Errorf("%s reached the sink although its route is closed", never)
		}
	}
	var bounce bool
	for _, m := range sink.messagesTo("me@example.com") {
		bounce = bounce || (m.From == "" && strings.Contains(m.Data, "a@parked.test"))
		if strings.Contains(m.Data, "b@parked.test") {
			t.Errorf("deleted message b@parked.test caused a notice:\n%s", m.Data)
		}
	}
	if !bounce {
		t.Errorf("`mailqctl bounce` sent no bounce for a@parked.test to me@example.com")
	}
	for _, want := range []string{"queued as ", "mailq_deliveries_total{route=\"sink\"}", `"message":"delivered"`, `"message":"retry"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("tour output lacks %q:\n%s", want, out.String())
		}
	}
	checkReadmeLogLine(t, string(logFile))
}

// checkReadmeLogLine: the README's sample delivery log line has the same
// fields, in the same order, as the lines the daemon writes today.
func checkReadmeLogLine(t *testing.T, logFile string) {
	t.Helper()
	blocks := readmeBlocks(t, "json")
	var sample string
	for _, b := range blocks {
		if strings.Contains(b, `"message":"delivered"`) {
			sample = strings.TrimSpace(b)
		}
	}
	keys := regexp.MustCompile(`"([a-z_]+)":`)
	fields := func(line string) string {
		var ks []string
		for _, m := range keys.FindAllStringSubmatch(line, -1) {
			ks = append(ks, m[1])
		}
		return strings.Join(ks, ",")
	}
	for _, line := range strings.Split(logFile, "\n") {
		if strings.Contains(line, `"message":"delivered"`) && strings.Contains(line, `"route":"sink"`) {
			if sample == "" {
				t.Fatalf("README.md shows no delivery log line (a ```json block with \"message\":\"delivered\"); the tour's is:\n%s", line)
			}
			if got, want := fields(sample), fields(line); got != want {
				t.Errorf("README's delivery log line has fields %s; the daemon writes %s:\n%s", got, want, line)
			}
			return
		}
	}
	t.Errorf("the tour's mailq.log has no delivery line for route sink:\n%s", logFile)
}

// TestReadmeRetrySchedule checks the README's retry table against the
// policy the daemon uses by default.
func TestReadmeRetrySchedule(t *testing.T) {
	text, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile(`(?m)^\| (\d+) \| (\w+) \| (\w+) \|$`)
	rows := row.FindAllStringSubmatch(string(text), -1)
	if len(rows) < 5 {
		t.Fatalf("README.md: found %d retry schedule rows (| n | wait | since arrival |), want the table", len(rows))
	}
	p := policy.DefaultRetryPolicy()
	var elapsed time.Duration
	for i, r := range rows {
		n, _ := strconv.Atoi(r[1])
		if n != i+1 {
			t.Fatalf("retry table row %d is for attempt %d; rows must count from 1", i+1, n)
		}
		gap := p.Backoff(n)
		elapsed += gap
		if r[2] != shortDuration(gap) || r[3] != shortDuration(elapsed) {
			t.Errorf("retry table row %d: %s, %s; the default policy gives %s, %s", n, r[2], r[3], shortDuration(gap), shortDuration(elapsed))
		}
	}
}

// shortDuration prints 5m, 1h, 1h15m: Go's form without zero units.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

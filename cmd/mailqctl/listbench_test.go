package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"mailq/control/server"
	"mailq/queue"
)

// BenchmarkList measures `mailqctl list --json` and `mailqctl list` (the
// table) over a queue of deferred messages, each with an attempt history
// of two failed attempts: wall time and the client's peak memory (issue 18
// item 5). MAILQ_BENCH_MESSAGES sets the queue length (default 100000).
//
//	go test ./cmd/mailqctl -run '^$' -bench BenchmarkList -benchtime 1x
func BenchmarkList(b *testing.B) {
	n := 100000
	if v := os.Getenv("MAILQ_BENCH_MESSAGES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatalf("MAILQ_BENCH_MESSAGES=%q: %v", v, err)
		}
	}
	d := startDaemon(b, server.Options{})
	fillWithHistory(b, d.store, n)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, mode := range []struct {
			name string
			args []string
		}{{"json", []string{"list", "--json"}}, {"table", []string{"list"}}} {
			elapsed, rssMB, lines := runList(b, d, mode.args)
			if lines < n {
				b.Fatalf("list %v printed %d lines, want at least %d", mode.args, lines, n)
			}
			b.ReportMetric(elapsed.Seconds(), "s/"+mode.name)
			b.ReportMetric(rssMB, "MB-client-peak/"+mode.name)
		}
	}
}

// fillWithHistory enqueues n messages and fails two attempts of each, with
// the replies a real 450 leaves in the history.
func fillWithHistory(b *testing.B, st queue.Store, n int) {
	b.Helper()
	body := "Subject: bench\r\n\r\n" + strings.Repeat("x", 400) + "\r\n"
	var wg sync.WaitGroup
	per := (n + 63) / 64
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w * per; i < min(n, (w+1)*per); i++ {
				env := queue.Envelope{Sender: "a@example.com", Source: "control",
					Recipients: []queue.RecipientSpec{{Address: fmt.Sprintf("r%d@example.org", i)}}}
				if _, err := st.Enqueue(env, strings.NewReader(body)); err != nil {
					b.Error(err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	base := time.Now()
	for round := 0; round < 2; round++ {
		// Round r leases what is due by base+(2r+1)h and defers it to
		// base+(2r+2)h, so a round never takes back what it deferred.
		horizon, retryAt := base.Add(time.Duration(2*round+1)*time.Hour), base.Add(time.Duration(2*round+2)*time.Hour)
		leases := make(chan queue.Lease, 1024)
		for w := 0; w < 64; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for l := range leases {
					rcpt := l.Recipients[0]
					reply := &queue.Reply{Code: 450, Enhanced: "4.2.1", Text: "mailbox busy, try again later"}
					a := queue.Attempt{Time: time.Now(), Route: "relay", Remote: "127.0.0.1:25", TLS: "TLS1.3", DurationMS: 40,
						Recipients: l.Recipients, Replies: []queue.StepReply{
							{Command: "EHLO client.test", Reply: queue.Reply{Code: 250, Text: "relay.test at your service"}},
							{Command: "MAIL FROM:<a@example.com>", Reply: queue.Reply{Code: 250, Enhanced: "2.1.0", Text: "ok"}},
							{Command: "RCPT TO:<" + rcpt + ">", Reply: *reply}}}
					err := st.RecordOutcome(l, a, []queue.Outcome{{Recipient: rcpt, Decision: queue.DecideRetry, RetryAt: retryAt, Reply: reply}})
					if err != nil {
						b.Error(err)
					}
				}
			}()
		}
		for {
			ls, err := st.Lease(horizon, 1000)
			if err != nil {
				b.Fatal(err)
			}
			if len(ls) == 0 {
				break
			}
			for _, l := range ls {
				leases <- l
			}
		}
		close(leases)
		wg.Wait()
	}
}

// runList runs the real mailqctl and returns its wall time, peak resident
// memory (MB) and how many lines it printed.
func runList(b *testing.B, d *daemon, args []string) (time.Duration, float64, int) {
	b.Helper()
	cmd := exec.Command(filepath.Join(binDir, "mailqctl"), append([]string{"--socket", d.socket}, args...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	// The child's own peak: rusage's maxrss would include this (large)
	// process's memory, which the child shares until it execs.
	peak := make(chan int64, 1)
	go func() {
		var hwm int64
		path := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
		for {
			data, err := os.ReadFile(path)
			if err != nil { // reaped
				peak <- hwm
				return
			}
			// Before exec the child is still this process's image.
			if strings.Contains(string(data), "Name:\tmailqctl") {
				for _, line := range strings.Split(string(data), "\n") {
					if kb, ok := strings.CutPrefix(line, "VmHWM:"); ok {
						if v, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(kb), "kB")), 10, 64); err == nil {
							hwm = max(hwm, v)
						}
					}
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	lines := 0
	buf := make([]byte, 256<<10)
	for {
		k, err := out.Read(buf)
		lines += strings.Count(string(buf[:k]), "\n")
		if err == io.EOF {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := cmd.Wait(); err != nil {
		b.Fatalf("mailqctl %v: %v", args, err)
	}
	elapsed := time.Since(start)
	return elapsed, float64(<-peak) / 1024, lines
}

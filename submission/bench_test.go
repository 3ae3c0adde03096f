package submission

import (
	"fmt"
	"os/exec"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"mailq/queue"
)

// BenchmarkSubmission runs Postfix's smtp-source into the listener:
// 32 sessions, 4 KiB messages, one recipient; b.N messages in all (at least
// 2000). Every 250 means fsync'd in the queue. Reports msg/s, and the
// writes each queue commit carried (the group commit at work) and the
// CPU time the listener and the store spent per message.
//
//	go test -run XXX -bench Submission -benchtime 20000x ./submission/
func BenchmarkSubmission(b *testing.B) {
	src := needPeer(b, "smtp-source")
	var commits, writes atomic.Int64
	qopts := queue.Options{OnCommit: func(n int) { commits.Add(1); writes.Add(int64(n)) }}
	r := startListenerStore(b, b.TempDir(), qopts, func(o *Options) { o.MaxConns, o.MaxConnsPerIP = 64, 64 })
	n := max(b.N, 2000)
	b.ResetTimer()
	cpu0 := cpuTime(b)
	start := time.Now()
	out, err := exec.Command(src, "-s", "32", "-m", fmt.Sprint(n), "-l", "4096",
		"-f", "a@example.com", "-t", "b@example.org", r.addr).CombinedOutput()
	elapsed := time.Since(start)
	cpu := cpuTime(b) - cpu0
	b.StopTimer()
	if err != nil {
		b.Fatalf("smtp-source: %v\n%s", err, out)
	}
	if got := countStored(b, r.store); got != n {
		b.Fatalf("%d messages stored, want %d", got, n)
	}
	b.ReportMetric(float64(n)/elapsed.Seconds(), "msg/s")
	b.ReportMetric(float64(writes.Load())/float64(commits.Load()), "writes/commit")
	// The listener's and the store's CPU per message (smtp-source is a
	// child, not counted): steadier than msg/s on a shared machine.
	b.ReportMetric(float64(cpu.Microseconds())/float64(n), "cpu-µs/msg")
}

// cpuTime is this process's user plus system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

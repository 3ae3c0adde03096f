package submission

import (
	"fmt"
	"os/exec"
	"testing"
	"time"
)

// BenchmarkSubmission runs Postfix's smtp-source into the listener:
// 32 sessions, 4 KiB messages, one recipient; b.N messages in all (at least
// 2000). Every 250 means fsync'd in the queue. Reports msg/s.
//
//	go test -run XXX -bench Submission -benchtime 20000x ./submission/
func BenchmarkSubmission(b *testing.B) {
	src := needPeer(b, "smtp-source")
	r := startListener(b, func(o *Options) { o.MaxConns = 64 })
	n := max(b.N, 2000)
	b.ResetTimer()
	start := time.Now()
	out, err := exec.Command(src, "-s", "32", "-m", fmt.Sprint(n), "-l", "4096",
		"-f", "a@example.com", "-t", "b@example.org", r.addr).CombinedOutput()
	elapsed := time.Since(start)
	b.StopTimer()
	if err != nil {
		b.Fatalf("smtp-source: %v\n%s", err, out)
	}
	if got := countStored(b, r.store); got != n {
		b.Fatalf("%d messages stored, want %d", got, n)
	}
	b.ReportMetric(float64(n)/elapsed.Seconds(), "msg/s")
}

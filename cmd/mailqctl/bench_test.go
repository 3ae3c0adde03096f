package main

import (
	"strings"
	"testing"

	"mailq/control/server"
)

// BenchmarkSendmail measures sendmail-command submissions per second: one
// process per message through the control socket, as legacy programs do.
func BenchmarkSendmail(b *testing.B) {
	d := startDaemon(b, server.Options{})
	msg := "Subject: bench\n\n" + strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\n", 64)
	submit := func() {
		r := exe(b, "sendmail", []string{"MAILQ_CONFIG=" + d.config}, msg, "-i", "-f", "a@example.com", "b@example.org")
		if r.code != 0 {
			b.Errorf("sendmail: exit %d, stderr %q", r.code, r.stderr)
		}
	}
	b.Run("serial", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			submit()
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
	b.Run("parallel4", func(b *testing.B) {
		b.SetParallelism(2) // 4 goroutines on 2 cores
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				submit()
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
}

package server

import (
	"bytes"
	"context"
	"mailq/control"
	"testing"
)

// BenchmarkEnqueue64Clients measures control-socket enqueues per second with
// 64 concurrent clients, each with its own connection, 4 KiB messages.
func BenchmarkEnqueue64Clients(b *testing.B) {
	d := startDaemon(b, Options{})
	body := bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\r\n"), 64)
	e := env("a@example.com", "b@example.org")
	b.SetParallelism((64 + 1) / 2) // RunParallel starts parallelism*GOMAXPROCS goroutines; 64 on 2 cores
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c := control.NewClient(d.socket)
		for pb.Next() {
			if _, err := c.Enqueue(context.Background(), e, bytes.NewReader(body), "control"); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

package submission

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Memory and throughput benchmarks for the intake path (issue 10 item 6,
// issue 18 items 6 and 7). They report figures, they do not assert timings:
//
//	go test -run XXX -bench 'IntakeMemory|Submission100K' -benchtime 1x ./submission/
//
// peak-heap-MiB is the largest HeapInuse seen while the messages were in
// flight minus HeapInuse before; peak-anon-MiB the same for the process's
// anonymous resident memory (RssAnon: the heap as the kernel sees it, not
// the page cache of the mapped queue file). Listener and clients share the
// process; the clients stream generated bodies, so their share is small.

// BenchmarkIntakeMemory20x34MiB submits twenty 34 MiB messages at once.
func BenchmarkIntakeMemory20x34MiB(b *testing.B) { benchIntakeMemory(b, 20, 34<<20) }

// BenchmarkIntakeMemory1x200MiB submits one 200 MiB message.
func BenchmarkIntakeMemory1x200MiB(b *testing.B) { benchIntakeMemory(b, 1, 200<<20) }

func benchIntakeMemory(b *testing.B, clients int, size int64) {
	for range b.N {
		r := startListener(b, func(o *Options) {
			o.MaxMessageSize = size + 1<<20
			o.MaxConns = clients + 4
			o.Timeout = 10 * time.Minute
		})
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		anonBefore := rssAnon()
		var peak, peakAnon atomic.Int64
		stop := make(chan struct{})
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			var ms runtime.MemStats
			for {
				runtime.ReadMemStats(&ms)
				peak.Store(max(peak.Load(), int64(ms.HeapInuse)))
				peakAnon.Store(max(peakAnon.Load(), rssAnon()))
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
			}
		}()
		start := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, clients)
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- submitGenerated(r.addr, size)
			}()
		}
		wg.Wait()
		elapsed := time.Since(start)
		close(stop)
		<-sampled
		close(errs)
		for err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
		if got := countStored(b, r.store); got != clients {
			b.Fatalf("%d messages stored, want %d", got, clients)
		}
		b.ReportMetric(float64(peak.Load()-int64(before.HeapInuse))/(1<<20), "peak-heap-MiB")
		b.ReportMetric(float64(peakAnon.Load()-anonBefore)/(1<<20), "peak-anon-MiB")
		b.ReportMetric(float64(size*int64(clients))/(1<<20)/elapsed.Seconds(), "MiB/s")
	}
}

// submitGenerated sends one message of about size bytes of 76-column lines
// without holding it in memory.
func submitGenerated(addr string, size int64) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	br := bufio.NewReader(c)
	bw := bufio.NewWriterSize(c, 64<<10)
	expect := func(code string) error {
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return fmt.Errorf("waiting for %s: %w", code, err)
			}
			if !strings.HasPrefix(line, code) {
				return fmt.Errorf("got %q, want %s", line, code)
			}
			if len(line) < 4 || line[3] != '-' {
				return nil
			}
		}
	}
	if err := expect("220"); err != nil {
		return err
	}
	for _, step := range []struct{ cmd, code string }{
		{"EHLO bench.test", "250"}, {"MAIL FROM:<a@example.com>", "250"}, {"RCPT TO:<b@example.org>", "250"}, {"DATA", "354"},
	} {
		bw.WriteString(step.cmd + "\r\n")
		bw.Flush()
		if err := expect(step.code); err != nil {
			return err
		}
	}
	line := strings.Repeat("0123456789abcdefghij", 4)[:76] + "\r\n"
	bw.WriteString("Subject: big\r\n\r\n")
	for n := int64(0); n < size; n += int64(len(line)) {
		bw.WriteString(line)
	}
	bw.WriteString(".\r\n")
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := expect("250"); err != nil {
		return err
	}
	bw.WriteString("QUIT\r\n")
	bw.Flush()
	return nil
}

// rssAnon is the process's anonymous resident memory in bytes (Linux).
func rssAnon() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "RssAnon:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// BenchmarkSubmission100K sends b.N 100 KiB messages over 8 sessions
// (pipelined MAIL/RCPT/DATA, one 250 awaited per message) and reports msg/s.
func BenchmarkSubmission100K(b *testing.B) {
	r := startListener(b, func(o *Options) { o.MaxConns = 16 })
	line := strings.Repeat("0123456789abcdefghij", 4)[:76] + "\r\n"
	body := "Subject: bench\r\n\r\n" + strings.Repeat(line, 100<<10/len(line)) + ".\r\n"
	const sessions = 8
	var next atomic.Int64
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, sessions)
	for range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", r.addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			br := bufio.NewReader(c)
			reply := func() (string, error) {
				for {
					l, err := br.ReadString('\n')
					if err != nil || len(l) < 4 || l[3] != '-' {
						return l, err
					}
				}
			}
			reply()
			io.WriteString(c, "EHLO b\r\n")
			reply()
			for next.Add(1) <= int64(b.N) {
				io.WriteString(c, "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n")
				for range 3 {
					reply()
				}
				io.WriteString(c, body)
				if l, err := reply(); err != nil || !strings.HasPrefix(l, "250") {
					errs <- fmt.Errorf("end of data: %q %v", l, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msg/s")
}

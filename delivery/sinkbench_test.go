package delivery

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"mailq/queue"
	"mailq/queue/boltstore"
)

// sinkBenchCases are the message sizes of the sink benchmarks.
var sinkBenchCases = []struct {
	size, messages int
}{
	{4 << 10, 5000},
	{100 << 10, 2000},
}

// BenchmarkEndToEndSink drains a pre-filled queue into Postfix's smtp-sink
// running as its own process on a loopback ephemeral port, so the profile
// holds only mailq's side of the path (lease, body read, SMTP client,
// outcome), with the default delivery settings. It reports messages per
// second counted at the sink, store commits per delivered message, mailq's
// CPU time per message and the sink's CPU use (1 = the single-process sink
// is saturated, and it bounds the figure; compare BenchmarkSinkCeiling).
// Filling the queue is not timed.
//
//	go test -run '^$' -bench 'EndToEndSink|SinkCeiling' -benchtime 1x -cpuprofile cpu.out ./delivery/
//	go tool pprof -top -tagfocus phase=drain delivery.test cpu.out
func BenchmarkEndToEndSink(b *testing.B) {
	for _, c := range sinkBenchCases {
		b.Run(fmt.Sprintf("size=%dKiB", c.size>>10), func(b *testing.B) {
			body := benchBody(c.size)
			var elapsed, ourCPU, sinkCPU time.Duration
			var commits, leases int64
			for range b.N {
				b.StopTimer()
				sink := startSMTPSink(b)
				path := filepath.Join(b.TempDir(), "queue.db")
				store, err := boltstore.Open(path, queue.Options{})
				if err != nil {
					b.Fatal(err)
				}
				fill(b, store, c.messages, 1, body)
				if err := store.Close(); err != nil {
					b.Fatal(err)
				}
				// Reopened under the label, so that the store's writer
				// goroutine and every delivery goroutine carry it:
				// go tool pprof -tagfocus phase=drain leaves the filling out.
				var committed atomic.Int64
				var e *Engine
				var cs *countingStore
				ctx, cancel := context.WithCancel(context.Background())
				pprof.Do(ctx, pprof.Labels("phase", "drain"), func(ctx context.Context) {
					store, err = boltstore.Open(path, queue.Options{OnCommit: func(int) { committed.Add(1) }})
					if err != nil {
						b.Fatal(err)
					}
					cs = &countingStore{Store: store}
					e, err = New(Options{
						Store: cs, Routes: []Route{testRoute("sink", sink.port)},
						ShutdownGrace: 5 * time.Second, Hostname: "mailq.test", Logger: zerolog.Nop(),
					})
				})
				if err != nil {
					b.Fatal(err)
				}
				done := make(chan error, 1)
				b.StartTimer()
				start, cpu0, sink0 := time.Now(), processCPU(), sink.cpu()
				go pprof.Do(ctx, pprof.Labels("phase", "drain"), func(ctx context.Context) { done <- e.Run(ctx) })
				for sink.messages() < c.messages {
					if err := sink.exited(); err != nil {
						b.Fatalf("smtp-sink stopped after %d messages: %v", sink.messages(), err)
					}
					time.Sleep(time.Millisecond)
				}
				elapsed += time.Since(start)
				ourCPU += processCPU() - cpu0
				sinkCPU += sink.cpu() - sink0
				b.StopTimer()
				// The last outcomes are recorded just after the sink's
				// count; wait for them so the commit count is whole.
				for {
					st, err := store.Stats()
					if err != nil {
						b.Fatal(err)
					}
					if st.DeliveredTotal >= int64(c.messages) {
						break
					}
					time.Sleep(time.Millisecond)
				}
				commits += committed.Load()
				leases += cs.leases.Load()
				cancel()
				if err := <-done; err != nil {
					b.Fatal(err)
				}
				if err := store.Close(); err != nil {
					b.Fatal(err)
				}
				if got := sink.messages(); got != c.messages {
					b.Fatalf("smtp-sink counted %d messages, want exactly %d", got, c.messages)
				}
			}
			b.ReportMetric(float64(c.messages*b.N)/elapsed.Seconds(), "msg/s")
			b.ReportMetric(float64(commits)/float64(c.messages*b.N), "commits/msg")
			b.ReportMetric(float64(leases)/float64(c.messages*b.N), "leases/msg")
			b.ReportMetric(float64(ourCPU.Microseconds())/float64(c.messages*b.N), "cpu-µs/msg")
			b.ReportMetric(sinkCPU.Seconds()/elapsed.Seconds(), "sink-cpu/s")
		})
	}
}

// BenchmarkSinkCeiling is the loopback ceiling of BenchmarkEndToEndSink:
// Postfix's smtp-source sends the same number and size of messages over 8
// reused sessions (mailq's default connections per route) straight into
// smtp-sink.
func BenchmarkSinkCeiling(b *testing.B) {
	source, err := exec.LookPath("smtp-source")
	if err != nil {
		b.Fatalf("smtp-source not found (Debian package postfix; .ci/install-peers installs it): %v", err)
	}
	for _, c := range sinkBenchCases {
		b.Run(fmt.Sprintf("size=%dKiB", c.size>>10), func(b *testing.B) {
			var elapsed time.Duration
			for range b.N {
				b.StopTimer()
				sink := startSMTPSink(b)
				b.StartTimer()
				start := time.Now()
				out, err := exec.Command(source, "-d", "-s", "8", "-m", strconv.Itoa(c.messages), "-l", strconv.Itoa(c.size),
					"-f", "sender@client.test", "-t", "a@sink.test", "127.0.0.1:"+strconv.Itoa(sink.port)).CombinedOutput()
				if err != nil {
					b.Fatalf("smtp-source: %v: %s", err, out)
				}
				for sink.messages() < c.messages {
					if err := sink.exited(); err != nil {
						b.Fatalf("smtp-sink stopped after %d messages: %v", sink.messages(), err)
					}
					time.Sleep(time.Millisecond)
				}
				elapsed += time.Since(start)
				b.StopTimer()
			}
			b.ReportMetric(float64(c.messages*b.N)/elapsed.Seconds(), "msg/s")
		})
	}
}

// processCPU is this process's user and system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// countingStore counts the Lease transactions the scheduler makes.
type countingStore struct {
	queue.Store
	leases atomic.Int64
}

func (s *countingStore) Lease(now time.Time, max int) ([]queue.Lease, error) {
	s.leases.Add(1)
	return s.Store.Lease(now, max)
}

// smtpSink is Postfix's smtp-sink (Debian package postfix) on a loopback
// port, counting the messages it accepted.
type smtpSink struct {
	pid   int
	port  int
	count atomic.Int64
	done  chan struct{}
	err   error // valid once done is closed
}

func (s *smtpSink) messages() int { return int(s.count.Load()) }

// exited returns the reason the sink stopped, nil while it runs.
func (s *smtpSink) exited() error {
	select {
	case <-s.done:
		if s.err == nil {
			return fmt.Errorf("exited")
		}
		return s.err
	default:
		return nil
	}
}

// startSMTPSink starts smtp-sink on a free loopback port and stops it (by
// its process) when the benchmark ends. smtp-sink cannot report a port it
// chose itself, so a free one is found first; if another process takes it
// meanwhile, smtp-sink exits and a new port is tried.
func startSMTPSink(tb testing.TB) *smtpSink {
	tb.Helper()
	path, err := exec.LookPath("smtp-sink")
	if err != nil {
		tb.Fatalf("smtp-sink not found (Debian package postfix; .ci/install-peers installs it): %v", err)
	}
	for range 5 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		args := []string{"-c", "127.0.0.1:" + strconv.Itoa(port), "1024"}
		if os.Geteuid() == 0 {
			args = append([]string{"-u", "nobody"}, args...) // it refuses to run as root
		}
		cmd := exec.Command(path, args...)
		out, err := cmd.StdoutPipe()
		if err != nil {
			tb.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			tb.Fatalf("start smtp-sink: %v", err)
		}
		s := &smtpSink{pid: cmd.Process.Pid, port: port, done: make(chan struct{})}
		go func() {
			// -c prints "sess=N quit=N mesg=N" after each message, ended by \r.
			sc := bufio.NewScanner(out)
			sc.Split(scanCR)
			for sc.Scan() {
				for _, f := range strings.Fields(sc.Text()) {
					if v, ok := strings.CutPrefix(f, "mesg="); ok {
						if n, err := strconv.ParseInt(v, 10, 64); err == nil {
							s.count.Store(n)
						}
					}
				}
			}
			err := cmd.Wait()
			s.err = fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
			close(s.done)
		}()
		tb.Cleanup(func() {
			_ = cmd.Process.Kill()
			<-s.done
		})
		if s.waitListening() {
			return s
		}
		tb.Logf("smtp-sink on port %d: %v; trying another port", port, s.exited())
	}
	tb.Fatal("smtp-sink did not start on any of 5 free loopback ports")
	return nil
}

// cpu is the sink's user and system CPU time so far (/proc/PID/stat
// fields 14 and 15, in clock ticks of 1/100 s on Linux), 0 if unreadable.
func (s *smtpSink) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// waitListening waits until the sink accepts connections or exits.
func (s *smtpSink) waitListening() bool {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if s.exited() != nil {
			return false
		}
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(s.port), time.Second)
		if err == nil {
			c.Close()
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// scanCR splits on \r or \n.
func scanCR(data []byte, atEOF bool) (int, []byte, error) {
	for i, c := range data {
		if c == '\r' || c == '\n' {
			return i + 1, data[:i], nil
		}
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

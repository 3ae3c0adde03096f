package main

import (
	"bufio"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"mailq/queue/queuetest"
)

// TestDaemonMemoryUnderLoad is issue 13's memory goal as a test: 32 SMTP
// sessions submit messages that the daemon relays to a go-smtp sink, and
// all the while the daemon's footprint stays bounded. Before, the daemon's
// mapping of queue.db came to hold the whole file (every page a commit
// wrote was read back through it soon after), so its resident set grew
// with the mail that went through: 60 of the 80 MiB of a 15,000-message
// run, 240 MiB at 20,000 in bench/compare. The daemon under test is the
// -race build (its shadow memory inflates RssAnon), so the bounds are on
// what the race detector does not change: the resident part of the queue
// file's mapping, read from /proc/PID/smaps (11 MiB of the 16 MiB file
// before the busy trim, 5 MiB after it trimmed every 4 MiB; 17 MiB of an
// 83 MiB file since it trims every 16 MiB), and the Go heap in use, from
// /metrics (15 MiB).
func TestDaemonMemoryUnderLoad(t *testing.T) {
	const (
		messages = 4000
		sessions = 32
		bodySize = 24 << 10
		// The sink takes one message per sinkPace, slower than intake,
		// so a backlog builds and queue.db outgrows mapLimit well.
		sinkPace = 4 * time.Millisecond
		// bytes of queue.db resident in the mapping: the store trims it
		// once 16 MiB more is resident (trimGrowth in queue/boltstore),
		// plus what one commit and the deliveries beside it touch.
		mapLimit  = 24 << 20
		heapLimit = 48 << 20 // go_memstats_heap_inuse_bytes
	)
	var received atomic.Int64
	var paced sync.Mutex
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return countingSession{n: &received, paced: &paced, pace: sinkPace}, nil
	}))
	srv.Domain = "memory.sink.test"
	srv.ErrorLog = log.New(io.Discard, "", 0)
	sinkPort := serveSink(t, srv)

	dir := t.TempDir()
	metricsPort := freePort(t)
	cfg := crashConfig(t, dir, sinkPort)
	f, err := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "\n[metrics]\nlisten = \"127.0.0.1:%d\"\n", metricsPort)
	f.Close()
	// crashConfig has 8 delivery workers and the default per-address
	// session limit; the daemon's default workers and all 32 sessions
	// from 127.0.0.1 are the load here, as in bench/compare.
	text, _ := os.ReadFile(cfg)
	conf := strings.Replace(string(text), "[delivery]\nworkers = 8\n", "", 1)
	conf = strings.Replace(conf, "listen = \"127.0.0.1:0\"\n", "listen = \"127.0.0.1:0\"\nmax_connections_per_ip = 64\n", 1)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}

	run, addr := startCrashRun(t, cfg)
	defer run.d.stop(t)
	pid := run.d.cmd.Process.Pid
	dbPath := filepath.Join(dir, "data", "queue.db")

	var peakMap, peakHeap atomic.Int64
	stop, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		for i := 0; ; i++ {
			if kb, err := queuetest.MappedKiB(pid, dbPath); err == nil {
				peakMap.Store(max(peakMap.Load(), kb<<10))
			}
			if i%5 == 0 {
				if v, err := scrapeGauge(metricsPort, "go_memstats_heap_inuse_bytes"); err == nil {
					peakHeap.Store(max(peakHeap.Load(), int64(v)))
				}
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()

	body := strings.Repeat(strings.Repeat("x", 76)+"\r\n", bodySize/78+1)[:bodySize]
	var wg sync.WaitGroup
	errs := make(chan error, sessions)
	for s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- submitMany(addr, s, messages/sessions, body)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Minute)
	for received.Load() < messages && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	close(stop)
	<-sampled
	if got := received.Load(); got != messages {
		t.Fatalf("the sink received %d messages of %d", got, messages)
	}
	info, err := os.Stat(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d messages relayed: queue.db %d KiB; peaks: %d KiB of it mapped, Go heap in use %d KiB",
		messages, info.Size()>>10, peakMap.Load()>>10, peakHeap.Load()>>10)
	if info.Size() < 3*mapLimit/2 {
		t.Fatalf("queue.db grew to %d KiB only; the test needs it well above the bound (%d KiB)", info.Size()>>10, mapLimit>>10)
	}
	if peakHeap.Load() == 0 {
		t.Fatal("no heap figure was scraped from /metrics")
	}
	if peakMap.Load() > mapLimit {
		t.Errorf("the daemon's mapping of queue.db (%d KiB) held up to %d KiB resident; want at most %d KiB",
			info.Size()>>10, peakMap.Load()>>10, mapLimit>>10)
	}
	if peakHeap.Load() > heapLimit {
		t.Errorf("the daemon's Go heap in use peaked at %d KiB; want at most %d KiB", peakHeap.Load()>>10, heapLimit>>10)
	}
}

// countingSession is a sink session that counts the messages it accepts,
// one per pace across all sessions sharing paced.
type countingSession struct {
	n     *atomic.Int64
	paced *sync.Mutex
	pace  time.Duration
}

func (countingSession) Reset()                               {}
func (countingSession) Logout() error                        { return nil }
func (countingSession) Mail(string, *smtp.MailOptions) error { return nil }
func (countingSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s countingSession) Data(r io.Reader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	s.paced.Lock()
	time.Sleep(s.pace)
	s.paced.Unlock()
	s.n.Add(1)
	return nil
}

// submitMany sends n messages over one SMTP session, each acknowledged.
func submitMany(addr string, session, n int, body string) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.CommandTimeout, c.SubmissionTimeout = time.Minute, time.Minute
	for i := range n {
		to := fmt.Sprintf("s%d-%d@dest.test", session, i)
		if err := c.SendMail("app@client.test", []string{to}, strings.NewReader("Subject: memory\r\n\r\n"+body)); err != nil {
			return fmt.Errorf("session %d, message %d: %w", session, i, err)
		}
	}
	return c.Quit()
}

// scrapeGauge reads one unlabelled sample from the daemon's /metrics.
func scrapeGauge(port int, name string) (float64, error) {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(rest), 64)
		}
	}
	return 0, fmt.Errorf("no %s in /metrics", name)
}

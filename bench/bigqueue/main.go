// Command bigqueue measures mailq with a big queue (issue 18): it fills a
// store with N deferred 4 KiB messages whose route is down (a closed
// loopback port, retry in 100 h), starts the daemon on it and times
// restart-to-ready, flush, retry --all, hold of 10k ids and list --json,
// the SMTP reply to a message submitted during a flush, and both sides'
// peak memory. See bench/README.md.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"mailq/queue"
	"mailq/queue/boltstore"
)

func main() {
	sizes := flag.String("sizes", "100000,300000,1000000", "comma-separated queue lengths to measure")
	workDir := flag.String("dir", "", "scratch directory on the disk to measure (default: a new one under $TMPDIR or /var/tmp); removed afterwards unless -keep")
	keep := flag.Bool("keep", false, "keep the scratch directory")
	mailqBin := flag.String("mailq", "", "mailq binary (default: build ./cmd/mailq from this tree)")
	ctlBin := flag.String("mailqctl", "", "mailqctl binary (default: build ./cmd/mailqctl from this tree)")
	msgSize := flag.Int("size", 4096, "message size in bytes")
	holdN := flag.Int("hold", 10000, "ids given to hold (and then release) on standard input")
	drain := flag.Duration("drain", 20*time.Minute, "how long to wait for delivery to retry every flushed message")
	footprintOnly := flag.Bool("footprint", false, "measure only the daemon's resident memory, stats, list and restarts (issue 13)")
	fillOnly := flag.String("fill", "", "only fill DIR/queue.db with the first of -sizes deferred messages, then exit (bench/compare uses this)")
	reuse := flag.Bool("reuse", false, "with -footprint -dir D -keep: measure the store D/N/data/queue.db a previous such run left (closed cleanly) instead of filling a new one (a fill of 1M takes minutes)")
	flag.Parse()

	if *fillOnly != "" {
		n, err := strconv.Atoi(strings.TrimSpace(strings.Split(*sizes, ",")[0]))
		if err == nil && n > 0 {
			err = fill(filepath.Join(*fillOnly, "queue.db"), n, *msgSize)
		} else {
			err = fmt.Errorf("-sizes: %q is not a positive number", *sizes)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bigqueue: fill:", err)
			os.Exit(1)
		}
		return
	}

	if *reuse && (!*footprintOnly || *workDir == "") {
		fmt.Fprintln(os.Stderr, "bigqueue: -reuse needs -footprint and -dir")
		os.Exit(2)
	}
	reuseStore = *reuse
	if err := run(*sizes, *workDir, *keep, *mailqBin, *ctlBin, *msgSize, *holdN, *drain, *footprintOnly); err != nil {
		fmt.Fprintln(os.Stderr, "bigqueue:", err)
		os.Exit(1)
	}
}

type result struct {
	n                          int
	fill                       time.Duration
	ready                      time.Duration
	flush, flushDrain          time.Duration
	smtpDuringFlush            time.Duration
	retryAll, retryDrain       time.Duration
	hold, release              time.Duration
	list                       time.Duration
	listRows                   int
	daemonPeakKB, listClientKB int64
	fileMB                     int64
}

func run(sizesArg, workDir string, keep bool, mailqBin, ctlBin string, msgSize, holdN int, drain time.Duration, footprintOnly bool) error {
	var sizes []int
	for _, s := range strings.Split(sizesArg, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			return fmt.Errorf("-sizes: %q is not a positive number", s)
		}
		sizes = append(sizes, n)
	}
	if workDir == "" {
		base := os.Getenv("TMPDIR")
		if base == "" {
			base = "/var/tmp"
		}
		d, err := os.MkdirTemp(base, "mailq-bigqueue.")
		if err != nil {
			return err
		}
		workDir = d
	}
	if !keep {
		defer os.RemoveAll(workDir)
	}
	var err error
	if mailqBin == "" {
		if mailqBin, err = build(workDir, "mailq"); err != nil {
			return err
		}
	}
	if ctlBin == "" {
		if ctlBin, err = build(workDir, "mailqctl"); err != nil {
			return err
		}
	}
	var results []result
	var footprints []footprint
	for _, n := range sizes {
		fmt.Fprintf(os.Stderr, "== %d messages\n", n)
		dir := filepath.Join(workDir, strconv.Itoa(n))
		if footprintOnly {
			f, err := measureFootprint(dir, n, mailqBin, ctlBin, msgSize)
			if err != nil {
				return fmt.Errorf("%d messages: %w", n, err)
			}
			footprints = append(footprints, f)
			printFootprint(os.Stdout, footprints)
			if !keep {
				os.RemoveAll(dir)
			}
			continue
		}
		r, err := measure(dir, n, mailqBin, ctlBin, msgSize, holdN, drain)
		if err != nil {
			return fmt.Errorf("%d messages: %w", n, err)
		}
		results = append(results, r)
		printTable(os.Stdout, results)
		if !keep {
			os.RemoveAll(dir)
		}
	}
	return nil
}

func build(dir, name string) (string, error) {
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", out, "./cmd/"+name)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/%s (run bigqueue from the repository root): %w", name, err)
	}
	return out, nil
}

func measure(dir string, n int, mailqBin, ctlBin string, msgSize, holdN int, drain time.Duration) (result, error) {
	r := result{n: n}
	data := filepath.Join(dir, "data")
	start := time.Now()
	if err := fillInChild(filepath.Join(data, "queue.db"), n, msgSize); err != nil {
		return r, fmt.Errorf("fill: %w", err)
	}
	r.fill = time.Since(start)
	if fi, err := os.Stat(filepath.Join(data, "queue.db")); err == nil {
		r.fileMB = fi.Size() >> 20
	}
	fmt.Fprintf(os.Stderr, "filled in %v\n", r.fill.Round(time.Millisecond))

	cfg, smtpPort, err := writeConfig(dir, data)
	if err != nil {
		return r, err
	}

	d, err := startDaemon(mailqBin, cfg)
	if err != nil {
		return r, err
	}
	defer d.stop()
	r.ready = d.readyAfter
	fmt.Fprintf(os.Stderr, "ready after %v\n", r.ready.Round(time.Millisecond))
	ctl := func(stdin io.Reader, stdout io.Writer, args ...string) (time.Duration, int64, error) {
		return runCtl(ctlBin, cfg, stdin, stdout, args...)
	}

	// flush, with one SMTP message submitted while it runs.
	base, err := deferredTotal(ctl)
	if err != nil {
		return r, err
	}
	var wg sync.WaitGroup
	var flushErr error
	var flushDone atomic.Bool
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.flush, _, flushErr = ctl(nil, io.Discard, "flush")
		flushDone.Store(true)
	}()
	time.Sleep(300 * time.Millisecond)
	if flushDone.Load() {
		fmt.Fprintln(os.Stderr, "note: the flush ended before the SMTP submission; its latency is not 'during a flush'")
	}
	lat, err := submit(smtpPort)
	if err != nil {
		return r, fmt.Errorf("SMTP during flush: %w", err)
	}
	r.smtpDuringFlush = lat
	wg.Wait()
	if flushErr != nil {
		return r, fmt.Errorf("flush: %w", flushErr)
	}
	fmt.Fprintf(os.Stderr, "flush %v (SMTP during it %v)\n", r.flush.Round(time.Millisecond), lat.Round(time.Millisecond))
	if r.flushDrain, err = waitDeferred(ctl, base+int64(n), drain); err != nil {
		fmt.Fprintf(os.Stderr, "note: %v; going on\n", err)
		r.flushDrain = -1
	} else {
		fmt.Fprintf(os.Stderr, "every flushed message retried %v after the flush returned\n", r.flushDrain.Round(time.Millisecond))
	}

	base, err = deferredTotal(ctl)
	if err != nil {
		return r, err
	}
	if r.retryAll, _, err = ctl(nil, io.Discard, "retry", "--all"); err != nil {
		return r, fmt.Errorf("retry --all: %w", err)
	}
	fmt.Fprintf(os.Stderr, "retry --all %v\n", r.retryAll.Round(time.Millisecond))
	if r.retryDrain, err = waitDeferred(ctl, base+int64(n), drain); err != nil {
		fmt.Fprintf(os.Stderr, "note: %v; going on\n", err)
		r.retryDrain = -1
	}

	var ids bytes.Buffer
	for i := 1; i <= min(holdN, n); i++ {
		fmt.Fprintf(&ids, "%016x\n", i)
	}
	if r.hold, _, err = ctl(bytes.NewReader(ids.Bytes()), io.Discard, "hold", "-"); err != nil {
		return r, fmt.Errorf("hold: %w", err)
	}
	if r.release, _, err = ctl(bytes.NewReader(ids.Bytes()), io.Discard, "release", "-"); err != nil {
		return r, fmt.Errorf("release: %w", err)
	}
	fmt.Fprintf(os.Stderr, "hold %v, release %v\n", r.hold.Round(time.Millisecond), r.release.Round(time.Millisecond))

	lines := &lineCounter{}
	if r.list, r.listClientKB, err = ctl(nil, lines, "list", "--json"); err != nil {
		return r, fmt.Errorf("list --json: %w", err)
	}
	r.listRows = lines.n
	r.daemonPeakKB = d.peakKB()
	return r, nil
}

// fillInChild runs fill in a child process. A child's peak RSS as
// getrusage reports it starts from its parent's peak (the child shares the
// parent's memory until exec), so a bench that had mapped the whole store
// itself reported its own 761 MiB as every mailqctl's peak.
func fillInChild(path string, n, size int) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(self, "-fill", filepath.Dir(path), "-sizes", strconv.Itoa(n), "-size", strconv.Itoa(size))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd.Run()
}

// fill writes n messages and turns each into a deferred one, as a first
// attempt to a closed port would: leased, then retried in 100 h.
func fill(path string, n, size int) error {
	s, err := boltstore.Open(path, queue.Options{})
	if err != nil {
		return err
	}
	body := bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n"), size/64+1)[:size]
	copy(body, "Subject: bigqueue\r\n\r\n")
	// As many submitters as one group commit takes (maxBatchRequests in
	// boltstore): each commit's fsync then carries up to a thousand
	// messages, so a fill of 1M is bound by the disk's bandwidth, not its
	// fsyncs per second (64 submitters took 2 min per 100k on a busy disk).
	const submitters = 1000
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, submitters)
	for range submitters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				_, err := s.Enqueue(queue.Envelope{Sender: "a@example.com", Source: "smtp",
					Recipients: []queue.RecipientSpec{{Address: "b@example.org"}}}, bytes.NewReader(body))
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		s.Close()
		return err
	}
	retryAt := time.Now().Add(100 * time.Hour)
	for done := 0; done < n; {
		leases, err := s.Lease(time.Now(), 2000)
		if err != nil {
			s.Close()
			return err
		}
		if len(leases) == 0 {
			break
		}
		work := make(chan queue.Lease)
		var failed atomic.Value
		for range submitters {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for l := range work {
					out := []queue.Outcome{{Recipient: l.Recipients[0], Decision: queue.DecideRetry, RetryAt: retryAt,
						Reply: &queue.Reply{Code: 421, Enhanced: "4.4.1", Text: "connection refused"}}}
					if err := s.RecordOutcome(l, queue.Attempt{Time: time.Now(), Route: "down", Recipients: l.Recipients}, out); err != nil {
						failed.Store(err)
					}
				}
			}()
		}
		for _, l := range leases {
			work <- l
		}
		close(work)
		wg.Wait()
		if err, _ := failed.Load().(error); err != nil {
			s.Close()
			return err
		}
		done += len(leases)
	}
	return s.Close()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

type daemon struct {
	cmd        *exec.Cmd
	readyAfter time.Duration
	done       chan error
	rebuilt    atomic.Bool // it logged that it rebuilds its indexes
}

func startDaemon(bin, cfg string) (*daemon, error) {
	cmd := exec.Command(bin, "--config", cfg)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	d := &daemon{cmd: cmd, done: make(chan error, 1)}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		once := false
		for sc.Scan() {
			var line struct{ Level, Message string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Message == "ready" && !once {
				once = true
				close(ready)
			}
			if strings.HasPrefix(line.Message, "rebuilding the queue indexes") {
				d.rebuilt.Store(true)
			}
			if line.Level == "error" {
				fmt.Fprintf(os.Stderr, "mailq: %s\n", sc.Text())
			}
		}
		d.done <- cmd.Wait()
	}()
	// log_level warn hides "ready"; the control socket answering is the
	// same moment (it is bound before ready is logged).
	for {
		select {
		case <-ready:
		case err := <-d.done:
			return nil, fmt.Errorf("mailq exited before ready: %v", err)
		case <-time.After(50 * time.Millisecond):
			if !socketAnswers(cfg) {
				continue
			}
		}
		d.readyAfter = time.Since(start)
		return d, nil
	}
}

func socketAnswers(cfg string) bool {
	sock := filepath.Join(filepath.Dir(cfg), "control.sock")
	c, err := net.DialTimeout("unix", sock, 100*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// peakKB is the daemon's peak resident set (VmHWM).
func (d *daemon) peakKB() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb
		}
	}
	return -1
}

func (d *daemon) stop() {
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(2 * time.Minute):
		d.cmd.Process.Kill()
		<-d.done
	}
}

// runCtl runs mailqctl and returns its wall time and peak RSS (KiB).
func runCtl(bin, cfg string, stdin io.Reader, stdout io.Writer, args ...string) (time.Duration, int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--config", cfg}, args...)...)
	cmd.Stdin, cmd.Stdout = stdin, stdout
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	if err != nil {
		return took, 0, fmt.Errorf("mailqctl %s: %v: %s", strings.Join(args, " "), err, firstLines(stderr.String(), 3))
	}
	var maxRSS int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		maxRSS = ru.Maxrss
	}
	return took, maxRSS, nil
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], " | ")
}

func deferredTotal(ctl func(io.Reader, io.Writer, ...string) (time.Duration, int64, error)) (int64, error) {
	var out bytes.Buffer
	if _, _, err := ctl(nil, &out, "stats", "--json"); err != nil {
		return 0, err
	}
	var st struct {
		DeferredTotal int64 `json:"deferred_total"`
	}
	if err := json.Unmarshal(out.Bytes(), &st); err != nil {
		return 0, fmt.Errorf("stats --json: %w", err)
	}
	return st.DeferredTotal, nil
}

// waitDeferred waits until delivery has retried (and deferred again)
// every message a flush made due, i.e. deferred_total reached want.
func waitDeferred(ctl func(io.Reader, io.Writer, ...string) (time.Duration, int64, error), want int64, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	for {
		got, err := deferredTotal(ctl)
		if err != nil {
			return 0, err
		}
		if got >= want {
			return time.Since(start), nil
		}
		if time.Since(start) > limit {
			return 0, fmt.Errorf("delivery had %d of the flushed messages still to retry after %v (deferred_total %d, want %d)", want-got, limit, got, want)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// submit sends one message over SMTP and returns the time from the end of
// DATA to the server's reply.
func submit(port int) (time.Duration, error) {
	c, err := smtp.Dial(fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if err := c.Mail("a@example.com"); err != nil {
		return 0, err
	}
	if err := c.Rcpt("b@example.org"); err != nil {
		return 0, err
	}
	w, err := c.Data()
	if err != nil {
		return 0, err
	}
	io.WriteString(w, "Subject: during a flush\r\n\r\nhello\r\n")
	start := time.Now()
	if err := w.Close(); err != nil { // sends "." and reads the reply
		return 0, err
	}
	return time.Since(start), c.Quit()
}

type lineCounter struct{ n int }

func (l *lineCounter) Write(p []byte) (int, error) {
	l.n += bytes.Count(p, []byte("\n"))
	return len(p), nil
}

func printTable(w io.Writer, rs []result) {
	fmt.Fprintln(w, "| queued | file MB | fill | restart→ready | flush | SMTP 250 during flush | flush→all retried | retry --all | retry→all retried | hold 10k | release 10k | list --json (rows) | list client peak | daemon peak |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	sec := func(d time.Duration) string {
		if d < 0 {
			return "not within -drain"
		}
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
	for _, r := range rs {
		fmt.Fprintf(w, "| %d | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s (%d) | %d MB | %d MB |\n",
			r.n, r.fileMB, sec(r.fill), sec(r.ready), sec(r.flush), sec(r.smtpDuringFlush), sec(r.flushDrain),
			sec(r.retryAll), sec(r.retryDrain), sec(r.hold), sec(r.release), sec(r.list), r.listRows,
			r.listClientKB>>10, r.daemonPeakKB>>10)
	}
}

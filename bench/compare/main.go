// Command compare measures mailq against a private Postfix side by side on
// loopback (issue 13): both relay to one smtp-sink that counts every
// recipient exactly, fresh state per run, alternating order, medians of
// --runs; plus the loopback ceiling, the disk's fsyncs per second and,
// for mailq alone, a big queue with its route down. It exits 1 when any
// message is lost or duplicated. See docs/benchmarks.md; run it through
// bench/compare.sh (as root: Postfix's master starts as root).
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

type options struct {
	messages, sessions, runs, size int
	rcptMessages, largeMessages    int
	largeSize, sendmailN           int
	big                            []int
	dir, dumpDir                   string
	drain                          time.Duration
	targets                        []string
	figures                        map[string]bool // which figures to measure (--figures)
	baselineCtl                    string          // another mailqctl whose sendmail is measured alongside
}

// allFigures are the figures a run can measure, in the order it measures them.
var allFigures = []string{"intake", "e2e", "e2e10", "e2elarge", "sendmail"}

// measures reports whether fig was asked for.
func (o options) measures(fig string) bool { return o.figures[fig] }

var keepFiles bool

func main() {
	var o options
	flag.IntVar(&o.messages, "messages", 5000, "messages per run for the submission and end-to-end figures (the issue's: 20000)")
	flag.IntVar(&o.sessions, "sessions", 32, "concurrent SMTP sessions (smtp-source -s)")
	flag.IntVar(&o.runs, "runs", 3, "runs per system; the table shows medians (0: only the big-queue figures of --big)")
	flag.IntVar(&o.size, "size", 4096, "message size in bytes")
	flag.IntVar(&o.rcptMessages, "rcpt-messages", 0, "messages of the 10-recipient variant (default messages/5)")
	flag.IntVar(&o.largeMessages, "large-messages", 0, "messages of the 100 KiB variant (default messages/5)")
	flag.IntVar(&o.largeSize, "large-size", 100*1024, "size of the large variant's messages")
	flag.IntVar(&o.sendmailN, "sendmail", 0, "messages sent by sendmail -t -i, one process each (default messages/10, at most 1000)")
	bigArg := flag.String("big", "100000", "comma-separated queue lengths for mailq's big-queue figures; 0 for none (1000000 takes ~8 GB of disk); none by default when --figures is given")
	flag.StringVar(&o.dir, "dir", "", "scratch directory on the disk to measure (default: a new one under $TMPDIR or /var/tmp)")
	flag.StringVar(&o.dumpDir, "dump-dir", "/dev/shm", "where smtp-sink writes its capture files, each removed once counted (a tmpfs, so their writeback does not compete with the fsyncs measured)")
	flag.DurationVar(&o.drain, "drain-timeout", 10*time.Minute, "how long to wait for all messages of a figure at the sink")
	targets := flag.String("targets", "postfix,mailq", "systems to compare")
	flag.StringVar(&o.baselineCtl, "baseline-mailqctl", "", "a mailqctl binary (e.g. built from main) whose sendmail is timed alongside this tree's, blocks alternating, against the same daemon: the sendmail figure's before/after in one run")
	figures := flag.String("figures", strings.Join(allFigures, ","), "figures to measure (a subset of the default); e.g. e2elarge alone for the 100 KiB figure and its ceiling")
	smoke := flag.Bool("smoke", false, "a quick check that the command works (CI): 500 messages, 1 run, a 2,000-message big queue")
	flag.BoolVar(&keepFiles, "keep", false, "keep the scratch directory (logs, queues, the sink's log)")
	flag.Parse()
	given := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if given["figures"] && !given["big"] {
		*bigArg = "0" // a run for some figures wants those, not minutes of filling a big queue
	}
	if *smoke {
		o.messages, o.runs, o.sendmailN = 500, 1, 50
		*bigArg = "2000"
	}
	if o.runs < 0 {
		fatal(fmt.Errorf("--runs: %d is negative", o.runs))
	}
	if o.rcptMessages == 0 {
		o.rcptMessages = max(o.messages/5, 1)
	}
	if o.largeMessages == 0 {
		o.largeMessages = max(o.messages/5, 1)
	}
	if o.sendmailN == 0 {
		o.sendmailN = min(max(o.messages/10, 1), 1000)
	}
	for _, s := range strings.Split(*bigArg, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 0 {
			fatal(fmt.Errorf("--big: %q is not a number", s))
		}
		if n > 0 {
			o.big = append(o.big, n)
		}
	}
	o.figures = map[string]bool{}
	for _, f := range strings.Split(*figures, ",") {
		f = strings.TrimSpace(f)
		if !slices.Contains(allFigures, f) {
			fatal(fmt.Errorf("--figures: %q is not one of %s", f, strings.Join(allFigures, ",")))
		}
		o.figures[f] = true
	}
	if o.baselineCtl != "" {
		abs, err := filepath.Abs(o.baselineCtl)
		if err != nil {
			fatal(err)
		}
		o.baselineCtl = abs
	}
	o.targets = strings.Split(*targets, ",")
	for _, t := range o.targets {
		if t != "postfix" && t != "mailq" {
			fatal(fmt.Errorf("--targets: %q is neither postfix nor mailq", t))
		}
	}
	go func() {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
		<-ch
		fmt.Fprintln(os.Stderr, "compare: interrupted; stopping what it started")
		runCleanups()
		os.Exit(130)
	}()
	err := run(o)
	runCleanups()
	if err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "compare:", err)
	os.Exit(1)
}

var (
	cleanupMu sync.Mutex
	cleanups  []func()
)

// atExit registers f to run (last registered first) on exit or interrupt.
func atExit(f func()) {
	cleanupMu.Lock()
	defer cleanupMu.Unlock()
	cleanups = append(cleanups, f)
}

func runCleanups() {
	cleanupMu.Lock()
	defer cleanupMu.Unlock()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	cleanups = nil
}

type binaries struct {
	mailq, mailqctl, bigqueue string
	baselineCtl               string // --baseline-mailqctl, "" without
}

func buildAll(dir string) (*binaries, error) {
	b := &binaries{mailq: filepath.Join(dir, "mailq"), mailqctl: filepath.Join(dir, "mailqctl"), bigqueue: filepath.Join(dir, "bigqueue")}
	for out, pkg := range map[string]string{b.mailq: "./cmd/mailq", b.mailqctl: "./cmd/mailqctl", b.bigqueue: "./bench/bigqueue"} {
		cmd := exec.Command("go", "build", "-o", out, pkg)
		if pkg == "./cmd/mailqctl" {
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0") // as the Makefile builds it
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("go build %s (run from the repository root): %w", pkg, err)
		}
	}
	return b, nil
}

// system is what the runs need of either target.
type system interface {
	name() string
	start(relayPort int) error
	stop()
	pids() []int
	flush() error
	sendmailCmd(args ...string) *exec.Cmd
	smtpPort() int
}

func run(o options) error {
	base := o.dir
	if base == "" {
		b := os.Getenv("TMPDIR")
		if b == "" {
			b = "/var/tmp"
		}
		d, err := os.MkdirTemp(b, "mailq-compare.")
		if err != nil {
			return err
		}
		base = d
		if !keepFiles {
			atExit(func() { os.RemoveAll(d) })
		} else {
			atExit(func() { fmt.Fprintln(os.Stderr, "kept", d) })
		}
	}
	// 0711: Postfix's unprivileged daemons traverse it; nobody lists it.
	if err := os.Chmod(base, 0o711); err != nil {
		return err
	}
	dumpDir, err := os.MkdirTemp(o.dumpDir, "mailq-compare-sink.")
	if err != nil {
		if dumpDir, err = os.MkdirTemp(base, "sink."); err != nil {
			return err
		}
	}
	if !keepFiles {
		atExit(func() { os.RemoveAll(dumpDir) })
	}
	bins, err := buildAll(filepath.Join(base, "bin"))
	if err != nil {
		return err
	}
	bins.baselineCtl = o.baselineCtl
	pfVersion, _ := exec.Command("postconf", "-d", "-h", "mail_version").Output()

	res := newResults()
	loadBefore := loadavg()
	started := time.Now()
	fmt.Fprintf(os.Stderr, "compare: %d × %d B, %d sessions, %d runs; 10 recipients: %d messages; %d B: %d messages; sendmail: %d; scratch %s\n",
		o.messages, o.size, o.sessions, o.runs, o.rcptMessages, o.largeSize, o.largeMessages, o.sendmailN, base)
	for r := 1; r <= o.runs; r++ {
		if err := oneRun(o, r, base, dumpDir, bins, res); err != nil {
			return fmt.Errorf("run %d: %w", r, err)
		}
	}
	var bigs []bigResult
	for _, n := range o.big {
		fmt.Fprintf(os.Stderr, "== big queue: %d messages, route down (mailq)\n", n)
		b, err := bigQueue(base, bins, n, o.size)
		if err != nil {
			return fmt.Errorf("big queue of %d: %w", n, err)
		}
		bigs = append(bigs, b)
	}
	header := fmt.Sprintf("mailq (this tree) vs Postfix %s: %d × %d B, %d sessions, medians of %d runs, alternating order; %s, %d cores, load average %s at the start, %s at the end; %s",
		strings.TrimSpace(string(pfVersion)), o.messages, o.size, o.sessions, o.runs, started.UTC().Format("2006-01-02T15:04Z"),
		runtime.NumCPU(), loadBefore, loadavg(), time.Since(started).Round(time.Second))
	if o.runs > 0 {
		printTable(os.Stdout, header, o, res)
		res.cpu.print(os.Stdout, o.largeSize)
	}
	if len(bigs) > 0 {
		printBig(os.Stdout, bigs)
	}
	return nil
}

// oneRun measures every target once, each on fresh state, into res.
func oneRun(o options, r int, base, dumpDir string, bins *binaries, res *results) error {
	dir := filepath.Join(base, fmt.Sprintf("run%d", r))
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return err
	}
	if !keepFiles {
		defer os.RemoveAll(dir)
	}
	sk, err := startSink(dumpDir)
	if err != nil {
		return err
	}
	defer sk.stop()
	atExit(sk.stop)

	// The loopback ceiling: smtp-source straight into the same sink, at
	// the small size and (when that figure is measured) the large one.
	for _, c := range []struct {
		fig, tag string
		n, size  int
		want     bool
	}{
		{"ceiling", fmt.Sprintf("r%d-ceiling.bench", r), o.messages, o.size, o.measures("intake") || o.measures("e2e") || o.measures("e2e10")},
		{"ceilinglarge", fmt.Sprintf("r%d-ceilinglarge.bench", r), o.largeMessages, o.largeSize, o.measures("e2elarge")},
	} {
		if !c.want {
			continue
		}
		meter := startCPU(nil, sk.cmd.Process.Pid)
		took, srcCPU, err := smtpSourceUntilCounted(sk, sk.port, o.sessions, c.n, c.size, 1, c.tag, o.drain)
		if err != nil {
			return fmt.Errorf("loopback ceiling: %w", err)
		}
		if c.fig == "ceilinglarge" {
			res.addCPU(r, "ceiling", "", meter.stop(c.n, srcCPU))
		}
		res.add(c.fig, "", r, float64(c.n)/took.Seconds())
		fmt.Fprintf(os.Stderr, "run %d: ceiling at %d B: %.0f msg/s, load %s\n", r, c.size, float64(c.n)/took.Seconds(), loadavg())
	}
	fs, err := fsyncRate(dir, 2*time.Second)
	if err != nil {
		return fmt.Errorf("fsync probe: %w", err)
	}
	res.add("fsync", "", r, fs)
	fmt.Fprintf(os.Stderr, "run %d: %.0f fsyncs/s, load %s\n", r, fs, loadavg())

	order := append([]string(nil), o.targets...)
	if r%2 == 0 {
		for i, j := 0, len(order)-1; i < j; i, j = i+1, j-1 {
			order[i], order[j] = order[j], order[i]
		}
	}
	for _, name := range order {
		var sys system
		switch name {
		case "postfix":
			p, err := newPostfix(filepath.Join(dir, "postfix"))
			if err != nil {
				return err
			}
			sys = p
		case "mailq":
			m, err := newMailq(filepath.Join(dir, "mailq"), bins)
			if err != nil {
				return err
			}
			sys = m
		}
		atExit(sys.stop)
		err := measureSystem(o, r, sys, sk, res)
		sys.stop()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// measureSystem takes one system through every figure, sampling the memory
// of all its processes throughout.
func measureSystem(o options, r int, sys system, sk *sink, res *results) error {
	name := sys.name()
	tag := func(fig string) string { return fmt.Sprintf("r%d-%s-%s.bench", r, name, fig) }
	step := func(format string, a ...any) {
		fmt.Fprintf(os.Stderr, "run %d %-7s "+format+" (load %s)\n", append(append([]any{r, name}, a...), loadavg())...)
	}

	// 1. Intake with the route held: the next hop accepts TCP and never
	// greets, so each system's delivery agents wait and the disk and CPU go
	// to intake. smtp-source's wall time is the figure; every 250 is durable.
	// Without that figure the system starts with its route to the sink.
	var mem *sampler
	defer func() {
		if mem != nil {
			mem.stop()
		}
	}()
	if o.measures("intake") {
		if err := measureIntake(o, r, sys, sk, res, tag, step, &mem); err != nil {
			return err
		}
	} else {
		if err := sys.start(sk.port); err != nil {
			return err
		}
		mem = startSampler(sys.pids, 250*time.Millisecond)
	}

	// 2. End to end: SMTP in → every recipient counted at the sink, with
	// the memory of the 4 KiB figure alone sampled too (issue 13's goal).
	var e2eMem *sampler
	defer func() {
		if e2eMem != nil {
			e2eMem.stop()
		}
	}()
	for _, v := range []struct {
		fig         string
		n, size, rc int
	}{
		{"e2e", o.messages, o.size, 1},
		{"e2e10", o.rcptMessages, o.size, 10},
		{"e2elarge", o.largeMessages, o.largeSize, 1},
	} {
		if !o.measures(v.fig) {
			continue
		}
		meter := startCPU(sys.pids, sk.cmd.Process.Pid)
		if v.fig == "e2e" {
			e2eMem = startSampler(sys.pids, 100*time.Millisecond)
		}
		took, srcCPU, err := smtpSourceUntilCounted(sk, sys.smtpPort(), o.sessions, v.n, v.size, v.rc, tag(v.fig), o.drain)
		if err != nil {
			return fmt.Errorf("%s: %w", v.fig, err)
		}
		if v.fig == "e2elarge" {
			res.addCPU(r, name, name, meter.stop(v.n, srcCPU))
		}
		res.add(v.fig, name, r, float64(v.n)/took.Seconds())
		step("%s: %d × %d B × %d rcpt in %.2f s, %.0f msg/s", v.fig, v.n, v.size, v.rc, took.Seconds(), float64(v.n)/took.Seconds())
		if v.fig == "e2e" {
			peak := e2eMem.stop()
			e2eMem = nil
			res.add("rsse2e", name, r, float64(peak.rss)/1024)
			step("peak RSS during e2e %d MiB (all processes)", peak.rss>>10)
		}
	}

	// 3. sendmail -t -i, one process per message, one after another: the
	// figure is how fast a program calling it gets its messages stored.
	// With --baseline-mailqctl, mailq's figure is taken twice, the two
	// binaries alternating in blocks against the same daemon.
	sendmailSent := 0
	if o.measures("sendmail") {
		senders := []sender{{name, sys.sendmailCmd}}
		if m, ok := sys.(*mailqInst); ok && m.baselineSendmail != "" {
			senders = append(senders, sender{name + "-baseline", m.baselineSendmailCmd})
		}
		took, err := sendmailLoop(senders, o.sendmailN, o.size, tag("sendmail"))
		if err != nil {
			return fmt.Errorf("sendmail: %w", err)
		}
		for i, s := range senders {
			res.add("sendmail", s.system, r, float64(o.sendmailN)/took[i].Seconds())
			step("sendmail (%s): %d in %.2f s, %.1f msg/s", s.system, o.sendmailN, took[i].Seconds(), float64(o.sendmailN)/took[i].Seconds())
		}
		sendmailSent = o.sendmailN * len(senders)
		if _, err := sk.waitFor(tag("sendmail"), sendmailSent, o.drain); err != nil {
			return fmt.Errorf("sendmail: %w", err)
		}
	}

	peak := mem.stop()
	mem = nil
	res.add("rss", name, r, float64(peak.rss)/1024)
	res.add("pss", name, r, float64(peak.pss)/1024)
	step("peak RSS %d MiB, PSS %d MiB (all processes)", peak.rss>>10, peak.pss>>10)

	// Exactly once, for every figure, now that everything has settled.
	time.Sleep(500 * time.Millisecond)
	for _, c := range []struct {
		fig string
		n   int
	}{{"intake", o.messages}, {"e2e", o.messages}, {"e2e10", o.rcptMessages * 10}, {"e2elarge", o.largeMessages}, {"sendmail", sendmailSent}} {
		if !o.measures(c.fig) {
			continue
		}
		if err := sk.verify(tag(c.fig), c.n); err != nil {
			return err
		}
	}
	return nil
}

// measureIntake is the intake figure (route held) and the flush of that
// queue after a restart with the route to the sink; it leaves the system
// running, relaying to the sink, and its memory sampled into *mem.
func measureIntake(o options, r int, sys system, sk *sink, res *results, tag func(string) string, step func(string, ...any), mem **sampler) error {
	name := sys.name()
	hold, err := startHolder()
	if err != nil {
		return err
	}
	defer hold.close()
	if err := sys.start(hold.port); err != nil {
		return err
	}
	*mem = startSampler(sys.pids, 250*time.Millisecond)
	took, _, err := smtpSource(sys.smtpPort(), o.sessions, o.messages, o.size, 1, tag("intake"))
	if err != nil {
		return fmt.Errorf("intake: %w", err)
	}
	res.add("intake", name, r, float64(o.messages)/took.Seconds())
	step("intake: %d in %.2f s, %.0f msg/s", o.messages, took.Seconds(), float64(o.messages)/took.Seconds())

	// Then the same queue restarted with its route to the sink and flushed:
	// every acknowledged message must arrive exactly once.
	sys.stop()
	hold.close()
	if err := sys.start(sk.port); err != nil {
		return fmt.Errorf("restart with the route to the sink: %w", err)
	}
	start := time.Now()
	if err := sys.flush(); err != nil {
		return err
	}
	at, err := sk.waitFor(tag("intake"), o.messages, o.drain)
	if err != nil {
		return fmt.Errorf("after the restart and flush: %w", err)
	}
	res.add("flushed", name, r, float64(o.messages)/at.Sub(start).Seconds())
	step("flush after restart: all %d at the sink in %.2f s", o.messages, at.Sub(start).Seconds())
	return nil
}

// smtpSource runs smtp-source into 127.0.0.1:port and returns its wall time.
// -N makes every recipient address unique; the domain is the tag.
func smtpSource(port, sessions, n, size, rcpts int, tag string) (took, cpu time.Duration, err error) {
	args := []string{"-N", "-s", strconv.Itoa(sessions), "-m", strconv.Itoa(n), "-l", strconv.Itoa(size),
		"-f", "a@example.com", "-t", "x@" + tag}
	if rcpts > 1 {
		args = append(args, "-r", strconv.Itoa(rcpts))
	}
	args = append(args, fmt.Sprintf("127.0.0.1:%d", port))
	cmd := exec.Command("smtp-source", args...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err = cmd.Run()
	took = time.Since(start)
	if cmd.ProcessState != nil {
		cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	if err != nil || strings.Contains(out.String(), "smtp-source:") {
		return took, cpu, fmt.Errorf("smtp-source %s: %v: %s", strings.Join(args, " "), err, firstLines(out.String(), 5))
	}
	return took, cpu, nil
}

// smtpSourceUntilCounted is the time from smtp-source's start until the
// sink has counted every recipient.
// It also returns smtp-source's CPU time.
func smtpSourceUntilCounted(sk *sink, port, sessions, n, size, rcpts int, tag string, limit time.Duration) (time.Duration, time.Duration, error) {
	start := time.Now()
	_, cpu, err := smtpSource(port, sessions, n, size, rcpts, tag)
	if err != nil {
		return 0, cpu, err
	}
	at, err := sk.waitFor(tag, n*rcpts, limit)
	if err != nil {
		return 0, cpu, err
	}
	return at.Sub(start), cpu, nil
}

// sender is one sendmail to time: the system it counts for, and its command.
type sender struct {
	system string
	cmd    func(args ...string) *exec.Cmd
}

// sendmailLoop runs sendmail -t -i once per message, one at a time, n
// messages for each sender, in blocks that alternate between the senders
// so the machine's load falls on them alike; each message is addressed
// (To:) to a unique recipient under tag. It returns each sender's total time.
func sendmailLoop(senders []sender, n, size int, tag string) ([]time.Duration, error) {
	const block = 10
	body := filler(size)
	took := make([]time.Duration, len(senders))
	seq := 0
	for done := 0; done < n; done += block {
		for j := range senders {
			k := (j + done/block) % len(senders)
			s := senders[k]
			start := time.Now()
			for i := 0; i < min(block, n-done); i++ {
				seq++
				msg := fmt.Sprintf("From: a@example.com\nTo: s%d@%s\nSubject: bench %d\n\n%s", seq, tag, seq, body)
				cmd := s.cmd("-t", "-i", "-f", "a@example.com")
				cmd.Stdin = strings.NewReader(msg)
				if out, err := cmd.CombinedOutput(); err != nil {
					return nil, fmt.Errorf("%s, message %d: %v: %s", s.system, seq, err, firstLines(string(out), 3))
				}
			}
			took[k] += time.Since(start)
		}
	}
	return took, nil
}

// filler is size bytes of 78-character lines.
func filler(size int) string {
	var b strings.Builder
	line := strings.Repeat("x", 77) + "\n"
	for b.Len() < size {
		b.WriteString(line)
	}
	return b.String()[:size]
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(strings.TrimSpace(s), "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], " | ")
}

package main

// The -footprint mode (issue 13): with N deferred messages, what does the
// daemon hold in memory, and how long do list and stats take? It measures
// restart→ready, the daemon's resident set split into anonymous memory
// (heap, stacks) and file pages (bbolt's mmap: a page counts once touched),
// `stats` (median of 20), `list --json` and `list`, the resident set again
// after them, and the same start-up and resident set after a kill -9.

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// memStatus is what /proc/PID/status says of a process's memory, in KiB.
type memStatus struct{ rss, anon, file, hwm int64 }

func readMemStatus(pid int) memStatus {
	var m memStatus
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memStatus{-1, -1, -1, -1}
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(fields[1], 10, 64)
		switch fields[0] {
		case "VmRSS:":
			m.rss = kb
		case "RssAnon:":
			m.anon = kb
		case "RssFile:":
			m.file = kb
		case "VmHWM:":
			m.hwm = kb
		}
	}
	return m
}

func (m memStatus) String() string {
	return fmt.Sprintf("%d MiB (anon %d, file %d)", m.rss>>10, m.anon>>10, m.file>>10)
}

type footprint struct {
	n                   int
	fileMB              int64
	ready, crashReady   time.Duration
	idle, afterList     memStatus
	afterCrash          memStatus
	stats               time.Duration
	listJSON, listTable time.Duration
	rows                int
	listClientKB        int64
}

func measureFootprint(dir string, n int, mailqBin, ctlBin string, msgSize int) (footprint, error) {
	r := footprint{n: n}
	data := filepath.Join(dir, "data")
	start := time.Now()
	if err := fillInChild(filepath.Join(data, "queue.db"), n, msgSize); err != nil {
		return r, fmt.Errorf("fill: %w", err)
	}
	fmt.Fprintf(os.Stderr, "filled in %v\n", time.Since(start).Round(time.Millisecond))
	if fi, err := os.Stat(filepath.Join(data, "queue.db")); err == nil {
		r.fileMB = fi.Size() >> 20
	}
	cfg, _, err := writeConfig(dir, data)
	if err != nil {
		return r, err
	}
	// The file's pages are in the page cache after the fill; what counts
	// is what the daemon maps and touches, which RssFile shows either way.
	d, err := startDaemon(mailqBin, cfg)
	if err != nil {
		return r, err
	}
	r.ready = d.readyAfter
	time.Sleep(2 * time.Second) // let start-up work settle
	r.idle = readMemStatus(d.cmd.Process.Pid)
	fmt.Fprintf(os.Stderr, "ready after %v; resident %v\n", r.ready.Round(time.Millisecond), r.idle)
	ctl := func(stdout io.Writer, args ...string) (time.Duration, int64, error) {
		return runCtl(ctlBin, cfg, nil, stdout, args...)
	}
	var times []time.Duration
	for range 20 {
		took, _, err := ctl(io.Discard, "stats")
		if err != nil {
			d.stop()
			return r, err
		}
		times = append(times, took)
	}
	slices.Sort(times)
	r.stats = times[len(times)/2]
	lines := &lineCounter{}
	if r.listJSON, r.listClientKB, err = ctl(lines, "list", "--json"); err != nil {
		d.stop()
		return r, err
	}
	r.rows = lines.n
	if r.listTable, _, err = ctl(io.Discard, "list"); err != nil {
		d.stop()
		return r, err
	}
	r.afterList = readMemStatus(d.cmd.Process.Pid)
	fmt.Fprintf(os.Stderr, "stats %v, list --json %v (%d rows), list %v; resident %v, peak %d MiB\n",
		r.stats, r.listJSON.Round(time.Millisecond), r.rows, r.listTable.Round(time.Millisecond), r.afterList, r.afterList.hwm>>10)

	// kill -9: the next start recovers (and checks the file) from scratch.
	d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
	if d, err = startDaemon(mailqBin, cfg); err != nil {
		return r, fmt.Errorf("restart after kill -9: %w", err)
	}
	defer d.stop()
	r.crashReady = d.readyAfter
	time.Sleep(2 * time.Second)
	r.afterCrash = readMemStatus(d.cmd.Process.Pid)
	fmt.Fprintf(os.Stderr, "after kill -9: ready after %v; resident %v, peak %d MiB\n",
		r.crashReady.Round(time.Millisecond), r.afterCrash, r.afterCrash.hwm>>10)
	return r, nil
}

// writeConfig writes the daemon's configuration for the bench: the route
// is down (nobody listens on its port) and retries are 100 h apart.
func writeConfig(dir, data string) (cfg string, smtpPort int, err error) {
	if smtpPort, err = freePort(); err != nil {
		return "", 0, err
	}
	deadPort, err := freePort()
	if err != nil {
		return "", 0, err
	}
	cfg = filepath.Join(dir, "mailq.toml")
	text := fmt.Sprintf(`data_dir = %q
log_level = "warn"
[control]
socket = %q
[maildrop]
dir = %q
[[submission]]
listen = "127.0.0.1:%d"
[[route]]
name = "down"
domains = ["*"]
host = "127.0.0.1"
port = %d
[retry]
initial = "100h"
max_interval = "100h"
max_lifetime = "1000h"
delay_warning = "500h"
`, data, filepath.Join(dir, "control.sock"), filepath.Join(dir, "maildrop"), smtpPort, deadPort)
	return cfg, smtpPort, os.WriteFile(cfg, []byte(text), 0o600)
}

func printFootprint(w io.Writer, rs []footprint) {
	fmt.Fprintln(w, "| queued | file MB | restart→ready | resident idle (anon/file) | stats (median of 20) | list --json (rows) | list | resident after list (anon/file) | peak | list client peak | kill -9 → ready | resident after (anon/file) |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|")
	mem := func(m memStatus) string {
		return fmt.Sprintf("%d MiB (%d/%d)", m.rss>>10, m.anon>>10, m.file>>10)
	}
	for _, r := range rs {
		fmt.Fprintf(w, "| %d | %d | %.2f s | %s | %.1f ms | %.2f s (%d) | %.2f s | %s | %d MiB | %d MiB | %.2f s | %s |\n",
			r.n, r.fileMB, r.ready.Seconds(), mem(r.idle), float64(r.stats.Microseconds())/1000,
			r.listJSON.Seconds(), r.rows, r.listTable.Seconds(), mem(r.afterList), r.afterList.hwm>>10,
			r.listClientKB>>10, r.crashReady.Seconds(), mem(r.afterCrash))
	}
}

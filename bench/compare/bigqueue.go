package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// bigResult is mailq with n messages queued and its route down.
type bigResult struct {
	n                 int
	fileMB            int64
	fill              time.Duration
	start             time.Duration // exec → control socket answers, on the filled store
	list, stats       time.Duration // medians of 3
	listRows          int
	stop, restart     time.Duration // SIGTERM → exit; exec → socket answers again
	peakRSS, peakPSS  int64         // KiB, sampled
	hwm, rssAfterList int64         // KiB: VmHWM of the first daemon; its RSS after the lists
	idle, afterList   rssSplit      // the first daemon settled after start, and after the lists
	crash             time.Duration // kill -9, then start → socket answers (the file is checked)
	crashHWM          int64         // KiB: VmHWM of the daemon that recovered
}

// rssSplit is a resident set split into anonymous memory (heap, stacks)
// and file pages (bbolt's mapping: a page counts once touched), in KiB.
type rssSplit struct{ anon, file int64 }

func readRSSSplit(pid int) rssSplit {
	return rssSplit{procStatusKB(pid, "RssAnon:"), procStatusKB(pid, "RssFile:")}
}

func (r rssSplit) String() string { return fmt.Sprintf("%d / %d MiB", r.anon>>10, r.file>>10) }

// bigQueue fills a store with n deferred messages (bench/bigqueue -fill:
// through the queue API, as a first attempt to a dead next hop leaves
// them), starts mailq on it with the route still down and retries 100 h
// away, and times list --json, stats and a restart.
func bigQueue(base string, bins *binaries, n, size int) (bigResult, error) {
	r := bigResult{n: n}
	dir := filepath.Join(base, fmt.Sprintf("big%d", n))
	if !keepFiles {
		defer os.RemoveAll(dir)
	}
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		return r, err
	}
	start := time.Now()
	cmd := exec.Command(bins.bigqueue, "-fill", data, "-sizes", strconv.Itoa(n), "-size", strconv.Itoa(size))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return r, fmt.Errorf("bigqueue -fill: %w", err)
	}
	r.fill = time.Since(start)
	if fi, err := os.Stat(filepath.Join(data, "queue.db")); err == nil {
		r.fileMB = fi.Size() >> 20
	}
	fmt.Fprintf(os.Stderr, "big %d: filled in %.1f s (%d MB)\n", n, r.fill.Seconds(), r.fileMB)

	m, err := newMailq(dir, bins)
	if err != nil {
		return r, err
	}
	m.extra = `
[retry]
initial = "100h"
max_interval = "100h"
max_lifetime = "1000h"
delay_warning = "500h"
`
	dead, err := freePort() // nobody listens: the route is down
	if err != nil {
		return r, err
	}
	atExit(m.stop)
	defer m.stop()
	if r.start, err = m.startTimed(dead); err != nil {
		return r, err
	}
	mem := startSampler(m.pids, 250*time.Millisecond)
	defer func() {
		if mem != nil {
			mem.stop()
		}
	}()
	time.Sleep(time.Second) // let start-up work settle
	r.idle = readRSSSplit(m.pids()[0])

	var lists, statses []float64
	for i := 0; i < 3; i++ {
		rows := &lineCounter{}
		took, err := timeCtl(m, rows, "list", "--json")
		if err != nil {
			return r, err
		}
		if rows.n != n {
			return r, fmt.Errorf("list --json printed %d messages, %d are queued", rows.n, n)
		}
		r.listRows = rows.n
		lists = append(lists, took.Seconds())
		took, err = timeCtl(m, io.Discard, "stats")
		if err != nil {
			return r, err
		}
		statses = append(statses, took.Seconds())
	}
	r.list = time.Duration(median(lists) * float64(time.Second))
	r.stats = time.Duration(median(statses) * float64(time.Second))
	st, err := m.stats()
	if err != nil {
		return r, err
	}
	if st.Live != int64(n) {
		return r, fmt.Errorf("stats live = %d, %d were queued", st.Live, n)
	}
	r.hwm, r.rssAfterList = procStatusKB(m.pids()[0], "VmHWM:"), procStatusKB(m.pids()[0], "VmRSS:")
	r.afterList = readRSSSplit(m.pids()[0])
	r.stop = m.stopTimed()
	if r.restart, err = m.startTimed(dead); err != nil {
		return r, fmt.Errorf("restart: %w", err)
	}
	if st, err = m.stats(); err != nil || st.Live != int64(n) {
		return r, fmt.Errorf("after the restart: stats live = %d (%v), %d were queued", st.Live, err, n)
	}
	peak := mem.stop()
	mem = nil
	r.peakRSS, r.peakPSS = peak.rss, peak.pss

	// A crash: the next start checks the whole file and the indexes (in
	// bounded memory) before it answers.
	m.kill()
	if r.crash, err = m.startTimed(dead); err != nil {
		return r, fmt.Errorf("start after kill -9: %w", err)
	}
	r.crashHWM = procStatusKB(m.pids()[0], "VmHWM:")
	if st, err = m.stats(); err != nil || st.Live != int64(n) {
		return r, fmt.Errorf("after kill -9: stats live = %d (%v), %d were queued", st.Live, err, n)
	}
	fmt.Fprintf(os.Stderr, "big %d: start %.2f s, list %.2f s, stats %.3f s, stop %.2f s, restart %.2f s, peak RSS %d MiB, kill -9 → ready %.2f s (VmHWM %d MiB) (load %s)\n",
		n, r.start.Seconds(), r.list.Seconds(), r.stats.Seconds(), r.stop.Seconds(), r.restart.Seconds(), peak.rss>>10,
		r.crash.Seconds(), r.crashHWM>>10, loadavg())
	return r, nil
}

// timeCtl is the wall time of one mailqctl command, its output to w.
func timeCtl(m *mailqInst, w io.Writer, args ...string) (time.Duration, error) {
	cmd := exec.Command(m.bins.mailqctl, append([]string{"--config", m.cfg}, args...)...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = w, &stderr
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	if err != nil {
		return took, fmt.Errorf("mailqctl %s: %v: %s", strings.Join(args, " "), err, firstLines(stderr.String(), 3))
	}
	return took, nil
}

func procStatusKB(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, field) {
			if f := strings.Fields(line); len(f) >= 2 {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				return kb
			}
		}
	}
	return -1
}

type lineCounter struct{ n int }

func (l *lineCounter) Write(p []byte) (int, error) {
	l.n += bytes.Count(p, []byte("\n"))
	return len(p), nil
}

func printBig(w io.Writer, bs []bigResult) {
	fmt.Fprintln(w, "\nmailq with its route down (4 KiB messages, deferred, retry in 100 h):")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| queued | queue.db | start → socket answers | RSS idle (anon / file) | `list --json > /dev/null` (median of 3) | `stats` (median of 3) | RSS after the lists (anon / file) | stop (SIGTERM → exit) | restart: start → socket answers | daemon VmHWM | peak RSS / PSS (sampled) | kill -9, start → socket answers | its VmHWM |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, b := range bs {
		fmt.Fprintf(w, "| %d | %d MB | %.2f s | %s | %.2f s | %.0f ms | %s | %.2f s | %.2f s | %d MiB | %d / %d MiB | %.2f s | %d MiB |\n",
			b.n, b.fileMB, b.start.Seconds(), b.idle, b.list.Seconds(), b.stats.Seconds()*1000, b.afterList, b.stop.Seconds(), b.restart.Seconds(),
			b.hwm>>10, b.peakRSS>>10, b.peakPSS>>10, b.crash.Seconds(), b.crashHWM>>10)
	}
}

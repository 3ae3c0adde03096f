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

	bolt "go.etcd.io/bbolt"
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

// reuseStore (-reuse) measures a store a -keep run left instead of
// filling a new one.
var reuseStore bool

type footprint struct {
	n                   int
	fileMB              int64
	ready, crashReady   time.Duration
	rebuildReady        time.Duration
	idle, afterList     memStatus
	afterCrash          memStatus
	afterRebuild        memStatus
	duringList          memStatus // sampled while list --json streams
	stats               time.Duration
	listJSON, listTable time.Duration
	rows                int
	listClientKB        int64
}

func measureFootprint(dir string, n int, mailqBin, ctlBin string, msgSize int) (footprint, error) {
	r := footprint{n: n}
	data := filepath.Join(dir, "data")
	start := time.Now()
	dbPath := filepath.Join(data, "queue.db")
	if _, err := os.Stat(dbPath); reuseStore && err == nil {
		fmt.Fprintf(os.Stderr, "reusing %s\n", dbPath)
	} else if err := fillInChild(dbPath, n, msgSize); err != nil {
		return r, fmt.Errorf("fill: %w", err)
	} else {
		fmt.Fprintf(os.Stderr, "filled in %v\n", time.Since(start).Round(time.Millisecond))
	}
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
	sampling := sampleMemory(d.cmd.Process.Pid)
	r.listJSON, r.listClientKB, err = ctl(lines, "list", "--json")
	r.duringList = sampling()
	if err != nil {
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
	r.crashReady = d.readyAfter
	time.Sleep(2 * time.Second)
	r.afterCrash = readMemStatus(d.cmd.Process.Pid)
	fmt.Fprintf(os.Stderr, "after kill -9: ready after %v; resident %v, peak %d MiB\n",
		r.crashReady.Round(time.Millisecond), r.afterCrash, r.afterCrash.hwm>>10)

	// An index rebuild from every record (a store from an older mailq, or
	// indexes a check found disagreeing with the counts): batched, so its
	// memory must stay bounded however long the queue.
	d.stop()
	if err := forgetIndexes(dbPath); err != nil {
		return r, err
	}
	if d, err = startDaemon(mailqBin, cfg); err != nil {
		return r, fmt.Errorf("start with indexes to rebuild: %w", err)
	}
	defer d.stop()
	r.rebuildReady = d.readyAfter
	time.Sleep(2 * time.Second) // also lets the log reader see the rebuild's line
	if !d.rebuilt.Load() {
		return r, fmt.Errorf("the daemon did not rebuild its indexes after %s lost its index version", dbPath)
	}
	r.afterRebuild = readMemStatus(d.cmd.Process.Pid)
	fmt.Fprintf(os.Stderr, "index rebuild: ready after %v; resident %v, peak %d MiB\n",
		r.rebuildReady.Round(time.Millisecond), r.afterRebuild, r.afterRebuild.hwm>>10)
	return r, nil
}

// forgetIndexes removes the mark that says the store's indexes are
// current (boltstore's meta bucket, key index_version; meta.go), so the
// next Open rebuilds them from the records as it does for a store from
// an older mailq.
func forgetIndexes(path string) error {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return fmt.Errorf("open %s to drop its index version: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket([]byte("meta"))
		if meta == nil || meta.Get([]byte("index_version")) == nil {
			return fmt.Errorf("%s has no meta/index_version: the store's layout changed, update forgetIndexes", path)
		}
		return meta.Delete([]byte("index_version"))
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	return err
}

// sampleMemory samples pid's resident set every 100 ms until the returned
// function is called, which returns the sample with the largest RSS.
func sampleMemory(pid int) func() memStatus {
	stop, done := make(chan struct{}), make(chan memStatus)
	go func() {
		var top memStatus
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			if m := readMemStatus(pid); m.rss > top.rss {
				top = m
			}
			select {
			case <-stop:
				done <- top
				return
			case <-tick.C:
			}
		}
	}()
	return func() memStatus {
		close(stop)
		return <-done
	}
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
	fmt.Fprintln(w, "| queued | file MB | restart→ready | resident idle (anon/file) | stats (median of 20) | list --json (rows) | resident during list --json (anon/file) | list | resident after list (anon/file) | peak | list client peak | kill -9 → ready | resident after (anon/file), peak | index rebuild → ready | resident after (anon/file), peak |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	mem := func(m memStatus) string {
		return fmt.Sprintf("%d MiB (%d/%d)", m.rss>>10, m.anon>>10, m.file>>10)
	}
	for _, r := range rs {
		fmt.Fprintf(w, "| %d | %d | %.2f s | %s | %.1f ms | %.2f s (%d) | %s | %.2f s | %s | %d MiB | %d MiB | %.2f s | %s, %d MiB | %.2f s | %s, %d MiB |\n",
			r.n, r.fileMB, r.ready.Seconds(), mem(r.idle), float64(r.stats.Microseconds())/1000,
			r.listJSON.Seconds(), r.rows, mem(r.duringList), r.listTable.Seconds(), mem(r.afterList), r.afterList.hwm>>10,
			r.listClientKB>>10, r.crashReady.Seconds(), mem(r.afterCrash), r.afterCrash.hwm>>10,
			r.rebuildReady.Seconds(), mem(r.afterRebuild), r.afterRebuild.hwm>>10)
	}
}

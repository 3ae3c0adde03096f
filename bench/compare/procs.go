package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// freePort is a loopback TCP port nobody listens on right now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitListening(port int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on 127.0.0.1:%d after %v", port, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitOrKill(cmd *exec.Cmd, limit time.Duration) {
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(limit):
		cmd.Process.Kill()
		<-done
	}
}

// waitGone waits for a process that is not our child to exit.
func waitGone(pid int, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if syscall.Kill(pid, 0) != nil {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// killTree sends SIGKILL to pid and everything under it, by PID.
func killTree(pid int) {
	for _, p := range descendants(pid) {
		syscall.Kill(p, syscall.SIGKILL)
	}
}

// descendants is pid and every process below it, from /proc/*/stat.
func descendants(root int) []int {
	entries, _ := os.ReadDir("/proc")
	children := map[int][]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f := statFields(e.Name())
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		children[ppid] = append(children[ppid], pid)
	}
	out := []int{root}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// statFields is /proc/<pid>/stat from field 3 (state) on, so that f[i] is
// field i+3 of proc(5); nil when the process is gone.
func statFields(pid string) []string {
	b, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
	if err != nil {
		return nil
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

// memory is the sum over a system's processes of Rss and Pss (KiB).
type memory struct{ rss, pss int64 }

func readMemory(pids []int) memory {
	var m memory
	for _, pid := range pids {
		f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
		if err != nil {
			continue // exited meanwhile
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := sc.Text()
			var dst *int64
			switch {
			case strings.HasPrefix(line, "Rss:"):
				dst = &m.rss
			case strings.HasPrefix(line, "Pss:"):
				dst = &m.pss
			default:
				continue
			}
			if f := strings.Fields(line); len(f) >= 2 {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				*dst += kb
			}
		}
		f.Close()
	}
	return m
}

// sampler records the peak of readMemory(pids()) every interval until stopped.
type sampler struct {
	mu   sync.Mutex
	peak memory
	quit chan struct{}
	done chan struct{}
}

func startSampler(pids func() []int, interval time.Duration) *sampler {
	s := &sampler{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			m := readMemory(pids())
			s.mu.Lock()
			s.peak.rss = max(s.peak.rss, m.rss)
			s.peak.pss = max(s.peak.pss, m.pss)
			s.mu.Unlock()
			select {
			case <-s.quit:
				return
			case <-time.After(interval):
			}
		}
	}()
	return s
}

func (s *sampler) stop() memory {
	close(s.quit)
	<-s.done
	return s.peak
}

// fsyncRate is how many 4 KiB append+fsync pairs per second the disk
// under dir takes, for d: the bound of any durable queue that fsyncs per
// message (Postfix does, per queue file).
func fsyncRate(dir string, d time.Duration) (float64, error) {
	f, err := os.CreateTemp(dir, "fsync-probe.")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	block := bytes.Repeat([]byte{'x'}, 4096)
	start := time.Now()
	n := 0
	for time.Since(start) < d {
		if _, err := f.Write(block); err != nil {
			return 0, err
		}
		if err := f.Sync(); err != nil {
			return 0, err
		}
		n++
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// loadavg is the first field of /proc/loadavg.
func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "?"
}

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// mailqInst is a mailq daemon built from this tree with a generated config:
// data, control socket and maildrop under dir, one [[submission]] on a free
// loopback port, one route "*" to the port given to start.
type mailqInst struct {
	dir, cfg string
	bins     *binaries
	port     int
	extra    string // more TOML appended to the config (the big-queue retry policy)
	cmd      *exec.Cmd
	exited   chan error
	sendmail string // a link named sendmail to mailqctl: mailqctl is sendmail by argv[0]
	// baselineSendmail is a link named sendmail to --baseline-mailqctl, "" without.
	baselineSendmail string
	socket           string
	logPath          string
	startedAt        time.Time
	// pid is the running daemon's, 0 when stopped: the memory sampler
	// reads it from its own goroutine while a restart replaces cmd.
	pid atomic.Int64
}

func newMailq(dir string, bins *binaries) (*mailqInst, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	m := &mailqInst{dir: dir, cfg: filepath.Join(dir, "mailq.toml"), bins: bins, port: port,
		sendmail: filepath.Join(dir, "sendmail"), socket: filepath.Join(dir, "control.sock"),
		logPath: filepath.Join(dir, "mailq.log")}
	if err := os.Symlink(bins.mailqctl, m.sendmail); err != nil {
		return nil, err
	}
	if bins.baselineCtl != "" {
		m.baselineSendmail = filepath.Join(dir, "baseline", "sendmail")
		if err := os.MkdirAll(filepath.Dir(m.baselineSendmail), 0o755); err != nil {
			return nil, err
		}
		if err := os.Symlink(bins.baselineCtl, m.baselineSendmail); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *mailqInst) name() string { return "mailq" }

func (m *mailqInst) writeConfig(routePort int) error {
	group := "root"
	if g, err := user.LookupGroupId(fmt.Sprint(os.Getgid())); err == nil {
		group = g.Name
	}
	text := fmt.Sprintf(`data_dir = %q
hostname = "mailq-bench.localdomain"
shutdown_grace = "2s"

[control]
socket = %q
socket_group = %q

[maildrop]
dir = %q

# smtp-source's sessions all come from 127.0.0.1 (Postfix exempts
# $mynetworks from its per-client limits).
[[submission]]
listen = "127.0.0.1:%d"
max_connections = 1024
max_connections_per_ip = 1024

[[route]]
name = "bench"
domains = ["*"]
host = "127.0.0.1"
port = %d
%s`, filepath.Join(m.dir, "data"), m.socket, group, filepath.Join(m.dir, "maildrop"), m.port, routePort, m.extra)
	return os.WriteFile(m.cfg, []byte(text), 0o600)
}

// start execs the daemon relaying to 127.0.0.1:relayPort and returns once
// the control socket answers and the listener accepts.
func (m *mailqInst) start(relayPort int) error {
	_, err := m.startTimed(relayPort)
	return err
}

// startTimed is start, returning how long the control socket took to answer.
func (m *mailqInst) startTimed(relayPort int) (time.Duration, error) {
	if err := m.writeConfig(relayPort); err != nil {
		return 0, err
	}
	logf, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, err
	}
	defer logf.Close()
	m.cmd = exec.Command(m.bins.mailq, "--config", m.cfg)
	m.cmd.Stdout, m.cmd.Stderr = logf, logf
	m.startedAt = time.Now()
	if err := m.cmd.Start(); err != nil {
		return 0, err
	}
	m.pid.Store(int64(m.cmd.Process.Pid))
	m.exited = make(chan error, 1)
	go func(c *exec.Cmd, ch chan error) { ch <- c.Wait() }(m.cmd, m.exited)
	deadline := time.Now().Add(10 * time.Minute) // a 1M queue opens slowly on a busy box
	for !socketAnswers(m.socket) {
		select {
		case err := <-m.exited:
			m.cmd = nil
			m.pid.Store(0)
			return 0, fmt.Errorf("mailq exited before its control socket answered: %v (log: %s)", err, m.logPath)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("mailq's control socket did not answer within 10 minutes (log: %s)", m.logPath)
		}
	}
	took := time.Since(m.startedAt)
	return took, waitListening(m.port, 30*time.Second)
}

func (m *mailqInst) stop() { m.stopTimed() }

// stopTimed sends SIGTERM and waits for the daemon to exit; it returns how long that took.
func (m *mailqInst) stopTimed() time.Duration {
	if m.cmd == nil {
		return 0
	}
	start := time.Now()
	m.pid.Store(0)
	m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.exited:
	case <-time.After(2 * time.Minute):
		m.cmd.Process.Kill()
		<-m.exited
	}
	m.cmd = nil
	return time.Since(start)
}

// kill ends the daemon with SIGKILL, as a crash would.
func (m *mailqInst) kill() {
	if m.cmd == nil {
		return
	}
	m.pid.Store(0)
	m.cmd.Process.Kill()
	<-m.exited
	m.cmd = nil
}

func (m *mailqInst) pids() []int {
	if pid := m.pid.Load(); pid != 0 {
		return []int{int(pid)}
	}
	return nil
}

func (m *mailqInst) flush() error {
	_, err := m.ctl("flush")
	return err
}

// ctl runs mailqctl with this instance's config and returns its output.
func (m *mailqInst) ctl(args ...string) ([]byte, error) {
	cmd := exec.Command(m.bins.mailqctl, append([]string{"--config", m.cfg}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("mailqctl %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

type mailqStats struct {
	Live           int64 `json:"live"`
	DeliveredTotal int64 `json:"delivered_total"`
}

func (m *mailqInst) stats() (mailqStats, error) {
	var st mailqStats
	out, err := m.ctl("stats", "--json")
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(out, &st)
}

func (m *mailqInst) sendmailCmd(args ...string) *exec.Cmd {
	cmd := exec.Command(m.sendmail, args...)
	cmd.Env = append(os.Environ(), "MAILQ_CONFIG="+m.cfg)
	return cmd
}

// baselineSendmailCmd is sendmailCmd with --baseline-mailqctl.
func (m *mailqInst) baselineSendmailCmd(args ...string) *exec.Cmd {
	cmd := exec.Command(m.baselineSendmail, args...)
	cmd.Env = append(os.Environ(), "MAILQ_CONFIG="+m.cfg)
	return cmd
}

func (m *mailqInst) smtpPort() int { return m.port }

func socketAnswers(path string) bool {
	c, err := net.DialTimeout("unix", path, 100*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

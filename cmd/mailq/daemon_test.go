package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"mailq/queue/pgstore/pgtest"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildDir  string
)

// TestMain removes the binary built by buildMailq.
func TestMain(m *testing.M) {
	code := pgtest.Run(m) // stops the PostgreSQL server the multi-node tests started
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// buildMailq builds the daemon once per test run.
func buildMailq(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "mailq-bin-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(buildDir, "mailq")
		out, err := exec.Command("go", "build", "-race", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// testConfig writes a configuration that keeps everything in dir and
// binds no TCP port unless extra asks for one.
func testConfig(t *testing.T, dir, extra string) string {
	t.Helper()
	text := fmt.Sprintf(`data_dir = %q
submission = []
%s
[control]
socket = %q
[maildrop]
dir = %q
`, filepath.Join(dir, "data"), extra, filepath.Join(dir, "control.sock"), filepath.Join(dir, "maildrop"))
	path := filepath.Join(dir, "mailq.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// daemonProc is a running mailq with its stderr parsed line by line.
type daemonProc struct {
	cmd   *exec.Cmd
	lines chan map[string]any
	done  chan error
}

func startDaemon(t *testing.T, configPath string) *daemonProc {
	t.Helper()
	return startDaemonCmd(t, exec.Command(buildMailq(t), "--config", configPath))
}

// startDaemonCmd starts a prepared daemon command (another binary path, or
// another user's credentials).
func startDaemonCmd(t *testing.T, cmd *exec.Cmd) *daemonProc {
	t.Helper()
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET=", "WATCHDOG_USEC=")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &daemonProc{cmd: cmd, lines: make(chan map[string]any, 100), done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var line map[string]any
			if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
				line = map[string]any{"message": "NOT JSON: " + sc.Text()}
			}
			d.lines <- line
		}
		close(d.lines)
		d.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
		}
	})
	return d
}

// waitFor returns the first log line whose message is msg, failing on
// timeout or exit; it returns the lines seen before it too.
func (d *daemonProc) waitFor(t *testing.T, msg string, timeout time.Duration) (map[string]any, []map[string]any) {
	t.Helper()
	var seen []map[string]any
	deadline := time.After(timeout)
	for {
		select {
		case line, ok := <-d.lines:
			if !ok {
				t.Fatalf("mailq exited before logging %q; it logged: %v", msg, seen)
			}
			seen = append(seen, line)
			if line["message"] == msg {
				return line, seen
			}
		case <-deadline:
			t.Fatalf("no %q log line within %v; saw: %v", msg, timeout, seen)
		}
	}
}

func (d *daemonProc) stop(t *testing.T) {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	go func() {
		for range d.lines {
		}
	}()
	select {
	case err := <-d.done:
		if err != nil {
			t.Fatalf("after SIGTERM mailq exited with %v, want status 0", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("mailq did not exit within 10s of SIGTERM")
	}
}

func TestDaemonStartsReadyAndStopsCleanly(t *testing.T) {
	dir := t.TempDir()
	d := startDaemon(t, testConfig(t, dir, ""))
	ready, before := d.waitFor(t, "ready", 20*time.Second)
	if ready["level"] != "info" {
		t.Errorf("ready line level = %v, want info", ready["level"])
	}
	var start map[string]any
	for _, l := range before {
		if l["message"] == "mailq starting" {
			start = l
		}
	}
	if start == nil || start["version"] == nil || !strings.HasSuffix(fmt.Sprint(start["config"]), "mailq.toml") {
		t.Errorf("start line missing or without version/config: %v", start)
	}

	modes := []struct {
		path string
		want os.FileMode
	}{
		{filepath.Join(dir, "data"), 0o700},
		{filepath.Join(dir, "data", "queue.db"), 0o600},
		// The maildrop is writable once "ready" is logged (docs/maildrop.md).
		{filepath.Join(dir, "maildrop", "tmp"), 0o733 | os.ModeSetgid | os.ModeSticky},
		{filepath.Join(dir, "maildrop", "new"), 0o733 | os.ModeSetgid | os.ModeSticky},
		{filepath.Join(dir, "maildrop", "failed"), 0o750},
	}
	for _, m := range modes {
		info, err := os.Stat(m.path)
		if err != nil {
			t.Fatalf("after ready: %v", err)
		}
		if got := info.Mode() &^ os.ModeDir; got != m.want {
			t.Errorf("%s mode = %v, want %v", m.path, got, m.want)
		}
	}
	d.stop(t)
}

func TestDaemonServesMetrics(t *testing.T) {
	dir := t.TempDir()
	d := startDaemon(t, testConfig(t, dir, "[metrics]\nlisten = \"127.0.0.1:0\"\n"))
	_, before := d.waitFor(t, "ready", 20*time.Second)
	var addr string
	for _, l := range before {
		if l["message"] == "serving Prometheus metrics on /metrics" {
			addr = fmt.Sprint(l["listen"])
		}
	}
	if addr == "" {
		t.Fatalf("no metrics listen line before ready: %v", before)
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, name := range []string{"go_goroutines", "process_open_fds"} {
		if !strings.Contains(string(body), name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	d.stop(t)
}

func TestDaemonSIGHUPWithBadConfigKeepsRunning(t *testing.T) {
	dir := t.TempDir()
	path := testConfig(t, dir, "")
	d := startDaemon(t, path)
	d.waitFor(t, "ready", 20*time.Second)
	if err := os.WriteFile(path, []byte("[delivery]\nworkerz = 3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d.cmd.Process.Signal(syscall.SIGHUP)
	line, _ := d.waitFor(t, "reload failed; keeping the running configuration", 10*time.Second)
	if !strings.Contains(fmt.Sprint(line["error"]), "workerz") {
		t.Errorf("reload error does not name the key: %v", line["error"])
	}
	testConfig(t, dir, "") // valid again
	d.cmd.Process.Signal(syscall.SIGHUP)
	d.waitFor(t, "configuration reloaded", 10*time.Second)
	d.stop(t)
}

func TestStaleSocketRemovedLiveOneRefused(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "control.sock")

	// A socket file that nobody answers on, as a crash leaves it.
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	d := startDaemon(t, testConfig(t, dir, ""))
	d.waitFor(t, "ready", 20*time.Second)
	// The stale file was replaced by the daemon's own, live socket.
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Errorf("control socket %s does not answer after start: %v", sock, err)
	} else {
		c.Close()
	}
	d.stop(t)
	if _, err := os.Lstat(sock); err == nil {
		t.Errorf("control socket %s left behind after a clean stop", sock)
	}

	// A socket something answers on: mailq must refuse to start.
	live, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	out, err := exec.Command(buildMailq(t), "--config", filepath.Join(dir, "mailq.toml")).CombinedOutput()
	if code := exitCode(err); code != 1 || !strings.Contains(string(out), "another mailq answers") {
		t.Fatalf("with a live socket: exit %d, output %s; want exit 1 naming the other daemon", code, out)
	}
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

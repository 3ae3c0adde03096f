package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// misleadConfig routes stall.test to a server that accepts and never
// greets (an attempt stays in flight), refused.test to a closed port, and
// the rest to sink.
func misleadConfig(t *testing.T, sinkPort int) string {
	t.Helper()
	stall, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stall.Close() })
	go func() {
		var held []net.Conn
		for {
			c, err := stall.Accept()
			if err != nil {
				for _, c := range held {
					c.Close()
				}
				return
			}
			held = append(held, c) // never greets
		}
	}()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := closed.Addr().(*net.TCPAddr).Port
	closed.Close()
	route := func(name, domain string, port int) string {
		return fmt.Sprintf("[[route]]\nname = %q\ndomains = [%q]\nhost = \"127.0.0.1\"\nport = %d\nconnectiontimeout = 5000\ntimeout = 60000\n", name, domain, port)
	}
	return testConfig(t, t.TempDir(), sinkRoute(sinkPort)+route("stall", "stall.test", stall.Addr().(*net.TCPAddr).Port)+
		route("refused", "refused.test", closedPort))
}

// TestShowSaysWhatIs (issue 12 item 6), through the real binaries: each of
// the statements show, retry, release and hold used to get wrong.
func TestShowSaysWhatIs(t *testing.T) {
	sink := startOpsSink(t, "show", true)
	cfg := misleadConfig(t, sink.port)
	startOpsDaemon(t, cfg)

	// An attempt in flight is in progress, not interrupted.
	stalled := enqueue(t, cfg, "me@example.com", "a@stall.test")
	eventually(t, 10*time.Second, "the stalled message to be active", func() (bool, string) {
		m := showMessage(t, cfg, stalled)
		return m.Status == "active", m.Status
	})
	out := mustCtl(t, cfg, "", "show", stalled)
	if !strings.Contains(out, "in progress since") || strings.Contains(out, "interrupted") {
		t.Errorf("show of a message in flight:\n%s\nwant \"in progress since\", no \"interrupted\"", out)
	}
	var js map[string]any
	json.Unmarshal([]byte(mustCtl(t, cfg, "", "show", stalled, "--json")), &js)
	last, _ := js["attempts"].([]any)
	if len(last) == 0 || last[len(last)-1].(map[string]any)["in_progress"] != true || last[len(last)-1].(map[string]any)["interrupted"] != nil {
		t.Errorf("show --json of a message in flight: attempts %v; want in_progress true, no interrupted", js["attempts"])
	}

	// A refused connection says so, and names no timeout.
	refused := enqueue(t, cfg, "me@example.com", "b@refused.test")
	eventually(t, 20*time.Second, "the refused message to be deferred", func() (bool, string) {
		m := showMessage(t, cfg, refused)
		return m.Status == "deferred", m.Status
	})
	out = mustCtl(t, cfg, "", "show", refused)
	if !strings.Contains(out, "connection refused") || strings.Contains(out, "timeout") {
		t.Errorf("show after a refused connection:\n%s\nwant \"connection refused\" and no \"timeout\"", out)
	}

	// Held: no next attempt; retry does not claim "due now".
	mustCtl(t, cfg, "", "hold", refused)
	out = mustCtl(t, cfg, "", "show", refused)
	if !strings.Contains(out, "none while held") || strings.Contains(out, " in ") {
		t.Errorf("show of a held message:\n%s\nwant \"none while held\" and no \"in …\"", out)
	}
	if out = mustCtl(t, cfg, "", "retry", refused); strings.Contains(out, "due now") || !strings.Contains(out, "held: not retried") {
		t.Errorf("retry of a held message printed %q", out)
	}
	if out = mustCtl(t, cfg, "", "release", refused); !strings.Contains(out, "released") {
		t.Errorf("release of a held message printed %q", out)
	}
	if out = mustCtl(t, cfg, "", "release", refused); strings.Contains(out, "released") || !strings.Contains(out, "not held") {
		t.Errorf("release of a message not held printed %q", out)
	}

	// Finished: no next_attempt in JSON; errors say things once.
	done := enqueue(t, cfg, "me@example.com", "c@show.test")
	eventually(t, 20*time.Second, "delivery", func() (bool, string) {
		m := showMessage(t, cfg, done)
		return m.Status == "done", m.Status
	})
	out = mustCtl(t, cfg, "", "show", done, "--json")
	if strings.Contains(out, "next_attempt") || strings.Contains(out, "0001-01-01") {
		t.Errorf("show --json of a finished message has a next attempt: %s", out)
	}
	r := runCtl(t, buildMailqctl(t), cfg, "", "hold", done)
	if r.code != 1 || strings.Count(r.stderr, done) != 1 || strings.Count(r.stderr, "hold") != 1 || strings.Contains(r.stderr, "queue:") {
		t.Errorf("hold of a done message: exit %d, stderr %q; want exit 1 and an error that says each thing once", r.code, r.stderr)
	}
}

// TestRefusedSocketSaysPermission: a user who may not open the control
// socket is told so, not asked whether mailq is running.
func TestRefusedSocketSaysPermission(t *testing.T) {
	sink := startOpsSink(t, "perm", true)
	dir := t.TempDir()
	cfg := testConfig(t, dir, sinkRoute(sink.port))
	startOpsDaemon(t, cfg)
	sock := dir + "/control.sock"
	bin := buildMailqctl(t)
	if os.Getuid() == 0 {
		// nobody must be able to run the binary, only not to reach the socket.
		pub, err := os.MkdirTemp("", "mailqctl-pub-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(pub) })
		data, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		bin = filepath.Join(pub, "mailqctl")
		if err := os.WriteFile(bin, data, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(pub, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "--socket", sock, "stats")
	if os.Getuid() == 0 {
		// root passes every permission check: ask as nobody, who may not
		// enter the test's directory.
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	} else if err := os.Chmod(sock, 0); err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	if code := exitCode(err); code != 3 || !strings.Contains(stderr.String(), "permission denied") || strings.Contains(stderr.String(), "is mailq running") {
		t.Errorf("mailqctl stats on a socket it may not open: exit %d (%v), stderr %q; want exit 3 and \"permission denied\"", code, err, stderr.String())
	}
}

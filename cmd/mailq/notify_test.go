package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSystemdNotifications runs mailq as systemd would, with a notify
// socket and a watchdog, and checks READY=1, WATCHDOG=1 and STOPPING=1.
func TestSystemdNotifications(t *testing.T) {
	dir := t.TempDir()
	sockPath := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sockPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	got := make(chan string, 64)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, _, err := conn.ReadFromUnix(buf)
			if err != nil {
				close(got)
				return
			}
			got <- string(buf[:n])
		}
	}()

	cmd := exec.Command(buildMailq(t), "--config", testConfig(t, dir, ""))
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sockPath, "WATCHDOG_USEC=200000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	expect := func(state string) {
		t.Helper()
		deadline := time.After(15 * time.Second)
		for {
			select {
			case msg := <-got:
				if strings.Contains(msg, state) {
					return
				}
			case <-deadline:
				t.Fatalf("no %s from mailq within 15s", state)
			}
		}
	}
	expect("READY=1")
	expect("WATCHDOG=1") // every 100ms with WATCHDOG_USEC=200000
	expect("WATCHDOG=1")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	expect("STOPPING=1")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v, want 0", err)
	}
}

package main

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestSIGTERMWhileTheQueueOpens stops mailq while it waits to open its
// queue (the test holds the file's lock, as a long open would keep it
// busy): the signal is honoured with a log line and exit status 0, not the
// default handler's silent death (issue 18 item 3).
func TestSIGTERMWhileTheQueueOpens(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(filepath.Join(dir, "data", "queue.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	d := startDaemon(t, testConfig(t, dir, ""))
	d.waitFor(t, "mailq starting", 20*time.Second)
	// mailq now waits up to 2 s for the lock held above.
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	stopLine, seen := d.waitFor(t, "stopping during start-up, before the queue was open; nothing acknowledged is lost and the next start picks up where this one stopped", 10*time.Second)
	if stopLine["signal"] != "terminated" {
		t.Errorf("stop line = %v, want signal terminated", stopLine)
	}
	for _, l := range seen {
		if l["level"] == "error" {
			t.Errorf("error logged before stopping: %v", l)
		}
	}
	go func() {
		for range d.lines {
		}
	}()
	select {
	case err := <-d.done:
		if err != nil {
			t.Fatalf("mailq exited with %v after SIGTERM during start-up, want status 0", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("mailq did not exit within 10s of SIGTERM during start-up")
	}
}

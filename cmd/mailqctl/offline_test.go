package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDaemonBinary: $MAILQ_DAEMON wins; else "mailq" beside mailqctl when
// it is another program; installed, that name is a link to mailqctl
// itself, which must never be run as the daemon: then the build-time
// libexec path is used, and its absence is a clear error.
func TestDaemonBinary(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	sibling := filepath.Join(filepath.Dir(self), "mailq")
	t.Cleanup(func() { os.Remove(sibling) })
	oldPath := daemonPath
	t.Cleanup(func() { daemonPath = oldPath })
	daemonPath = filepath.Join(t.TempDir(), "libexec-mailq")

	t.Setenv("MAILQ_DAEMON", "/opt/x/mailq")
	if got, err := daemonBinary(); err != nil || got != "/opt/x/mailq" {
		t.Errorf("with MAILQ_DAEMON: %q, %v", got, err)
	}
	t.Setenv("MAILQ_DAEMON", "")

	// Installed layout: bin/mailq is a link to mailqctl, no daemon at daemonPath.
	if err := os.Symlink(self, sibling); err != nil {
		t.Fatal(err)
	}
	if got, err := daemonBinary(); err == nil || !strings.Contains(err.Error(), "MAILQ_DAEMON") {
		t.Errorf("with mailq a link to mailqctl and no daemon: %q, %v; want an error naming MAILQ_DAEMON", got, err)
	}
	if err := os.WriteFile(daemonPath, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got, err := daemonBinary(); err != nil || got != daemonPath {
		t.Errorf("with the daemon installed: %q, %v; want %s", got, err, daemonPath)
	}

	// Build tree: a daemon binary of its own beside mailqctl comes first.
	os.Remove(sibling)
	if err := os.WriteFile(sibling, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got, err := daemonBinary(); err != nil || got != sibling {
		t.Errorf("with a daemon beside mailqctl: %q, %v; want %s", got, err, sibling)
	}
}

// TestLinksNoStore: mailqctl (and so sendmail, one process per message)
// links no store: a stopped queue is read through `mailq read-queue`.
func TestLinksNoStore(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "go.etcd.io/bbolt") || dep == "mailq/queue/boltstore" {
			t.Errorf("mailqctl links %s", dep)
		}
	}
}

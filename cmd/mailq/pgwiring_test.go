package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mailq/queue/pgstore"
	"mailq/queue/pgstore/pgtest"
)

// TestPostgresBackendWiring: with [queue] backend = "postgres",
// --check-config connects and reports the schema version (masking the DSN,
// and failing clearly when it cannot connect), the daemon runs on the
// database and says so, a second daemon on the same node is refused, and
// check-store says it needs the bbolt backend; mailqctl on a stopped node
// points at the running ones instead of a queue file.
func TestPostgresBackendWiring(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	const password = "pg-pass-never-shown"
	literal := func(dsn string) string {
		dir := t.TempDir()
		return testConfig(t, dir, fmt.Sprintf("[queue]\nbackend = \"postgres\"\ndsn = %q\nnode_name = \"mx1\"\n", dsn+" password="+password))
	}

	code, out := runMailq(t, "--check-config", "--config", literal(dsn))
	if code != 0 || !strings.Contains(out, "# queue: PostgreSQL reachable; no mailq schema yet: the first node to start creates version 1") ||
		!strings.Contains(out, `dsn = "********"`) || strings.Contains(out, password) {
		t.Errorf("--check-config on a fresh database: exit %d, want 0, the version to come and the DSN masked:\n%s", code, out)
	}

	nowhere := "host=" + filepath.Join(t.TempDir(), "no-server") + " user=postgres dbname=mailq connect_timeout=5"
	code, out = runMailq(t, "--check-config", "--config", literal(nowhere))
	if code != 1 || !strings.Contains(out, "connect to the queue database") || strings.Contains(out, password) {
		t.Errorf("--check-config with no server: exit %d, want 1 and a connection error without the password:\n%s", code, out)
	}

	dir := t.TempDir()
	cfg := pgConfig(t, dir, "mx1", dsn, "")
	d := startDaemon(t, cfg)
	ready, _ := d.waitFor(t, "ready", 60*time.Second)
	if q := fmt.Sprint(ready["queue"]); q != fmt.Sprintf("postgres (node mx1, schema version %d)", pgstore.LatestVersion()) {
		t.Errorf("ready says the queue is %q", q)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "queue.db")); err == nil {
		t.Error("a queue.db was created although the queue is in PostgreSQL")
	}
	code, out = runMailq(t, "--config", cfg)
	if code != 1 || !strings.Contains(out, "another mailq runs on data_dir") {
		t.Errorf("a second daemon on the same node: exit %d, want 1 and refused:\n%s", code, out)
	}
	code, out = runMailq(t, "--check-config", "--config", cfg)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("schema version %d (current)", pgstore.LatestVersion())) {
		t.Errorf("--check-config with a node running: exit %d:\n%s", code, out)
	}
	code, out = runMailq(t, "check-store", "--config", cfg)
	if code != 1 || !strings.Contains(out, "check-store needs the bbolt backend") {
		t.Errorf("check-store on a PostgreSQL configuration: exit %d, want 1 and why:\n%s", code, out)
	}
	d.stop(t)
	// Stopped, a node has no queue file to read instead: mailqctl says where the queue is.
	if r := runCtl(t, buildMailqctl(t), cfg, "", "list"); r.code == 0 || !strings.Contains(r.stderr, "the queue is in PostgreSQL") {
		t.Errorf("mailqctl list with the node stopped: exit %d, stderr %q; want a pointer to a running node", r.code, r.stderr)
	}
}

package main

import (
	"strings"
	"testing"
	"time"
)

// TestReadQueueWhileStopped: with the daemon stopped, list, show, stats,
// cat and summary read the queue file read-only and say so; while it runs
// but its socket is elsewhere, they say the file is in use instead of
// hanging on its lock.
func TestReadQueueWhileStopped(t *testing.T) {
	sink := startOpsSink(t, "offline", false)
	cfg := testConfig(t, t.TempDir(), sinkRoute(sink.port))
	d, _ := startOpsDaemon(t, cfg)
	id := enqueue(t, cfg, "me@example.com", "defer-1@offline.test")
	eventually(t, 20*time.Second, "deferred", func() (bool, string) {
		m := showMessage(t, cfg, id)
		return m.Status == "deferred", m.Status
	})

	bin := buildMailqctl(t)
	r := runCtl(t, bin, cfg, "", "--socket", "/nonexistent/mailq.sock", "list")
	if r.code != 3 || !strings.Contains(r.stderr, "in use by a running mailq") && !strings.Contains(r.stderr, "has the queue file") {
		t.Errorf("list with the daemon up but its socket elsewhere: exit %d, stderr %q", r.code, r.stderr)
	}
	d.stop(t)

	for _, args := range [][]string{{"list"}, {"show", id}, {"stats"}, {"cat", id}, {"summary"}, {"list", "--ids", "--to", "offline.test"}} {
		r := runCtl(t, bin, cfg, "", args...)
		if r.code != 0 || !strings.Contains(r.stderr, "read-only") {
			t.Errorf("mailqctl %v with the daemon stopped: exit %d, stderr %q", args, r.code, r.stderr)
			continue
		}
		want := map[string]string{"list": id, "show": "defer-1@offline.test", "stats": "deferred:", "cat": "Subject: ops test", "summary": "offline.test 1"}[args[0]]
		if !strings.Contains(strings.Join(strings.Fields(r.stdout), " "), want) {
			t.Errorf("mailqctl %v read-only printed %q, want %q in it", args, r.stdout, want)
		}
	}
	if r := runCtl(t, bin, cfg, "", "hold", id); r.code != 3 {
		t.Errorf("hold with the daemon stopped: exit %d (stderr %q), want 3: only reading falls back", r.code, r.stderr)
	}
}

package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBackupUnderLoadRestores takes `mailqctl backup` while SMTP and
// `mailqctl enqueue` submit and deliveries run, restores it the way the
// README says (stop, put the file in place, start), and finds in the
// restored queue every message acknowledged before the backup began.
func TestBackupUnderLoadRestores(t *testing.T) {
	sink := startCrashSink(t, 0.3)
	dir := t.TempDir()
	cfg := crashConfig(t, dir, sink.port)
	ctl := buildMailqctl(t)
	run, addr := startCrashRun(t, cfg)
	load := &crashLoad{cfg: cfg, ctl: ctl, stop: make(chan struct{})}
	load.smtpAddr.Store(addr)
	for range 2 {
		load.wg.Add(1)
		go load.submitSMTP()
	}
	load.wg.Add(1)
	go load.enqueueCtl()

	waitAcks := func(n int) {
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			load.mu.Lock()
			got := len(load.acks)
			load.mu.Unlock()
			if got >= n {
				return
			}
		}
		t.Fatalf("fewer than %d messages acknowledged within 30s", n)
	}
	waitAcks(60)
	load.mu.Lock()
	before := append([]crashAck(nil), load.acks...)
	load.mu.Unlock()
	backup := filepath.Join(dir, "queue-backup.db")
	out := runCtl(t, ctl, cfg, "", "backup", backup)
	if out.code != 0 || !strings.Contains(out.stdout, "written to "+backup) {
		t.Fatalf("mailqctl backup: exit %d\n%s%s", out.code, out.stdout, out.stderr)
	}
	waitAcks(len(before) + 10) // intake went on after the snapshot
	close(load.stop)
	load.wg.Wait()
	for _, p := range load.problems {
		t.Error(p)
	}
	if info, err := os.Stat(backup); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("backup file: %v, mode %v; want 0600", err, info.Mode().Perm())
	}
	run.d.stop(t)

	// Restore as the README says: stop, move the live file aside, put the
	// backup in its place, start.
	data := filepath.Join(dir, "data")
	if err := os.Rename(filepath.Join(data, "queue.db"), filepath.Join(dir, "queue.db.old")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(backup, filepath.Join(data, "queue.db")); err != nil {
		t.Fatal(err)
	}
	if code, out := runMailq(t, "check-store", "--data-dir", data); code != 0 {
		t.Fatalf("check-store on the backup: exit %d\n%s", code, out)
	}
	run, _ = startCrashRun(t, cfg)
	defer run.d.stop(t)
	ids := map[string]bool{}
	for _, status := range []string{"", "done"} {
		cmd := exec.Command(ctl, "list", "--json", "--status", status)
		cmd.Env = append(os.Environ(), "MAILQ_CONFIG="+cfg)
		raw, err := cmd.Output()
		if err != nil {
			t.Fatalf("mailqctl list --status %q: %v", status, err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
			var m struct{ ID string }
			if line != "" && json.Unmarshal([]byte(line), &m) == nil {
				ids[m.ID] = true
			}
		}
	}
	missing := 0
	for _, a := range before {
		if !ids[a.ref] {
			missing++
			t.Errorf("message %s (%s via %s) was acknowledged before the backup but is not in the restored queue", a.ref, a.token, a.path)
		}
	}
	t.Logf("%d messages acknowledged before the backup, all %d in the restored queue (of %d there)", len(before), len(before)-missing, len(ids))
}

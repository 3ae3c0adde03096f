package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"mailq/queue"
	"mailq/queue/boltstore"
)

// makeStore fills dir/data/queue.db with n messages (some of several body
// chunks) the way the daemon would, and returns the file's path.
func makeStore(t *testing.T, dir string, n int) string {
	t.Helper()
	path := filepath.Join(dir, "data", "queue.db")
	s, err := boltstore.Open(path, queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		env := queue.Envelope{Sender: "app@client.test", Recipients: []queue.RecipientSpec{{Address: fmt.Sprintf("r%d@dest.test", i)}}}
		body := fmt.Sprintf("Subject: %d\r\n\r\n%s\r\n", i, strings.Repeat("b", (i%7)*30000))
		if _, err := s.Enqueue(env, strings.NewReader(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func writeAt(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// pagesInUse reads, from bbolt's first meta page, how many bytes the
// file's pages in use span (page size × high-water mark).
func pagesInUse(t *testing.T, path string) int64 {
	t.Helper()
	b := make([]byte, 128)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return int64(binary.LittleEndian.Uint32(b[16+8:])) * int64(binary.LittleEndian.Uint64(b[16+40:]))
}

// runMailq runs the real binary to its end and returns its exit status and output.
func runMailq(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(buildMailq(t), args...)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET=", "WATCHDOG_USEC=")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return exitCode(err), out.String()
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done // the copy goroutines have stopped writing to out only once Wait returns
		t.Fatalf("mailq %v still running after 60s; output so far:\n%s", args, out.String())
	}
	return 0, ""
}

// TestDaemonRefusesDamagedStore reproduces each damage of issue 17 on
// the real binary: start-up ends with exit 1 and a message that says the
// store is damaged, where it is, and the two commands to run; never a
// panic, a SIGBUS or a fresh empty queue.
func TestDaemonRefusesDamagedStore(t *testing.T) {
	cases := []struct {
		name   string
		damage func(t *testing.T, path string)
		why    string
	}{
		{"both meta pages", func(t *testing.T, path string) {
			writeAt(t, path, 16+12, []byte("junk"))
			writeAt(t, path, 4096+16+12, []byte("junk"))
		}, "both bbolt meta pages"},
		{"1000 random byte flips", func(t *testing.T, path string) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			// Flips within the pages in use past the two headers, so each
			// one lands on data bbolt reads at open or mailq checks.
			used := pagesInUse(t, path)
			rng := rand.New(rand.NewPCG(17, 1000))
			for range 1000 {
				b[8192+rng.Int64N(used-8192)] ^= byte(1 + rng.IntN(255))
			}
			os.WriteFile(path, b, 0o600)
		}, "damaged"},
		{"truncated to a third", func(t *testing.T, path string) {
			os.Truncate(path, pagesInUse(t, path)/3)
		}, "cut short"},
		{"zero bytes", func(t *testing.T, path string) { os.Truncate(path, 0) }, "empty (0 bytes)"},
		{"missing after a queue was there", func(t *testing.T, path string) { os.Remove(path) }, "the file is missing"},
		{"not a bbolt file", func(t *testing.T, path string) {
			os.WriteFile(path, bytes.Repeat([]byte("From: someone\nnot a database\n"), 1000), 0o600)
		}, "not a bbolt database"},
		{"another program's bbolt file", func(t *testing.T, path string) {
			os.Remove(path)
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			db.Update(func(tx *bolt.Tx) error {
				b, err := tx.CreateBucket([]byte("sessions"))
				if err != nil {
					return err
				}
				return b.Put([]byte("k"), []byte("v"))
			})
			db.Close()
		}, "another program's bbolt database"},
		{"newer schema version", func(t *testing.T, path string) {
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("mailq")).Put([]byte("schema"), []byte("2")) })
			db.Close()
		}, "newer mailq (schema version 2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig(t, dir, "")
			path := makeStore(t, dir, 60)
			c.damage(t, path)
			before, _ := os.ReadFile(path)
			code, out := runMailq(t, "--config", cfg)
			if code != 1 {
				t.Errorf("exit status %d, want 1; output:\n%s", code, out)
			}
			for _, bad := range []string{"panic", "SIGBUS", "fatal error", "goroutine ", `"ready"`} {
				if strings.Contains(out, bad) {
					t.Errorf("output contains %q:\n%s", bad, out)
				}
			}
			for _, want := range []string{"is damaged", c.why, path, "mailq check-store", "mailq salvage --from " + path} {
				if !strings.Contains(out, want) {
					t.Errorf("output does not say %q:\n%s", want, out)
				}
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
				t.Error("the refused start changed the damaged file")
			}
		})
	}
}

// TestCheckStoreAndSalvageCommands: on a store with a broken body and both
// headers damaged, check-store exits 0 on the healthy store and 1 on the
// damaged one naming the message; salvage saves the rest, names the lost
// message and its recipient, and the daemon runs on the salvaged store.
func TestCheckStoreAndSalvageCommands(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, "")
	path := makeStore(t, dir, 40)
	dataDir := filepath.Dir(path)
	code, out := runMailq(t, "check-store", "--data-dir", dataDir)
	if code != 0 || !strings.Contains(out, "messages: 40 (queued 40,") || !strings.Contains(out, "problems: 0") {
		t.Fatalf("check-store on a healthy store: exit %d\n%s", code, out)
	}
	code, out = runMailq(t, "check-store", "--config", cfg)
	if code != 0 || !strings.Contains(out, path) {
		t.Fatalf("check-store --config: exit %d\n%s", code, out)
	}

	victim := "0000000000000005" // r4@dest.test, 4×30000 bytes: chunks 0 and 1
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error {
		// Each body is a bucket of its own inside bodies (queue/boltstore/bodies.go).
		body := tx.Bucket([]byte("bodies")).Bucket([]byte(victim))
		if body == nil {
			t.Fatalf("no body bucket for %s", victim)
		}
		return body.Delete(append([]byte(victim), 0, 0, 0, 1))
	})
	db.Close()
	// Rewritten afresh, so no freed page still holds the chunk: salvage
	// reads the pages for what the tree lacks, and would find it there.
	rewriteStore(t, path)
	code, out = runMailq(t, "check-store", "--data-dir", dataDir)
	if code != 1 || !strings.Contains(out, "message "+victim+": body incomplete") || !strings.Contains(out, "problems: 1") {
		t.Errorf("check-store on a store with a broken body: exit %d, want 1 naming %s\n%s", code, victim, out)
	}
	writeAt(t, path, 16+12, []byte("junk"))
	writeAt(t, path, 4096+16+12, []byte("junk"))
	code, out = runMailq(t, "check-store", "--data-dir", dataDir)
	if code != 1 || !strings.Contains(out, "both bbolt meta pages") {
		t.Errorf("check-store on damaged headers: exit %d, want 1\n%s", code, out)
	}

	salvaged := filepath.Join(dir, "salvaged.db")
	code, out = runMailq(t, "salvage", "--from", path, "--to", salvaged)
	if code != 1 || !strings.Contains(out, "saved 39 messages") || !strings.Contains(out, "lost "+victim) || !strings.Contains(out, "r4@dest.test") {
		t.Fatalf("salvage: exit %d, want 1 with 39 saved and %s (r4@dest.test) lost\n%s", code, victim, out)
	}
	if code, out := runMailq(t, "salvage", "--from", path, "--to", salvaged); code != 1 || !strings.Contains(out, "already exists") {
		t.Errorf("salvage onto an existing file: exit %d\n%s", code, out)
	}
	if err := os.Rename(path, path+".damaged"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(salvaged, path); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, cfg)
	d.waitFor(t, "ready", 20*time.Second)
	st, err := readCrashStats(buildMailqctl(t), cfg)
	if err != nil || st.Live != 39 {
		t.Errorf("after restoring the salvaged store: stats %+v (%v), want 39 live", st, err)
	}
	d.stop(t)
}

// rewriteStore copies the bbolt file at path into a fresh one (bolt.Compact)
// and puts it in its place, so its freed pages hold nothing deleted.
func rewriteStore(t *testing.T, path string) {
	t.Helper()
	src, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := bolt.Open(path+".fresh", 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := bolt.Compact(dst, src, 0); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".fresh", path); err != nil {
		t.Fatal(err)
	}
}

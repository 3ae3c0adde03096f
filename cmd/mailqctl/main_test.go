package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"mailq/control/server"
	"mailq/queue"
	"mailq/queue/boltstore"
)

// binDir holds the mailqctl binary built once for the tests, and a
// "sendmail" symlink to it.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mailqctl-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "mailqctl"), ".").CombinedOutput()
	if err == nil {
		err = os.Symlink("mailqctl", filepath.Join(dir, "sendmail"))
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "building mailqctl for the tests: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	os.Chmod(dir, 0o755) // the unprivileged-peer test runs it as nobody
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// daemon is the control server over a real store, on a temp socket, with a
// configuration file that names the socket and the maildrop.
type daemon struct {
	store    queue.Store
	dir      string // short temp dir: socket, maildrop, config
	socket   string
	maildrop string
	config   string
}

func startDaemon(t testing.TB, opts server.Options) *daemon {
	t.Helper()
	dir, err := os.MkdirTemp("", "mqd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	d := &daemon{dir: dir, socket: filepath.Join(dir, "control.sock"), maildrop: filepath.Join(dir, "maildrop"),
		config: filepath.Join(dir, "mailq.toml")}
	for _, sub := range []string{"tmp", "new", "failed"} {
		if err := os.MkdirAll(filepath.Join(d.maildrop, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	cfg := fmt.Sprintf("data_dir = %q\nhostname = \"host.test\"\n[control]\nsocket = %q\n[maildrop]\ndir = %q\n",
		filepath.Join(dir, "data"), d.socket, d.maildrop)
	if err := os.WriteFile(d.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	d.store, err = boltstore.Open(filepath.Join(t.TempDir(), "queue.db"), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	opts.Store, opts.Hostname, opts.Logger = d.store, "host.test", zerolog.Nop()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := server.New(opts).Serve(ctx, d.socket, ""); err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		d.store.Close()
	})
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("unix", d.socket)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("control server did not come up: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return d
}

type result struct {
	stdout, stderr string
	code           int
}

// exe runs a binary from binDir with env added to a clean environment.
func exe(t testing.TB, name string, env []string, stdin string, args ...string) result {
	t.Helper()
	return exeCmd(t, exec.Command(filepath.Join(binDir, name), args...), env, stdin)
}

func exeCmd(t testing.TB, cmd *exec.Cmd, env []string, stdin string) result {
	t.Helper()
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "MAILQ_CONFIG=/nonexistent/mailq.toml", "USER=tester", "LOGNAME=tester"}, env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running %s: %v", cmd.Path, err)
	}
	return result{out.String(), errb.String(), code}
}

// ctl runs mailqctl against the daemon.
func (d *daemon) ctl(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	return exe(t, "mailqctl", nil, stdin, append([]string{"--socket", d.socket, "--maildrop", d.maildrop}, args...)...)
}

// mustCtl runs mailqctl and fails the test unless it exits 0.
func (d *daemon) mustCtl(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	r := d.ctl(t, stdin, args...)
	if r.code != 0 {
		t.Fatalf("mailqctl %q: exit %d\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

func (d *daemon) enqueue(t *testing.T, sender string, rcpts ...string) queue.ID {
	t.Helper()
	e := queue.Envelope{Sender: sender}
	for _, r := range rcpts {
		e.Recipients = append(e.Recipients, queue.RecipientSpec{Address: r})
	}
	id, err := d.store.Enqueue(e, strings.NewReader("Subject: test\r\n\r\nbody\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func (d *daemon) body(t *testing.T, id queue.ID) string {
	t.Helper()
	rc, err := d.store.Body(id)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// onlyMessage returns the single live message in the store.
func (d *daemon) onlyMessage(t *testing.T) *queue.Message {
	t.Helper()
	var ms []*queue.Message
	if err := d.store.List(queue.Filter{}, func(m *queue.Message) error { ms = append(ms, m); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 {
		t.Fatalf("store holds %d live messages, want 1", len(ms))
	}
	m, err := d.store.Get(ms[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

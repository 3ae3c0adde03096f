package submission

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/rs/zerolog"
	"mailq/queue"
	"mailq/queue/boltstore"
)

const crashChildEnv = "MAILQ_SUBMISSION_CRASH_CHILD"

// TestMain lets the test binary act as the crash test's child daemon.
func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		runCrashChild(dir)
		return
	}
	os.Exit(m.Run())
}

// runCrashChild serves a listener over a store in dir and prints its
// address; it runs until killed.
func runCrashChild(dir string) {
	st, err := boltstore.Open(filepath.Join(dir, "queue.db"), queue.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	l, err := New(Options{Listen: "127.0.0.1:0", Hostname: "crash.test", Store: st, Logger: zerolog.New(io.Discard), MaxConns: 64})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(l.Addr().String())
	l.Serve(context.Background())
}

// TestCrashKeepsAcknowledgedMessages: clients submit over many connections
// while the daemon is SIGKILLed at a random moment; every message that got a
// 250 is in the store afterwards, byte for byte.
func TestCrashKeepsAcknowledgedMessages(t *testing.T) {
	dir := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	child := exec.Command(exe, "-test.run=^$")
	child.Env = append(os.Environ(), crashChildEnv+"="+dir)
	stdout, _ := child.StdoutPipe()
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Process.Kill()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("child did not report its address: %v", err)
	}
	addr := strings.TrimSpace(line)

	var mu sync.Mutex
	acked := map[queue.ID]string{}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for conn := 0; ; conn++ {
				if !submitSome(addr, w, conn, func(id queue.ID, msg string) {
					mu.Lock()
					acked[id] = msg
					mu.Unlock()
				}) {
					return
				}
			}
		}()
	}
	time.Sleep(time.Duration(800+rand.IntN(1200)) * time.Millisecond)
	child.Process.Kill() // SIGKILL
	child.Wait()
	wg.Wait()

	st, err := boltstore.Open(filepath.Join(dir, "queue.db"), queue.Options{})
	if err != nil {
		t.Fatalf("reopening the store after the crash: %v", err)
	}
	defer st.Close()
	if len(acked) < 10 {
		t.Fatalf("only %d messages acknowledged before the kill; the test proves little", len(acked))
	}
	for id, msg := range acked {
		rc, err := st.Body(id)
		if err != nil {
			t.Errorf("acknowledged message %s lost: %v", id, err)
			continue
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if got := stripReceived(t, string(b)); got != msg {
			t.Errorf("message %s differs: got %q, want %q", id, got, msg)
		}
	}
	t.Logf("%d acknowledged messages all present after SIGKILL", len(acked))
}

// submitSome sends messages on one connection until an error; it reports
// whether the daemon still answered (false once it is gone).
func submitSome(addr string, worker, conn int, ack func(queue.ID, string)) bool {
	c, err := smtp.Dial(addr)
	if err != nil {
		return false
	}
	defer c.Close()
	for i := range 5 {
		msg := fmt.Sprintf("Subject: crash %d/%d/%d\r\nX-Pad: %s\r\n\r\nbody %d\r\n", worker, conn, i, strings.Repeat("p", rand.IntN(900)), i)
		if err := c.Mail("a@example.com", nil); err != nil {
			return false
		}
		if err := c.Rcpt("b@example.org", nil); err != nil {
			return false
		}
		w, err := c.Data()
		if err != nil {
			return false
		}
		w.Write([]byte(msg))
		resp, err := w.CloseWithResponse()
		if err != nil {
			return false
		}
		i := strings.Index(resp.StatusText, "queued as ")
		if i < 0 {
			return false
		}
		ack(queue.ID(strings.TrimSpace(resp.StatusText[i+len("queued as "):])), msg)
	}
	return true
}

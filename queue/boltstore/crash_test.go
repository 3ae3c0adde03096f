package boltstore

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// crashChildEnv names the queue file a re-executed test binary enqueues
// into until it is killed (see TestMain and crashChild).
const crashChildEnv = "MAILQ_QUEUE_CRASH_CHILD_DB"

func TestMain(m *testing.M) {
	if path := os.Getenv(crashChildEnv); path != "" {
		crashChild(path)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// crashChild enqueues from many goroutines and, in parallel, leases and
// records outcomes, printing "ack ID SHA256" for every Enqueue that
// returned, until it is SIGKILLed.
func crashChild(path string) {
	s, err := Open(path, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(2)
	}
	var out sync.Mutex
	fmt.Println("ready")
	for g := range 16 {
		go func() {
			rng := rand.New(rand.NewPCG(uint64(os.Getpid()), uint64(g)))
			var seed [32]byte
			seed[0], seed[1] = byte(g), byte(os.Getpid())
			fill := rand.NewChaCha8(seed)
			for {
				size := 1 + rng.IntN(8<<10)
				if rng.IntN(10) == 0 {
					size = rng.IntN(200 << 10)
				}
				body := make([]byte, size)
				fill.Read(body)
				env := envelope("child@example.com", "a@example.org", fmt.Sprintf("g%d@example.net", g))
				id, err := s.Enqueue(env, strings.NewReader(string(body)))
				if err != nil {
					fmt.Fprintln(os.Stderr, "child enqueue:", err)
					os.Exit(3)
				}
				sum := sha256.Sum256(body)
				out.Lock()
				fmt.Printf("ack %s %s\n", id, hex.EncodeToString(sum[:]))
				out.Unlock()
			}
		}()
	}
	// A worker keeps some messages in flight, so kills land mid-lease too.
	for {
		ls, err := s.Lease(time.Now(), 8)
		if err != nil {
			fmt.Fprintln(os.Stderr, "child lease:", err)
			os.Exit(4)
		}
		time.Sleep(5 * time.Millisecond)
		for i, l := range ls {
			oc := []Outcome{{Recipient: l.Recipients[0], Decision: DecideRetry, RetryAt: time.Now().Add(time.Hour)}}
			if i%2 == 0 {
				oc[0].Decision = DecideDelivered
			}
			if err := s.RecordOutcome(l, Attempt{Time: time.Now()}, oc); err != nil {
				fmt.Fprintln(os.Stderr, "child record outcome:", err)
				os.Exit(5)
			}
		}
	}
}

func TestCrashKeepsAcknowledgedMessages(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	acked := map[ID]string{}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	for round := range 5 {
		killAfter := time.Duration(50+rng.IntN(350)) * time.Millisecond
		n := runCrashChild(t, path, killAfter, acked)
		t.Logf("round %d: killed after %v, %d acknowledged (%d total)", round, killAfter, n, len(acked))
		verifyAfterCrash(t, path, acked)
	}
	if len(acked) == 0 {
		t.Fatal("the child never acknowledged a message; the test proved nothing")
	}
}

// runCrashChild starts the child, kills it killAfter its store is open, and
// adds every acknowledged id to acked. It returns how many were new.
func runCrashChild(t *testing.T, path string, killAfter time.Duration, acked map[ID]string) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting crash child %s: %v", os.Args[0], err)
	}
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || lines.Text() != "ready" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("crash child did not start: %q %v", lines.Text(), lines.Err())
	}
	timer := time.AfterFunc(killAfter, func() { cmd.Process.Signal(syscall.SIGKILL) })
	defer timer.Stop()
	n := 0
	for lines.Scan() {
		// A line cut by the kill is not an acknowledgement we can read; the
		// child prints the line only after Enqueue returned.
		var id, sum string
		if _, err := fmt.Sscanf(lines.Text(), "ack %s %s", &id, &sum); err != nil || len(sum) != 64 {
			continue
		}
		acked[ID(id)] = sum
		n++
	}
	io.Copy(io.Discard, stdout)
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("crash child ended by itself before the kill: %v", err)
	}
	return n
}

func verifyAfterCrash(t *testing.T, path string, acked map[ID]string) {
	t.Helper()
	s, err := Open(path, Options{OnDamaged: func(id ID, reason error) {
		t.Errorf("record %s damaged by a crash: %v", id, reason)
	}})
	if err != nil {
		t.Fatalf("reopen after crash: %v", err)
	}
	defer s.Close()
	for id, want := range acked {
		m, err := s.Get(id)
		if err != nil {
			t.Fatalf("acknowledged message %s lost: %v", id, err)
		}
		if m.Status == StatusDone { // delivered: its body went then
			if _, err := s.Body(id); !errors.Is(err, ErrBodyDropped) {
				t.Fatalf("body of delivered %s: %v, want ErrBodyDropped", id, err)
			}
			continue
		}
		rc, err := s.Body(id)
		if err != nil {
			t.Fatalf("body of %s: %v", id, err)
		}
		h := sha256.New()
		_, err = io.Copy(h, rc)
		rc.Close()
		if err != nil {
			t.Fatalf("reading body of %s: %v", id, err)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != want {
			t.Fatalf("body of %s changed: sha256 %s, want %s", id, got, want)
		}
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Active != 0 || st.Damaged != 0 {
		t.Fatalf("after recovery: %+v; want nothing in flight or damaged", st)
	}
	// Every live message must be reachable through the schedule index.
	live := 0
	err = s.List(Filter{}, func(m *Message) error {
		live++
		for _, r := range m.Recipients {
			if !r.State.Done() && r.NextAttempt.IsZero() {
				return fmt.Errorf("message %s recipient %s has no next attempt", m.ID, r.Address)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if live != st.Live {
		t.Fatalf("List found %d live messages, Stats says %d", live, st.Live)
	}
	scheduled := 0
	s.db.View(func(tx *bolt.Tx) error {
		scheduled = tx.Bucket(bucketSched).Stats().KeyN
		return nil
	})
	if scheduled != live {
		t.Fatalf("schedule index holds %d entries for %d live messages", scheduled, live)
	}
}

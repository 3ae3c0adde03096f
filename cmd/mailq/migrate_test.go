package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mailq/queue"
	"mailq/queue/boltstore"
	"mailq/queue/pgstore"
	"mailq/queue/pgstore/pgtest"
)

// pgConfig writes a configuration for one node on the database dsn (the
// DSN in a 0600 dsn_file, as an operator would keep it).
func pgConfig(t *testing.T, dir, node, dsn, extra string) string {
	t.Helper()
	dsnFile := filepath.Join(dir, "pg.dsn")
	if err := os.WriteFile(dsnFile, []byte(dsn+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return testConfig(t, dir, fmt.Sprintf("%s\n[queue]\nbackend = \"postgres\"\ndsn_file = %q\nnode_name = %q\n", extra, dsnFile, node))
}

// mixedBoltQueue makes a bbolt queue with a message in every state a
// stopped daemon can leave: queued, deferred with history, partly
// delivered, held, in flight (leased when the daemon died), done, and one
// with a body of several chunks. It returns the live ids.
func mixedBoltQueue(t *testing.T, path string) []queue.ID {
	t.Helper()
	s, err := boltstore.Open(path, queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	enqueue := func(body string, rcpts ...string) queue.ID {
		env := queue.Envelope{Sender: "app@client.test", Source: "smtp", EnvID: "env-" + rcpts[0]}
		for _, r := range rcpts {
			env.Recipients = append(env.Recipients, queue.RecipientSpec{Address: r, Notify: "FAILURE"})
		}
		id, err := s.Enqueue(env, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	small := "Subject: migrate\r\n\r\nhello\r\n"
	queued := enqueue(small, "queued@dest.test")
	deferred := enqueue(small, "deferred@dest.test")
	partial := enqueue(small, "got@dest.test", "later@dest.test")
	done := enqueue(small, "done@dest.test")
	inflight := enqueue(small, "inflight@dest.test")
	held := enqueue(small, "held@dest.test")
	big := enqueue("Subject: big\r\n\r\n"+strings.Repeat("0123456789abcdef", 50000)+"\r\n", "big@dest.test")

	now := time.Now()
	leases, err := s.Lease(now, 100)
	if err != nil {
		t.Fatal(err)
	}
	reply := &queue.Reply{Code: 451, Enhanced: "4.3.0", Text: "try later"}
	for _, l := range leases {
		a := queue.Attempt{Time: now, Route: "relay", Remote: "127.0.0.1:25", Recipients: l.Recipients, DurationMS: 12,
			Replies: []queue.StepReply{{Command: "RCPT TO:<" + l.Recipients[0] + ">", Reply: *reply}}}
		var outs []queue.Outcome
		switch l.Message.ID {
		case inflight:
			continue // the daemon "dies" mid-delivery: no outcome
		case done:
			outs = []queue.Outcome{{Recipient: "done@dest.test", Decision: queue.DecideDelivered, Reply: &queue.Reply{Code: 250, Text: "ok"}}}
		case partial:
			outs = []queue.Outcome{
				{Recipient: "got@dest.test", Decision: queue.DecideDelivered, Reply: &queue.Reply{Code: 250, Text: "ok"}},
				{Recipient: "later@dest.test", Decision: queue.DecideRetry, RetryAt: now.Add(time.Hour), Reply: reply},
			}
		default:
			for _, r := range l.Recipients {
				outs = append(outs, queue.Outcome{Recipient: r, Decision: queue.DecideRetry, RetryAt: now.Add(30 * time.Minute), Reply: reply})
			}
		}
		if err := s.RecordOutcome(l, a, outs); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.MakeDue(queued); err != nil { // back to "queued"-like: its retry pending now
		t.Fatal(err)
	}
	if err := s.Hold(held); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return []queue.ID{queued, deferred, partial, inflight, held, big}
}

// comparable is a message as JSON with its times in UTC, so a store that
// keeps nanoseconds and one that keeps RFC 3339 compare equal.
func comparable(t *testing.T, m *queue.Message) string {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	var norm func(any) any
	norm = func(x any) any {
		switch x := x.(type) {
		case map[string]any:
			for k, e := range x {
				x[k] = norm(e)
			}
		case []any:
			for i, e := range x {
				x[i] = norm(e)
			}
		case string:
			if tm, err := time.Parse(time.RFC3339Nano, x); err == nil {
				return tm.UTC().Format(time.RFC3339Nano)
			}
		}
		return x
	}
	out, _ := json.MarshalIndent(norm(v), "", " ")
	return string(out)
}

func readBody(t *testing.T, s queue.Store, id queue.ID) []byte {
	t.Helper()
	rc, err := s.Body(id)
	if err != nil {
		t.Fatalf("body of %s: %v", id, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestMigrateQueueCopiesEveryLiveMessageOnce runs `mailq migrate-queue` on
// a bbolt queue of mixed states into a fresh database: every live message
// reads back the same through Get (state, recipients' states, attempt
// history) with the same body; the done one is not copied; a rerun copies
// nothing; a message enqueued afterwards gets a new id.
func TestMigrateQueueCopiesEveryLiveMessageOnce(t *testing.T) {
	dir := t.TempDir()
	dsn := pgtest.NewDatabase(t)
	boltPath := filepath.Join(dir, "old-queue.db")
	live := mixedBoltQueue(t, boltPath)
	cfg := pgConfig(t, dir, "mx1", dsn, "")

	code, out := runMailq(t, "migrate-queue", "--config", cfg, "--from", boltPath)
	if code != 0 {
		t.Fatalf("migrate-queue: exit %d:\n%s", code, out)
	}
	for _, want := range []string{"copying 6 live messages", "moved 6, skipped 0 already there, failed 0; not copied: 1 done messages",
		"moved " + string(live[3]) + " (active)", "moved " + string(live[4]) + " (held)"} {
		if !strings.Contains(out, want) {
			t.Errorf("migrate-queue output lacks %q:\n%s", want, out)
		}
	}

	src, err := boltstore.OpenReadOnly(boltPath, queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := pgstore.Open(context.Background(), dsn, pgstore.Options{Node: "checker"})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	for _, id := range live {
		want, err := src.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		got, err := dst.Get(id)
		if err != nil {
			t.Errorf("%s (%s) is not in PostgreSQL: %v", id, want.Status, err)
			continue
		}
		if want.Status == queue.StatusActive {
			// In flight when the daemon stopped: due now, as recovery would
			// have made it; everything else as it was.
			if got.Status != queue.StatusDeferred || len(got.Attempts) != 1 || !got.Attempts[0].Interrupted ||
				got.Recipients[0].NextAttempt.After(time.Now()) {
				t.Errorf("in-flight %s arrived as %s, attempts %+v, next %v; want deferred, its one attempt interrupted, due now",
					id, got.Status, got.Attempts, got.Recipients[0].NextAttempt)
			}
			want.Status, want.Recipients, want.NextAttempt = got.Status, got.Recipients, got.NextAttempt
		}
		if a, b := comparable(t, want), comparable(t, got); a != b {
			t.Errorf("%s differs after the move:\nbbolt:\n%s\npostgres:\n%s", id, a, b)
		}
		if !bytes.Equal(readBody(t, src, id), readBody(t, dst, id)) {
			t.Errorf("%s: the body differs after the move", id)
		}
	}
	st, err := dst.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Live != len(live) || st.Done != 0 || st.Held != 1 {
		t.Errorf("PostgreSQL stats after the move = %+v, want %d live (1 held), no done", st, len(live))
	}

	code, out = runMailq(t, "migrate-queue", "--config", cfg, "--from", boltPath)
	if code != 0 || !strings.Contains(out, "moved 0, skipped 6 already there, failed 0") {
		t.Fatalf("rerun: exit %d, want 0 and nothing copied twice:\n%s", code, out)
	}
	if st2, _ := dst.Stats(); st2.Live != len(live) {
		t.Errorf("after the rerun the database holds %d live messages, want %d", st2.Live, len(live))
	}

	id, err := dst.Enqueue(queue.Envelope{Sender: "a@b.test", Recipients: []queue.RecipientSpec{{Address: "new@dest.test"}}}, strings.NewReader("x\r\n"))
	if err != nil {
		t.Fatalf("enqueue after the move: %v", err)
	}
	if id <= live[len(live)-1] {
		t.Errorf("a new message got id %s, not after the imported ones (last %s): ids would collide", id, live[len(live)-1])
	}
}

// TestMigrateQueueRefusals: the cases where migrate-queue must not copy.
func TestMigrateQueueRefusals(t *testing.T) {
	dir := t.TempDir()
	boltPath := filepath.Join(dir, "q.db")
	mixedBoltQueue(t, boltPath)
	bolt := testConfig(t, t.TempDir(), "")
	code, out := runMailq(t, "migrate-queue", "--config", bolt, "--from", boltPath)
	if code != 1 || !strings.Contains(out, `set [queue] backend = "postgres"`) {
		t.Errorf("into a bbolt configuration: exit %d, output:\n%s", code, out)
	}

	// A database that took mail of its own first: the ids collide.
	dsn := pgtest.NewDatabase(t)
	used, err := pgstore.Open(context.Background(), dsn, pgstore.Options{Node: "early"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := used.Enqueue(queue.Envelope{Sender: "other@x.test", Recipients: []queue.RecipientSpec{{Address: "r@x.test"}}}, strings.NewReader("x\r\n")); err != nil {
		t.Fatal(err)
	}
	used.Close()
	code, out = runMailq(t, "migrate-queue", "--config", pgConfig(t, t.TempDir(), "mx1", dsn, ""), "--from", boltPath)
	if code != 1 || !strings.Contains(out, "holds a different message under the id") || !strings.Contains(out, "migrate into an empty database") {
		t.Errorf("into a used database: exit %d, want 1 and the collision named:\n%s", code, out)
	}
}

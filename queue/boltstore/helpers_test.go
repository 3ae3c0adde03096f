package boltstore

import (
	"bytes"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock for Options.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 11, 26, 5, 0, 0, 123456789, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

type testStore struct {
	*Store
	path  string
	clock *fakeClock
	opts  Options
}

func openTestStore(t *testing.T) *testStore {
	t.Helper()
	clock := newFakeClock()
	ts := &testStore{path: filepath.Join(t.TempDir(), "data", "queue.db"), clock: clock,
		opts: Options{Now: clock.Now}}
	ts.reopen(t)
	t.Cleanup(func() { ts.Store.Close() })
	return ts
}

// reopen closes the store (if open) and opens it again on the same file.
func (ts *testStore) reopen(t *testing.T) {
	t.Helper()
	if ts.Store != nil {
		ts.Store.Close()
	}
	s, err := Open(ts.path, ts.opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", ts.path, err)
	}
	ts.Store = s
}

func envelope(sender string, rcpts ...string) Envelope {
	env := Envelope{Sender: sender, Source: "smtp"}
	for _, r := range rcpts {
		env.Recipients = append(env.Recipients, RecipientSpec{Address: r})
	}
	return env
}

func (ts *testStore) mustEnqueue(t *testing.T, env Envelope, body string) ID {
	t.Helper()
	id, err := ts.Enqueue(env, strings.NewReader(body))
	if err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	return id
}

func (ts *testStore) mustGet(t *testing.T, id ID) *Message {
	t.Helper()
	m, err := ts.Get(id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	return m
}

func (ts *testStore) mustLease(t *testing.T, now time.Time, max int) []Lease {
	t.Helper()
	ls, err := ts.Lease(now, max)
	if err != nil {
		t.Fatalf("Lease: %v", err)
	}
	return ls
}

func (ts *testStore) body(t *testing.T, id ID) []byte {
	t.Helper()
	rc, err := ts.Body(id)
	if err != nil {
		t.Fatalf("Body(%s): %v", id, err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, rc); err != nil {
		t.Fatalf("reading body of %s: %v", id, err)
	}
	return buf.Bytes()
}

func leaseIDs(ls []Lease) []ID {
	var ids []ID
	for _, l := range ls {
		ids = append(ids, l.Message.ID)
	}
	return ids
}

func recipient(t *testing.T, m *Message, addr string) Recipient {
	t.Helper()
	for _, r := range m.Recipients {
		if r.Address == addr {
			return r
		}
	}
	t.Fatalf("message %s has no recipient %s", m.ID, addr)
	return Recipient{}
}

package delivery

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/textproto"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-message"
	"github.com/rs/zerolog"

	"mailq/policy"
	"mailq/queue"
	"mailq/queue/boltstore"
	"mailq/smtpproto"
)

// fakeClock is the injected clock: tests move it instead of sleeping.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 11, 26, 5, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func ptr[T any](v T) *T { return &v }

// testRetry is the default policy without jitter: gaps 5m, 10m, 20m, ...
func testRetry() policy.RetryPolicy {
	return policy.RetryPolicy{Initial: 5 * time.Minute, Multiplier: 2, MaxInterval: time.Hour,
		Jitter: 0, MaxLifetime: 120 * time.Hour, DelayWarning: 4 * time.Hour}
}

// testRoute is a route to 127.0.0.1:port with short timeouts.
func testRoute(name string, port int, domains ...string) Route {
	if len(domains) == 0 {
		domains = []string{"*"}
	}
	return Route{
		Settings: smtpproto.Settings{
			Name: name, Domains: domains, Host: "127.0.0.1", Port: port, Localhost: "client.test",
			ConnectionTimeout: ptr(2000), Timeout: ptr(2000), WriteTimeout: ptr(2000),
		},
		Retry: testRetry(),
	}
}

type harness struct {
	t      *testing.T
	clock  *fakeClock
	store  queue.Store
	engine *Engine
	cancel context.CancelFunc
	done   chan error
	logBuf *syncBuffer
	// notices keeps what the engine queued as notices: a notice is soon
	// delivered or bounced itself, and a done message's body is dropped.
	notices *noticeKeeper
}

// noticeKeeper is the engine's store, keeping a copy of each notice's body
// as the engine queued it (Source "dsn").
type noticeKeeper struct {
	queue.Store
	mu     sync.Mutex
	bodies map[queue.ID][]byte
}

func (k *noticeKeeper) Enqueue(env queue.Envelope, body io.Reader) (queue.ID, error) {
	if env.Source != "dsn" {
		return k.Store.Enqueue(env, body)
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return "", err
	}
	id, err := k.Store.Enqueue(env, bytes.NewReader(b))
	if err == nil {
		k.mu.Lock()
		k.bodies[id] = b
		k.mu.Unlock()
	}
	return id, err
}

// noticeBody is the body of the notice id as the engine queued it.
func (h *harness) noticeBody(t testing.TB, id queue.ID) io.ReadCloser {
	t.Helper()
	h.notices.mu.Lock()
	defer h.notices.mu.Unlock()
	b, ok := h.notices.bodies[id]
	if !ok {
		t.Fatalf("message %s was not queued as a notice", id)
	}
	return io.NopCloser(bytes.NewReader(b))
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newHarness opens a real queue in t.TempDir() and an engine over it;
// tweak adjusts the options before New. The engine is not started.
func newHarness(t testing.TB, routes []Route, tweak func(*Options)) *harness {
	t.Helper()
	clock := newFakeClock()
	store, err := boltstore.Open(filepath.Join(t.TempDir(), "queue.db"), queue.Options{Now: clock.Now})
	if err != nil {
		t.Fatalf("open queue: %v", err)
	}
	logs := &syncBuffer{}
	notices := &noticeKeeper{Store: store, bodies: map[queue.ID][]byte{}}
	opts := Options{
		Store: notices, Routes: routes, Workers: 4, PerRouteConnections: 2, MessagesPerConnection: 100,
		IdleTimeout: 5 * time.Second, ShutdownGrace: 5 * time.Second, Hostname: "mailq.test",
		Logger: zerolog.New(logs), Now: clock.Now, Rand: func() float64 { return 0.5 },
	}
	if tweak != nil {
		tweak(&opts)
	}
	e, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h := &harness{clock: clock, store: store, engine: e, logBuf: logs, notices: notices}
	if tt, ok := t.(*testing.T); ok {
		h.t = tt
	}
	t.Cleanup(func() {
		h.stop()
		store.Close()
	})
	return h
}

func (h *harness) start() {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.done = make(chan error, 1)
	go func() { h.done <- h.engine.Run(ctx) }()
}

// stop cancels Run and waits for it; it returns Run's error.
func (h *harness) stop() error {
	if h.cancel == nil {
		return nil
	}
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		return err
	case <-time.After(30 * time.Second):
		return fmt.Errorf("Run did not return 30s after cancel")
	}
}

func (h *harness) enqueue(t testing.TB, sender string, rcpts ...string) queue.ID {
	t.Helper()
	env := queue.Envelope{Sender: sender, Source: "control"}
	for _, r := range rcpts {
		env.Recipients = append(env.Recipients, queue.RecipientSpec{Address: r})
	}
	id, err := h.store.Enqueue(env, strings.NewReader(testBody(sender, "test message")))
	if err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	return id
}

func testBody(from, subject string) string {
	return "From: <" + from + ">\r\nTo: <someone@fake.test>\r\nSubject: " + subject + "\r\nMessage-ID: <orig-1@mailq.test>\r\n\r\nHello there.\r\nSecond line.\r\n"
}

// waitFor polls cond (test side only) until it holds or 10s pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitForCount waits until count() reaches want, failing only when it
// makes no progress for 10 s: a loaded machine (CI under -race) is slower,
// a stuck delivery still fails.
func waitForCount(t testing.TB, what string, want int, count func() int) {
	t.Helper()
	last, lastChange := count(), time.Now()
	for last < want {
		if time.Since(lastChange) > 10*time.Second {
			t.Fatalf("timed out waiting for %s: %d of %d after 10 s without progress", what, last, want)
		}
		time.Sleep(5 * time.Millisecond)
		if n := count(); n != last {
			last, lastChange = n, time.Now()
		}
	}
}

// settled waits until every recipient of id has been tried at least
// attempts times and no attempt is in flight, and returns the message.
func (h *harness) settled(t testing.TB, id queue.ID, attempts int) *queue.Message {
	t.Helper()
	var m *queue.Message
	waitFor(t, fmt.Sprintf("message %s to settle after %d attempts", id, attempts), func() bool {
		var err error
		m, err = h.store.Get(id)
		if err != nil {
			t.Fatalf("get %s: %v", id, err)
		}
		if m.Status == queue.StatusActive || len(m.Attempts) < attempts {
			return false
		}
		for _, a := range m.Attempts {
			if a.Interrupted {
				return false
			}
		}
		for _, rc := range m.Recipients {
			if !rc.State.Done() && rc.Attempts < attempts {
				return false
			}
		}
		return true
	})
	return m
}

func recipientOf(t testing.TB, m *queue.Message, addr string) queue.Recipient {
	t.Helper()
	for _, rc := range m.Recipients {
		if rc.Address == addr {
			return rc
		}
	}
	t.Fatalf("message %s has no recipient %s", m.ID, addr)
	return queue.Recipient{}
}

// dsns returns every notice mailq queued (live or done), oldest first.
func (h *harness) dsns(t testing.TB) []*queue.Message {
	t.Helper()
	var out []*queue.Message
	seen := make(map[queue.ID]bool)
	// A notice may move from live to done between the two passes.
	for _, st := range []queue.Status{"", queue.StatusDone} {
		err := h.store.List(queue.Filter{Status: st}, func(m *queue.Message) error {
			if m.Source == "dsn" && !seen[m.ID] {
				seen[m.ID] = true
				out = append(out, m)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("list: %v", err)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// parsedDSN is an RFC 3464 report taken apart.
type parsedDSN struct {
	ContentType string
	Per         []textproto.MIMEHeader // per-recipient blocks
	PerMessage  textproto.MIMEHeader
	Original    string // third part, raw
	OriginalCT  string
}

func parseDSN(t testing.TB, r io.Reader) parsedDSN {
	t.Helper()
	ent, err := message.Read(r)
	if err != nil {
		t.Fatalf("DSN does not parse as a message: %v", err)
	}
	var p parsedDSN
	p.ContentType, _, _ = ent.Header.ContentType()
	mr := ent.MultipartReader()
	if mr == nil {
		t.Fatalf("DSN is %q, not multipart/report", p.ContentType)
	}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("DSN part: %v", err)
		}
		ct, _, _ := part.Header.ContentType()
		body, _ := io.ReadAll(part.Body)
		switch ct {
		case "message/delivery-status":
			tr := textproto.NewReader(bufio.NewReader(strings.NewReader(string(body))))
			p.PerMessage, err = tr.ReadMIMEHeader()
			if err != nil && err != io.EOF {
				t.Fatalf("per-message fields: %v", err)
			}
			for {
				h, err := tr.ReadMIMEHeader()
				if len(h) > 0 {
					p.Per = append(p.Per, h)
				}
				if err != nil {
					break
				}
			}
		case "text/rfc822-headers", "message/rfc822":
			p.Original, p.OriginalCT = string(body), ct
		}
	}
	return p
}

// onlyDSN reads the single notice queued and parses it.
func (h *harness) onlyDSN(t testing.TB, wantTo string) parsedDSN {
	t.Helper()
	ds := h.dsns(t)
	if len(ds) != 1 {
		for _, d := range ds {
			t.Logf("DSN %s: %+v", d.ID, *d)
		}
		t.Fatalf("want exactly one DSN queued, got %d", len(ds))
	}
	d := ds[0]
	if d.Sender != "" || len(d.Recipients) != 1 || d.Recipients[0].Address != wantTo {
		t.Fatalf("DSN envelope: from %q to %v, want from <> to %s", d.Sender, d.Recipients, wantTo)
	}
	return parseDSN(t, h.noticeBody(t, d.ID))
}

func stringsReader(s string) io.Reader { return strings.NewReader(s) }

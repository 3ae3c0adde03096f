package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"mailq/control"
	"mailq/intake"
	"mailq/queue"
	"mailq/queue/boltstore"
)

// testDaemon is a control server on a temp socket over a real store.
type testDaemon struct {
	store  queue.Store
	socket string
	client *control.Client
}

// shortTempDir is a temp dir with a path short enough for a unix socket
// (108 bytes on Linux), removed at the end of the test.
func shortTempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "mqc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func startDaemon(t testing.TB, opts Options) *testDaemon {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "queue.db"), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	opts.Store = st
	if opts.Hostname == "" {
		opts.Hostname = "mq.test"
	}
	if opts.Logger.GetLevel() == zerolog.DebugLevel { // the zero Logger: tests that pass none log nothing
		opts.Logger = zerolog.Nop()
	}
	sock := filepath.Join(shortTempDir(t), "control.sock")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := New(opts).Serve(ctx, sock, ""); err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		st.Close()
	})
	waitForSocket(t, sock)
	return &testDaemon{store: st, socket: sock, client: control.NewClient(sock)}
}

// waitForSocket waits until something accepts connections on sock.
func waitForSocket(t testing.TB, sock string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("control server did not come up on %s: %v", sock, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func env(sender string, rcpts ...string) queue.Envelope {
	e := queue.Envelope{Sender: sender}
	for _, r := range rcpts {
		e.Recipients = append(e.Recipients, queue.RecipientSpec{Address: r})
	}
	return e
}

func TestEnqueueIsStoredWithReceivedAndSource(t *testing.T) {
	d := startDaemon(t, Options{})
	e := env("a@example.com", "b@example.org")
	e.Ret, e.EnvID = "HDRS", "env-1"
	e.Recipients[0].Notify = "FAILURE,DELAY"
	id, err := d.client.Enqueue(context.Background(), e, strings.NewReader("Subject: hi\r\n\r\nbody\r\n"), "sendmail")
	if err != nil {
		t.Fatal(err)
	}
	m, err := d.store.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if m.Source != "sendmail" || m.Ret != "HDRS" || m.EnvID != "env-1" || m.Recipients[0].Notify != "FAILURE,DELAY" {
		t.Errorf("stored envelope = source %q ret %q envid %q notify %q", m.Source, m.Ret, m.EnvID, m.Recipients[0].Notify)
	}
	rc, err := d.store.Body(id)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(rc)
	rc.Close()
	if !strings.HasPrefix(string(body), "Received: from local (uid ") || !strings.Contains(string(body), "by mq.test with sendmail") ||
		!strings.HasSuffix(string(body), "\r\nSubject: hi\r\n\r\nbody\r\n") {
		t.Errorf("stored body:\n%s", body)
	}
}

func TestEnqueueRefusals(t *testing.T) {
	d := startDaemon(t, Options{MaxMessageSize: 100})
	tests := []struct {
		name   string
		env    queue.Envelope
		body   string
		source string
		status int
	}{
		{"no recipients", env("a@example.com"), "x\r\n", "control", 400},
		{"bad address", env("a@example.com", "not an address"), "x\r\n", "control", 400},
		{"injection", env("a@example.com\r\nRCPT TO:<x@y>", "b@example.org"), "x\r\n", "control", 400},
		{"bad ret", queue.Envelope{Sender: "a@example.com", Ret: "ALL", Recipients: []queue.RecipientSpec{{Address: "b@example.org"}}}, "x\r\n", "control", 400},
		{"unknown source", env("a@example.com", "b@example.org"), "x\r\n", "smtp", 400},
		{"too large", env("a@example.com", "b@example.org"), strings.Repeat("x", 101), "control", 413},
		{"empty body", env("a@example.com", "b@example.org"), "", "control", 400},
		{"empty body via sendmail", env("a@example.com", "b@example.org"), "", "sendmail", 400},
		{"too many recipients", env("a@example.com", manyRecipients(intake.DefaultMaxRecipients+1)...), "x\r\n", "sendmail", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := d.client.Enqueue(context.Background(), tt.env, strings.NewReader(tt.body), tt.source)
			var apiErr *control.APIError
			if !errors.As(err, &apiErr) || apiErr.Status != tt.status || apiErr.Message == "" {
				t.Fatalf("Enqueue error = %v, want API status %d with a message", err, tt.status)
			}
		})
	}
	st, err := d.client.Stats(context.Background())
	if err != nil || st.Live != 0 {
		t.Fatalf("after refusals: stats %+v, %v; want nothing stored", st, err)
	}
}

func TestListFiltersAndStreams(t *testing.T) {
	d := startDaemon(t, Options{})
	var ids []queue.ID
	for i := 0; i < 150; i++ { // more than one flush batch of the stream
		rcpt := "b@example.org"
		if i%2 == 1 {
			rcpt = "c@other.example"
		}
		id, err := d.store.Enqueue(env("a@example.com", rcpt), strings.NewReader("x\r\n"))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := d.store.Hold(ids[3]); err != nil {
		t.Fatal(err)
	}
	count := func(f queue.Filter) int {
		n := 0
		if err := d.client.List(context.Background(), f, func(m *queue.Message) error {
			if len(m.Attempts) != 0 {
				t.Errorf("list carries attempts for %s", m.ID)
			}
			n++
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return n
	}
	tests := []struct {
		f    queue.Filter
		want int
	}{
		{queue.Filter{}, 150},
		{queue.Filter{Status: queue.StatusHeld}, 1},
		{queue.Filter{Status: queue.StatusQueued}, 149},
		{queue.Filter{Recipient: "@other.example"}, 75},
		{queue.Filter{Sender: "nobody@example.com"}, 0},
		{queue.Filter{OlderThan: time.Hour}, 0},
	}
	for _, tt := range tests {
		if got := count(tt.f); got != tt.want {
			t.Errorf("List(%+v) = %d messages, want %d", tt.f, got, tt.want)
		}
	}
	var apiErr *control.APIError
	if err := d.client.List(context.Background(), queue.Filter{Status: "lost"}, func(*queue.Message) error { return nil }); !errors.As(err, &apiErr) || apiErr.Status != 400 {
		t.Errorf("List(bad status) = %v, want 400", err)
	}
}

func TestActionsReportEachID(t *testing.T) {
	var bounced []queue.ID
	var id queue.ID
	d := startDaemon(t, Options{Bounce: func(_ context.Context, got queue.ID) error {
		if got != id { // as delivery would answer for an id it does not know
			return queue.ErrNotFound
		}
		bounced = append(bounced, got)
		return nil
	}, MaildropFailed: func() int { return 7 }})
	id, err := d.store.Enqueue(env("a@example.com", "b@example.org"), strings.NewReader("x\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	unknown := queue.ID(strings.Repeat("f", len(id)))
	for _, cmd := range []string{"hold", "release", "retry", "bounce", "delete"} {
		reply, err := d.client.Action(context.Background(), cmd, []queue.ID{id, unknown}, false)
		if err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		if reply.Count != 1 || len(reply.Results) != 2 || reply.Results[0].Error != "" ||
			!strings.Contains(reply.Results[1].Error, "no such message") {
			t.Errorf("%s reply = %+v, want the first done and the unknown id reported", cmd, reply)
		}
	}
	if len(bounced) != 1 || bounced[0] != id {
		t.Errorf("Bounce callback got %v", bounced)
	}
	if _, err := d.store.Get(id); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("after delete Get = %v", err)
	}
	st, err := d.client.Stats(context.Background())
	if err != nil || st.MaildropFailed != 7 {
		t.Errorf("stats = %+v, %v; want maildrop_failed 7", st, err)
	}
}

func TestBounceWithoutDeliveryIsNotImplemented(t *testing.T) {
	d := startDaemon(t, Options{})
	_, err := d.client.Action(context.Background(), "bounce", []queue.ID{"x"}, false)
	var apiErr *control.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 501 {
		t.Fatalf("bounce = %v, want 501", err)
	}
}

func TestPeerRefused(t *testing.T) {
	d := startDaemon(t, Options{Authorize: func(p Peer) error {
		if p.UID != uint32(os.Getuid()) || p.PID != int32(os.Getpid()) {
			t.Errorf("peer = %+v, want this process", p)
		}
		return errors.New("uid 1234 may not use the mailq control socket")
	}})
	_, err := d.client.Stats(context.Background())
	var apiErr *control.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 403 || !strings.Contains(apiErr.Message, "may not use") {
		t.Fatalf("Stats = %v, want 403 with the reason", err)
	}
}

func TestGroupAuthorizer(t *testing.T) {
	self := uint32(os.Getuid())
	other := uint32(54321) // assumed not to be a user on this machine
	if self == other {
		t.Fatal("test uid collides with the running user")
	}
	auth := GroupAuthorizer(4242)
	tests := []struct {
		peer Peer
		ok   bool
	}{
		{Peer{UID: 0, GID: 1}, true},
		{Peer{UID: self, GID: 1}, true},
		{Peer{UID: other, GID: 4242}, true},
		{Peer{UID: other, GID: 1}, false},
	}
	for _, tt := range tests {
		err := auth(tt.peer)
		if (err == nil) != tt.ok {
			t.Errorf("authorize(%+v) = %v, want ok=%v", tt.peer, err, tt.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "members of the socket group") {
			t.Errorf("refusal does not explain itself: %v", err)
		}
	}
}

func TestSocketModeAndStaleSocket(t *testing.T) {
	dir := shortTempDir(t)
	sock := filepath.Join(dir, "control.sock")
	// A socket left by a crashed daemon: bound, then its listener closed without unlinking.
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()

	st, err := boltstore.Open(filepath.Join(t.TempDir(), "queue.db"), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- New(Options{Store: st, Logger: zerolog.Nop()}).Serve(ctx, sock, "no-such-group-mailq-test")
	}()
	c := control.NewClient(sock)
	deadline := time.Now().Add(5 * time.Second)
	for c.Ping(context.Background()) != nil {
		if time.Now().After(deadline) {
			t.Fatal("server did not replace the stale socket")
		}
		time.Sleep(5 * time.Millisecond)
	}
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode = %v, %v; want 0660", fi.Mode(), err)
	}
	// A second daemon must not steal a live socket.
	if err := New(Options{Store: st, Logger: zerolog.Nop()}).Serve(context.Background(), sock, ""); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("second Serve = %v, want in use", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left behind after Serve returned: %v", err)
	}
	if err := c.Ping(context.Background()); !errors.Is(err, control.ErrUnreachable) {
		t.Errorf("Ping after stop = %v, want control.ErrUnreachable", err)
	}
}

func manyRecipients(n int) []string {
	rcpts := make([]string, n)
	for i := range rcpts {
		rcpts[i] = fmt.Sprintf("r%d@example.org", i)
	}
	return rcpts
}

// TestCatOfDoneMessage: a finished message's body is dropped when it
// finishes (issue 13); cat says so with 410 Gone and points to show, and
// show still answers with the record.
func TestCatOfDoneMessage(t *testing.T) {
	d := startDaemon(t, Options{})
	id, err := d.client.Enqueue(context.Background(), env("a@example.com", "b@example.org"), strings.NewReader("Subject: hi\r\n\r\nbody\r\n"), "control")
	if err != nil {
		t.Fatal(err)
	}
	leases, err := d.store.Lease(time.Now(), 1)
	if err != nil || len(leases) != 1 {
		t.Fatalf("Lease: %v, %d leases", err, len(leases))
	}
	if err := d.store.RecordOutcome(leases[0], queue.Attempt{Time: time.Now()},
		[]queue.Outcome{{Recipient: "b@example.org", Decision: queue.DecideDelivered}}); err != nil {
		t.Fatal(err)
	}
	_, err = d.client.Body(context.Background(), id)
	var apiErr *control.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusGone ||
		!strings.Contains(apiErr.Message, "body was dropped when it finished") || !strings.Contains(apiErr.Message, "mailqctl show "+string(id)) {
		t.Fatalf("cat of a delivered message: %v, want 410 saying the body was dropped and pointing to show", err)
	}
	m, err := d.client.Show(context.Background(), id)
	if err != nil || m.Status != queue.StatusDone {
		t.Fatalf("show of a delivered message: %+v, %v", m, err)
	}
}

// heldArrivals is a log writer that holds every "arrived" line until
// released, as a slow or stuck log would.
type heldArrivals struct{ release chan struct{} }

func (h heldArrivals) Write(p []byte) (int, error) {
	if strings.Contains(string(p), `"arrived"`) {
		<-h.release
	}
	return len(p), nil
}

// TestEnqueueAnswersBeforeLogging: the id comes back once the message is
// stored, without waiting for the arrival log line (and its user lookup):
// a sendmail process exits as soon as its message is durable (issue 13).
func TestEnqueueAnswersBeforeLogging(t *testing.T) {
	held := heldArrivals{release: make(chan struct{})}
	d := startDaemon(t, Options{Logger: zerolog.New(held)})
	defer close(held.release)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id, err := d.client.Enqueue(ctx, env("a@example.com", "b@example.org"), strings.NewReader("Subject: x\r\n\r\nx\r\n"), "sendmail")
	if err != nil {
		t.Fatalf("Enqueue while the arrival line is held: %v", err)
	}
	if _, err := d.store.Get(id); err != nil {
		t.Errorf("answered %s but the store has not got it: %v", id, err)
	}
}

// TestEnqueueRefusedMidwayIsAnswered: a message far over max_message_size
// is refused while the client is still sending it; the client gets the
// refusal (413), neither a write error nor a hang, though the daemon stops
// reading part way.
func TestEnqueueRefusedMidwayIsAnswered(t *testing.T) {
	d := startDaemon(t, Options{MaxMessageSize: 1 << 10})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	big := strings.Repeat(strings.Repeat("x", 78)+"\r\n", 200_000) // 16 MiB
	_, err := d.client.Enqueue(ctx, env("a@example.com", "b@example.org"), strings.NewReader(big), "sendmail")
	var apiErr *control.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("Enqueue of 16 MiB with max_message_size 1 KiB: %v; want the 413 refusal", err)
	}
}

package maildrop

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"mailq/intake"
	"mailq/queue"
	"mailq/queue/boltstore"
)

type maildropRig struct {
	dir    string
	store  queue.Store
	md     *Watcher
	cancel context.CancelFunc
	done   chan error
}

// startMaildrop opens a store and runs a Maildrop until the test ends. Files
// placed by before() are in new/ before Run starts.
func startMaildrop(t *testing.T, poll time.Duration, maxSize int64, before func(dir string)) *maildropRig {
	t.Helper()
	base := t.TempDir()
	dir := filepath.Join(base, "maildrop")
	for _, sub := range []string{"tmp", "new", "failed"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if before != nil {
		before(dir)
	}
	st, err := boltstore.Open(filepath.Join(base, "queue.db"), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := &maildropRig{dir: dir, store: st, done: make(chan error, 1)}
	r.md = New(Options{Dir: dir, Store: st, MaxMessageSize: maxSize, Hostname: "mx.test",
		PollInterval: poll, Logger: zerolog.New(io.Discard)})
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- r.md.Run(ctx) }()
	t.Cleanup(func() {
		r.stop(t)
		st.Close()
	})
	return r
}

var stopOnce sync.Map

func (r *maildropRig) stop(t *testing.T) {
	if _, loaded := stopOnce.LoadOrStore(r, true); loaded {
		return
	}
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Run returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("Run did not return after cancel")
	}
}

// waitEmpty waits until new/ is empty.
func (r *maildropRig) waitEmpty(t *testing.T, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		left, _ := os.ReadDir(filepath.Join(r.dir, "new"))
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("new/ still holds %d files after %v: %v", len(left), within, left[0].Name())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type storedMessage struct {
	msg  *queue.Message
	body string
}

func (r *maildropRig) messages(t *testing.T) []storedMessage {
	t.Helper()
	var out []storedMessage
	err := r.store.List(queue.Filter{}, func(m *queue.Message) error {
		rc, err := r.store.Body(m.ID)
		if err != nil {
			return err
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		out = append(out, storedMessage{m, string(b)})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func writeNew(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "new", name), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// stripReceived checks the first header is our Received: line and returns the rest.
func stripReceived(t *testing.T, body string) string {
	t.Helper()
	if !strings.HasPrefix(body, "Received: by mx.test with local (mailq maildrop) id ") {
		t.Fatalf("body does not start with our Received: line: %q", body[:min(len(body), 120)])
	}
	// The Received line is three folded lines ending in CRLF.
	i := strings.Index(body, "\r\n\t")
	j := strings.Index(body[i+3:], "\r\n\t")
	k := strings.Index(body[i+3+j+3:], "\r\n")
	return body[i+3+j+3+k+2:]
}

func TestMaildropTakesBothFormats(t *testing.T) {
	envMsg := "Subject: envelope\r\n\r\nhello\r\n"
	emlMsg := "From: Alice <alice@example.com>\r\nTo: bob@example.org, team: c@example.org;\r\nBcc: secret@example.org\r\nSubject: eml\r\n\r\nbody\r\n"
	r := startMaildrop(t, time.Hour, 0, func(dir string) {
		if _, err := intake.DropFile(dir, queue.Envelope{Sender: "", Ret: "HDRS", EnvID: "E1",
			Recipients: []queue.RecipientSpec{{Address: "x@example.org", Notify: "NEVER"}}}, strings.NewReader(envMsg)); err != nil {
			t.Fatal(err)
		}
		writeNew(t, dir, "a.eml", emlMsg)
	})
	r.waitEmpty(t, 5*time.Second)
	msgs := r.messages(t)
	if len(msgs) != 2 {
		t.Fatalf("queue holds %d messages, want 2", len(msgs))
	}
	byBodyTail := map[string]storedMessage{}
	for _, m := range msgs {
		if m.msg.Source != "maildrop" {
			t.Errorf("source %q, want maildrop", m.msg.Source)
		}
		byBodyTail[stripReceived(t, m.body)] = m
	}
	e, ok := byBodyTail[envMsg]
	if !ok {
		t.Fatalf("envelope-file message not stored byte for byte; have %v", msgs)
	}
	if e.msg.Sender != "" || e.msg.Ret != "HDRS" || e.msg.EnvID != "E1" || len(e.msg.Recipients) != 1 ||
		e.msg.Recipients[0].Address != "x@example.org" || e.msg.Recipients[0].Notify != "NEVER" {
		t.Errorf("envelope-file message: %+v", e.msg)
	}
	wantEml := strings.Replace(emlMsg, "Bcc: secret@example.org\r\n", "", 1)
	m, ok := byBodyTail[wantEml]
	if !ok {
		t.Fatalf(".eml message not stored with only Bcc removed; bodies: %q", mapsKeys(byBodyTail))
	}
	var rcpts []string
	for _, rc := range m.msg.Recipients {
		rcpts = append(rcpts, rc.Address)
	}
	if m.msg.Sender != "alice@example.com" || strings.Join(rcpts, ",") != "bob@example.org,c@example.org,secret@example.org" {
		t.Errorf(".eml envelope: sender %q recipients %v", m.msg.Sender, rcpts)
	}
	if failed, _ := os.ReadDir(filepath.Join(r.dir, "failed")); len(failed) != 0 {
		t.Errorf("failed/ not empty: %v", failed)
	}
}

func mapsKeys(m map[string]storedMessage) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestMaildropTakesFileDroppedWhileRunning(t *testing.T) {
	// Poll interval of an hour: only inotify can find the file in time.
	r := startMaildrop(t, time.Hour, 0, nil)
	time.Sleep(50 * time.Millisecond) // let Run set up its watch
	start := time.Now()
	if _, err := intake.DropFile(r.dir, queue.Envelope{Sender: "a@example.com",
		Recipients: []queue.RecipientSpec{{Address: "b@example.org"}}}, strings.NewReader("Subject: x\r\n\r\nx\r\n")); err != nil {
		t.Fatal(err)
	}
	// At once when the rename shows in ctime, else after the 1 s settle time.
	r.waitEmpty(t, 3*time.Second)
	if n := len(r.messages(t)); n != 1 {
		t.Fatalf("queue holds %d messages, want 1", n)
	}
	t.Logf("taken in %v", time.Since(start))
}

func TestMaildropScanWithoutWatch(t *testing.T) {
	// The periodic scan alone (no inotify) takes what is in new/.
	base := t.TempDir()
	st, err := boltstore.Open(filepath.Join(base, "q.db"), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	md := New(Options{Dir: filepath.Join(base, "md"), Store: st, Hostname: "mx.test", Logger: zerolog.New(io.Discard)})
	if err := md.MakeDirs(); err != nil {
		t.Fatal(err)
	}
	writeNew(t, filepath.Join(base, "md"), "late", "a@example.com\nb@example.org\n\nbody\r\n")
	late := filepath.Join(base, "md", "new", "late")
	md.scan(context.Background())
	if _, err := os.Stat(late); err != nil {
		t.Fatalf("a file modified just now was taken before it settled: %v", err)
	}
	old := time.Now().Add(-time.Minute)
	os.Chtimes(late, old, old)
	md.scan(context.Background())
	if left, _ := os.ReadDir(filepath.Join(base, "md", "new")); len(left) != 0 {
		t.Fatalf("scan left %v in new/", left)
	}
	n := 0
	st.List(queue.Filter{}, func(*queue.Message) error { n++; return nil })
	if n != 1 {
		t.Fatalf("queue holds %d messages, want 1", n)
	}
}

func TestMaildropBadFiles(t *testing.T) {
	tooBig := "a@example.com\nb@example.org\n\n" + strings.Repeat("x", 2000)
	tests := []struct {
		name    string
		content string
		setup   func(t *testing.T, dir string) // instead of content
		because string
	}{
		{name: "empty", content: "", because: "empty"},
		{name: "no-blank-line", content: "a@example.com\nb@example.org\n", because: "no empty line"},
		{name: "only-sender", content: "a@example.com\n", because: "no empty line"},
		{name: "no-recipients", content: "a@example.com\n\nbody", because: "no recipient"},
		{name: "invalid-recipient", content: "a@example.com\nnot an address\n\nbody", because: "parameter"},
		{name: "invalid-recipient2", content: "a@example.com\nbob\n\nbody", because: "no @domain"},
		{name: "invalid-sender", content: "a@@example.com\nb@example.org\n\nbody", because: "sender"},
		{name: "header-injection", content: "a@example.com\nb@example.org\rBcc:x@evil.test\n\nbody", because: "CR or LF"},
		{name: "nul", content: "a@example.com\nb\x00@example.org\n\nbody", because: "NUL"},
		{name: "binary", content: "\x7fELF\x02\x01\x01\x00\x00\x00\n\xff\xfe\n\n", because: "NUL"},
		{name: "oversize", content: tooBig, because: "maximum message size"},
		{name: "long-line", content: strings.Repeat("a", 10000) + "\n\n", because: "longer than"},
		{name: "too-many-recipients", content: "a@example.com\n" + strings.Repeat("b@example.org\n", intake.DefaultMaxRecipients+1) + "\nbody", because: "too many recipients"},
		{name: "empty-message", content: "a@example.com\nb@example.org\n\n", because: "message is empty"},
		{name: "unknown-param", content: "a@example.com FOO=1\nb@example.org\n\nbody", because: "unknown sender parameter"},
		{name: "bad-notify", content: "a@example.com\nb@example.org NOTIFY=NEVER,DELAY\n\nbody", because: "NEVER"},
		{name: "bad-ret", content: "a@example.com RET=ALL\nb@example.org\n\nbody", because: "RET"},
		{name: "bad-xtext", content: "a@example.com ENVID=a+zz\nb@example.org\n\nbody", because: "xtext"},
		{name: "eml-no-from.eml", content: "To: b@example.org\r\n\r\nbody", because: "neither a Sender"},
		{name: "eml-no-to.eml", content: "From: a@example.com\r\n\r\nbody", because: "no To:"},
		{name: "eml-bad-to.eml", content: "From: a@example.com\r\nTo: <<<\r\n\r\nbody", because: "To:"},
		{name: "directory", setup: func(t *testing.T, dir string) {
			if err := os.Mkdir(filepath.Join(dir, "new", "directory"), 0o700); err != nil {
				t.Fatal(err)
			}
		}, because: "not a regular file"},
		{name: "symlink", setup: func(t *testing.T, dir string) {
			if err := os.Symlink("/etc/passwd", filepath.Join(dir, "new", "symlink")); err != nil {
				t.Fatal(err)
			}
		}, because: "not a regular file"},
		{name: "fifo", setup: func(t *testing.T, dir string) {
			if err := syscall.Mkfifo(filepath.Join(dir, "new", "fifo"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, because: "not a regular file"},
	}
	r := startMaildrop(t, time.Hour, 1000, func(dir string) {
		for _, tt := range tests {
			if tt.setup != nil {
				tt.setup(t, dir)
			} else {
				writeNew(t, dir, tt.name, tt.content)
			}
		}
		writeNew(t, dir, "good", "a@example.com\nb@example.org\n\nSubject: ok\r\n\r\nok\r\n")
	})
	r.waitEmpty(t, 5*time.Second)
	if msgs := r.messages(t); len(msgs) != 1 || msgs[0].msg.Sender != "a@example.com" {
		t.Errorf("queue holds %d messages, want only the good one", len(msgs))
	}
	failed := filepath.Join(r.dir, "failed")
	for _, tt := range tests {
		if _, err := os.Lstat(filepath.Join(failed, tt.name)); err != nil {
			t.Errorf("%s: not in failed/: %v", tt.name, err)
		}
		why, err := os.ReadFile(filepath.Join(failed, tt.name+".error"))
		if err != nil {
			t.Errorf("%s: no .error file: %v", tt.name, err)
			continue
		}
		if !strings.Contains(string(why), tt.because) {
			t.Errorf("%s: .error says %q, want it to mention %q", tt.name, why, tt.because)
		}
	}
	if got := r.md.FailedCount(); got != len(tests) {
		t.Errorf("FailedCount = %d, want %d", got, len(tests))
	}
	// The symlink target is untouched.
	if _, err := os.Stat("/etc/passwd"); err != nil {
		t.Errorf("symlink target disturbed: %v", err)
	}
}

func TestMaildropStoreErrorLeavesFile(t *testing.T) {
	r := startMaildrop(t, 20*time.Millisecond, 0, nil)
	r.stop(t)
	r.store.Close()
	// A store that refuses (closed): the file must stay in new/, untouched.
	md := New(Options{Dir: r.dir, Store: r.store, PollInterval: 20 * time.Millisecond, Logger: zerolog.New(io.Discard)})
	content := "a@example.com\nb@example.org\n\nbody\r\n"
	writeNew(t, r.dir, "keep", content)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := md.Run(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(r.dir, "new", "keep"))
	if err != nil || string(got) != content {
		t.Fatalf("file in new/ after store failure: %q, %v", got, err)
	}
	if md.FailedCount() != 0 {
		t.Errorf("a store failure was counted as a bad file")
	}
}

func TestMaildropCreatesDirs(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "md")
	st, err := boltstore.Open(filepath.Join(base, "q.db"), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	md := New(Options{Dir: dir, Store: st, Logger: zerolog.New(io.Discard)})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := md.Run(ctx); err != nil {
		t.Fatal(err)
	}
	// The modes tmpfiles.d gives (docs/maildrop.md "Who may submit"):
	// everyone reaches tmp/ and new/ to submit, nobody lists them, and
	// failed/ is for the daemon's group.
	drop := 0o733 | os.ModeSetgid | os.ModeSticky
	for sub, mode := range map[string]os.FileMode{".": 0o755, "tmp": drop, "new": drop, "failed": 0o750} {
		fi, err := os.Stat(filepath.Join(dir, sub))
		if err != nil {
			t.Fatal(err)
		}
		mode |= os.ModeDir
		if fi.Mode() != mode {
			t.Errorf("%s/ mode %v, want %v", sub, fi.Mode(), mode)
		}
	}
}

// Issue 10 item 8: a writer that writes straight into new/ (not through
// tmp/) is not caught half-way: the file is taken once it has settled.
func TestMaildropWaitsForWriterInNew(t *testing.T) {
	r := startMaildrop(t, time.Hour, 0, nil)
	path := filepath.Join(r.dir, "new", "direct")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	for _, part := range []string{"", "a@example.com\n", "b@example.org\n\n", "Subject: slow writer\r\n\r\n", "done\r\n"} {
		if _, err := f.WriteString(part); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	f.Close()
	r.waitEmpty(t, 10*time.Second)
	msgs := r.messages(t)
	if len(msgs) != 1 || !strings.HasSuffix(msgs[0].body, "done\r\n") {
		t.Fatalf("queue holds %d messages (%+v), want the whole file", len(msgs), msgs)
	}
	if n := r.md.FailedCount(); n != 0 {
		t.Fatalf("%d files failed", n)
	}
}

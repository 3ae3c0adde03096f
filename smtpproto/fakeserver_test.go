package smtpproto

// A scripted SMTP server for wire-level tests: it listens on 127.0.0.1:0,
// runs a script of expect/reply steps and records the exact bytes the
// client sent.

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// step is one scripted exchange. Expect is the exact client line (without
// CRLF); a trailing "*" makes it a prefix. Reply is sent as is, each "\n"
// becoming CRLF; "" sends nothing.
type step struct {
	Expect string
	Reply  string
	Data   bool          // read a DATA body up to "." first
	Bytes  int           // read this many raw bytes first (BDAT payload)
	TLS    bool          // run the server side of a TLS handshake first
	Delay  time.Duration // wait before replying
	Hang   bool          // stop reading and wait until the client goes away
	Stall  time.Duration // stop reading for this long first (or until the test ends)
	Signal chan struct{} // closed once the reply was sent
}

type fakeServer struct {
	t      *testing.T
	ln     net.Listener
	tlsCfg *tls.Config
	script []step
	greet  string

	mu    sync.Mutex
	raw   strings.Builder // every byte the client sent (decrypted after TLS)
	lines []string        // every command line the client sent
	data  []string        // DATA / BDAT payloads
	errs  []string
	peer  net.Addr
	done  chan struct{}
	quit  chan struct{} // closed when the test ends: a stall stops there
}

// startFake serves one connection with greeting and script.
func startFake(t *testing.T, greeting string, script ...step) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fs := &fakeServer{t: t, ln: ln, script: script, greet: greeting, done: make(chan struct{}), quit: make(chan struct{})}
	t.Cleanup(func() { close(fs.quit); ln.Close(); fs.wait() })
	go fs.serve()
	return fs
}

func (fs *fakeServer) port() int { return fs.ln.Addr().(*net.TCPAddr).Port }

// settings points a route at the fake server.
func (fs *fakeServer) settings() *Settings {
	return &Settings{Name: "test", Host: "127.0.0.1", Port: fs.port(), Localhost: "client.test"}
}

func (fs *fakeServer) fail(format string, args ...any) {
	fs.mu.Lock()
	fs.errs = append(fs.errs, fmt.Sprintf(format, args...))
	fs.mu.Unlock()
}

// recorder tees everything read into raw.
type recorder struct {
	fs *fakeServer
	r  io.Reader
}

func (r recorder) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.fs.mu.Lock()
	r.fs.raw.Write(p[:n])
	r.fs.mu.Unlock()
	return n, err
}

func (fs *fakeServer) serve() {
	defer close(fs.done)
	nc, err := fs.ln.Accept()
	if err != nil {
		return
	}
	defer nc.Close()
	fs.mu.Lock()
	fs.peer = nc.RemoteAddr()
	fs.mu.Unlock()
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	var conn net.Conn = nc
	br := bufio.NewReader(recorder{fs, conn})
	send := func(s string) {
		if s == "" {
			return
		}
		conn.Write([]byte(strings.ReplaceAll(s, "\n", "\r\n") + "\r\n"))
	}
	send(fs.greet)
	for i, st := range fs.script {
		if st.TLS {
			tc := tls.Server(nc, fs.tlsCfg)
			if err := tc.Handshake(); err != nil {
				fs.fail("step %d: TLS handshake: %v", i, err)
				return
			}
			conn = tc
			br = bufio.NewReader(recorder{fs, conn})
		}
		if st.Hang {
			io.Copy(io.Discard, br)
			return
		}
		if st.Stall > 0 {
			select {
			case <-time.After(st.Stall):
			case <-fs.quit:
				return
			}
		}
		if st.Expect != "" {
			l, err := br.ReadString('\n')
			if err != nil {
				fs.fail("step %d: expected %q, got error %v", i, st.Expect, err)
				return
			}
			l = strings.TrimSuffix(l, "\r\n")
			fs.mu.Lock()
			fs.lines = append(fs.lines, l)
			fs.mu.Unlock()
			if p, ok := strings.CutSuffix(st.Expect, "*"); !(ok && strings.HasPrefix(l, p) || l == st.Expect) {
				fs.fail("step %d: expected %q, got %q", i, st.Expect, truncate(l, 100))
				return
			}
		}
		if st.Data {
			var body strings.Builder
			for {
				l, err := br.ReadString('\n')
				if err != nil {
					fs.fail("step %d: reading data: %v", i, err)
					return
				}
				if l == ".\r\n" {
					break
				}
				body.WriteString(l)
			}
			fs.mu.Lock()
			fs.data = append(fs.data, body.String())
			fs.mu.Unlock()
		}
		if st.Bytes > 0 {
			b := make([]byte, st.Bytes)
			if _, err := io.ReadFull(br, b); err != nil {
				fs.fail("step %d: reading %d bytes: %v", i, st.Bytes, err)
				return
			}
			fs.mu.Lock()
			fs.data = append(fs.data, string(b))
			fs.mu.Unlock()
		}
		time.Sleep(st.Delay)
		send(st.Reply)
		if st.Signal != nil {
			close(st.Signal)
		}
	}
	// Record whatever else the client sends until it closes.
	nc.SetDeadline(time.Now().Add(2 * time.Second))
	for {
		l, err := br.ReadString('\n')
		if l != "" {
			fs.mu.Lock()
			fs.lines = append(fs.lines, strings.TrimSuffix(l, "\r\n"))
			fs.mu.Unlock()
		}
		if err != nil {
			return
		}
	}
}

// wait blocks until the connection is over and fails the test on script
// mismatches.
func (fs *fakeServer) wait() {
	fs.t.Helper()
	select {
	case <-fs.done:
	case <-time.After(10 * time.Second):
		fs.t.Errorf("fake server: connection still open after 10s")
		return
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for _, e := range fs.errs {
		fs.t.Errorf("fake server: %s", e)
	}
	fs.errs = nil
}

// finish closes the client, waits and returns the recorded lines.
func (fs *fakeServer) finish(c *Conn) []string {
	fs.t.Helper()
	if c != nil {
		c.drop()
	}
	fs.wait()
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return append([]string(nil), fs.lines...)
}

func (fs *fakeServer) rawBytes() string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.raw.String()
}

// ehloReply builds a 250 EHLO reply advertising kws.
func ehloReply(kws ...string) string {
	lines := append([]string{"fake.test"}, kws...)
	var b strings.Builder
	for i, l := range lines {
		sep := "-"
		if i == len(lines)-1 {
			sep = " "
		}
		fmt.Fprintf(&b, "250%s%s", sep, l)
		if i < len(lines)-1 {
			b.WriteString("\n")
		}
	}
	return b.String()
}

func boolp(b bool) *bool { return &b }
func intp(i int) *int    { return &i }

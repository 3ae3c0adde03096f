package submission

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// FuzzSession feeds the real listener random byte streams, with a pause
// longer than the timeout between prefix and suffix on some runs, and
// checks that no message is queued that the client did not complete: never
// more messages than end-of-data markers sent, and after a pause the
// server saw, none from what follows it (issue 10 items 1 and 2).
func FuzzSession(f *testing.F) {
	const timeout = 10 * time.Millisecond
	// The queue lives in memory (/dev/shm) when it can: the fuzzer checks
	// the session, not fsync, and CI runs it 200000 times.
	dir := f.TempDir()
	if shm, err := os.MkdirTemp("/dev/shm", "mailq-fuzz-"); err == nil {
		dir = shm
		f.Cleanup(func() { os.RemoveAll(shm) })
	}
	r := startListenerIn(f, dir, func(o *Options) { o.Timeout = timeout; o.MaxConns = 4 })
	head := "EHLO fuzz.test\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n"
	f.Add([]byte(head+"Subject: x\r\n"), []byte(".\r\n"+injection), true)                // item 1
	f.Add([]byte("EHLO xxxxxxxx"), []byte("x\r\n"+head+"Subject: y\r\n\r\n.\r\n"), true) // item 2
	f.Add([]byte(head+"Subject: ok\r\n\r\n..dot\r\n.\r\nQUIT\r\n"), []byte{}, false)     // a whole message
	f.Add([]byte("EHLO c\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nBDAT 5\r\nab"), []byte("cdeBDAT 0 LAST\r\n"), true)
	f.Add([]byte(head+"x\r\n.\r\nMAIL FROM:<a@example.com>\r\nMAIL FROM:<b@example.com>\r\n"), []byte("RSET\r\n"), false)
	var runs atomic.Int64
	f.Fuzz(func(t *testing.T, prefix, suffix []byte, pause bool) {
		// A pause costs several timeouts: every seed may pause, later
		// runs one in 200, so the CI's 200000 runs stay short.
		n := runs.Add(1)
		runSession(t, r, timeout, prefix, suffix, pause && (n <= 10 || n%200 == 0))
	})
}

// runSession sends prefix, waits (when pause) until the server has been
// quiet for several timeouts, sends suffix, half-closes, reads everything
// and checks what was queued.
func runSession(t *testing.T, r *rig, timeout time.Duration, prefix, suffix []byte, pause bool) {
	before := r.count(t)
	c, err := net.Dial("tcp", r.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	out := &bytes.Buffer{}
	replies := make(chan struct{})
	quiet := make(chan struct{}, 1)
	go func() { // the server's output, noting when it falls quiet
		defer close(replies)
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadString('\n')
			out.WriteString(line)
			if err != nil {
				return
			}
			select {
			case quiet <- struct{}{}:
			default:
			}
		}
	}()
	c.Write(prefix)
	sent := prefix
	if pause {
		// Wait until the server has said nothing for several timeouts:
		// it is waiting for us, not busy storing.
	wait:
		for {
			select {
			case <-quiet:
			case <-replies:
				break wait
			case <-time.After(5 * timeout):
				break wait
			}
		}
	} else {
		sent = append(append([]byte(nil), prefix...), suffix...)
	}
	c.Write(suffix)
	c.(*net.TCPConn).CloseWrite()
	start := time.Now()
	<-replies
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("the server kept the connection %v after the client's EOF (prefix %q, suffix %q)\nserver said:\n%s", el, prefix, suffix, out)
	}
	queued := r.count(t) - before
	if max := endMarkers(sent); queued > max {
		t.Fatalf("%d messages queued, but the client ended only %d (prefix %q, suffix %q, pause %v)\nserver said:\n%s",
			queued, max, prefix, suffix, pause, out)
	}
}

// endMarkers bounds the messages a byte stream can complete: DATA ends at
// CRLF "." CRLF (or a "." line right after the DATA command), BDAT at LAST.
func endMarkers(b []byte) int {
	s := strings.ToUpper(string(b))
	return strings.Count(s, "\n.\r\n") + strings.Count(s, "LAST")
}

// FuzzDotReader checks the block-wise DATA reader against a byte-at-a-time
// reference (RFC 5321 §4.5.2), with the input cut at random points.
func FuzzDotReader(f *testing.F) {
	f.Add([]byte("Subject: x\r\n\r\n..dot\r\n.\rcr\r\nbare\rCR\n.\n.\r\n"), uint16(7))
	f.Add([]byte(".\r\n"), uint16(1))
	f.Add([]byte("a\r\n..\r\n.\r\nafter"), uint16(3))
	f.Add([]byte(strings.Repeat("x", 70000)+"\r\n.\r\n"), uint16(4096))
	f.Fuzz(func(t *testing.T, in []byte, cut uint16) {
		wantBody, wantEnd := referenceUnstuff(in)
		src := &cutReader{b: in, n: int(cut)%97 + 1}
		d := newDotReader(bufio.NewReaderSize(src, 16))
		got, err := io.ReadAll(d)
		if wantEnd {
			if err != nil || !bytes.Equal(got, wantBody) {
				t.Fatalf("got %q, %v; want %q", got, err, wantBody)
			}
			return
		}
		// Without the end marker the read must fail (what it passed on
		// before, pieces of a long line included, is thrown away with it).
		if err == nil {
			t.Fatalf("no end marker in %q, but the reader ended cleanly with %q", in, got)
		}
		if n := min(len(got), len(wantBody)); !bytes.Equal(got[:n], wantBody[:n]) {
			t.Fatalf("read %q disagrees with %q", got, wantBody)
		}
	})
}

// referenceUnstuff reads DATA a byte at a time: at a line start (the
// beginning, or after CRLF) ".\r\n" ends the data and a leading "." is
// dropped; everything else is kept.
func referenceUnstuff(in []byte) (body []byte, ended bool) {
	lineStart := true
	for i := 0; i < len(in); {
		if lineStart && in[i] == '.' {
			if i+2 < len(in) && in[i+1] == '\r' && in[i+2] == '\n' {
				return body, true
			}
			i++ // dot-unstuffing
		}
		// Copy the rest of the line.
		j := bytes.IndexByte(in[i:], '\n')
		if j < 0 {
			// An unfinished line is never passed on.
			return body, false
		}
		line := in[i : i+j+1]
		body = append(body, line...)
		lineStart = len(line) >= 2 && line[len(line)-2] == '\r'
		i += j + 1
	}
	return body, false
}

// cutReader returns at most n bytes per Read.
type cutReader struct {
	b []byte
	n int
}

func (c *cutReader) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	k := copy(p[:min(len(p), c.n)], c.b)
	c.b = c.b[k:]
	return k, nil
}

package control

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"mailq/queue"
)

// TestFilledReadsFillsEachRead: a source that yields a line (here a byte)
// at a time still fills each Read, so the request body goes out in a few
// large chunks, one write each, instead of a chunk per line.
func TestFilledReadsFillsEachRead(t *testing.T) {
	msg := strings.Repeat(strings.Repeat("x", 77)+"\r\n", 53) // 4 KiB, as a pipe from a program gives it
	r := filledReads{iotest.OneByteReader(strings.NewReader(msg))}
	buf := make([]byte, 32<<10)
	n, err := r.Read(buf)
	if n != len(msg) || (err != nil && !errors.Is(err, io.EOF)) {
		t.Fatalf("first Read = %d, %v; want the whole %d-byte message in one", n, err, len(msg))
	}
	if n, err := r.Read(buf); n != 0 || !errors.Is(err, io.EOF) {
		t.Errorf("second Read = %d, %v; want 0, EOF", n, err)
	}
	if got := string(buf[:len(msg)]); got != msg {
		t.Error("the bytes read differ from the message")
	}
}

// countingSource counts what was read of it.
type countingSource struct {
	r io.Reader
	n int
}

func (c *countingSource) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// TestEnqueueReadsNothingWhenUnreachable: the message is read only once
// the request is under way, so when the daemon cannot be reached nothing
// of it was consumed and sendmail can still put it in the maildrop.
func TestEnqueueReadsNothingWhenUnreachable(t *testing.T) {
	src := &countingSource{r: strings.NewReader("Subject: x\r\n\r\nbody\r\n")}
	c := NewClient(filepath.Join(t.TempDir(), "no-daemon.sock"))
	_, err := c.Enqueue(context.Background(), queue.Envelope{Sender: "a@example.com",
		Recipients: []queue.RecipientSpec{{Address: "b@example.org"}}}, src, "sendmail")
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("Enqueue without a daemon: %v, want ErrUnreachable", err)
	}
	if src.n != 0 {
		t.Errorf("%d bytes of the message were read; want none", src.n)
	}
}

package control

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mailq/queue"
)

// chunked encodes data as net/http's chunked writer does, one chunk per
// piece of at most size bytes, then the trailer.
func chunked(t testing.TB, data []byte, size int, trailer string) string {
	t.Helper()
	var b bytes.Buffer
	w := httputil.NewChunkedWriter(&b)
	for len(data) > 0 {
		n := min(size, len(data))
		w.Write(data[:n])
		data = data[n:]
	}
	w.Close()
	b.WriteString(trailer + "\r\n")
	return b.String()
}

// TestReadResponseBodies: the answers the daemon's server gives (net/http
// writes them) are read as net/http would: delimited by Content-Length,
// chunked with the error trailer, or by the end of the connection; a body
// cut short is an error, never a complete answer.
func TestReadResponseBodies(t *testing.T) {
	body := strings.Repeat("line of the list\n", 5000)
	tests := []struct {
		name, answer, want, trailer string
		wantErr                     error
	}{
		{name: "content-length", answer: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", want: "hello"},
		{name: "content-length short", answer: "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhello", want: "hello", wantErr: io.ErrUnexpectedEOF},
		{name: "chunked", answer: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: Mailq-Error\r\n\r\n" + chunked(t, []byte(body), 4096, ""), want: body},
		{name: "chunked with trailer", answer: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(t, []byte(body), 1000, "Mailq-Error: disk on fire\r\n"), want: body, trailer: "disk on fire"},
		{name: "chunk extension", answer: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\n\r\n", want: "hello"},
		{name: "chunked cut short", answer: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(t, []byte(body), 4096, "")[:5000], want: "", wantErr: io.ErrUnexpectedEOF},
		{name: "chunked without last chunk", answer: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", want: "hello", wantErr: io.ErrUnexpectedEOF},
		{name: "until close", answer: "HTTP/1.1 200 OK\r\n\r\nto the end", want: "to the end"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := readResponse(bufio.NewReader(strings.NewReader(tt.answer)))
			if err != nil {
				t.Fatalf("readResponse: %v", err)
			}
			if resp.status != 200 || resp.line != "200 OK" {
				t.Errorf("status %d %q, want 200 \"200 OK\"", resp.status, resp.line)
			}
			got, err := io.ReadAll(resp)
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("reading the body: %v", err)
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Fatalf("reading the body: %v, want %v", err, tt.wantErr)
			}
			if tt.want != "" && string(got) != tt.want {
				t.Errorf("body is %d bytes, want %d", len(got), len(tt.want))
			}
			if tr := resp.Trailer(ErrorTrailer); tr != tt.trailer {
				t.Errorf("trailer %s = %q, want %q", ErrorTrailer, tr, tt.trailer)
			}
		})
	}
}

// TestReadResponseRefusesMalformedAnswers: what is not an HTTP/1.1 answer
// is an error, not a guess.
func TestReadResponseRefusesMalformedAnswers(t *testing.T) {
	for _, answer := range []string{
		"",
		"SMTP 220 hello\r\n\r\n",
		"HTTP/1.1 2000 OK\r\n\r\n",
		"HTTP/1.1 abc OK\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
		"HTTP/1.1 200 OK\r\n" + strings.Repeat("X", 70<<10),
	} {
		if _, err := readResponse(bufio.NewReader(strings.NewReader(answer))); err == nil {
			t.Errorf("readResponse(%.40q) = nil error, want one", answer)
		}
	}
	resp, err := readResponse(bufio.NewReader(strings.NewReader("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n")))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(resp); err == nil || !strings.Contains(err.Error(), "chunk size") {
		t.Errorf("a negative chunk size: %v, want a malformed chunk size error", err)
	}
}

// FuzzChunkedReader: whatever a chunked body holds, reading it never
// panics and never yields more bytes than it holds; and what net/http's
// chunked writer encodes, in pieces of any size, reads back unchanged.
func FuzzChunkedReader(f *testing.F) {
	f.Add([]byte("5\r\nhello\r\n0\r\n\r\n"), []byte("data"), uint8(3))
	f.Add([]byte("ffffffffffffffff\r\n"), []byte(""), uint8(1))
	f.Add([]byte("1;ext\r\nx\r\n0\r\nMailq-Error: x\r\n\r\n"), []byte(strings.Repeat("y", 300)), uint8(0))
	f.Fuzz(func(t *testing.T, raw, data []byte, size uint8) {
		raw, data = raw[:min(len(raw), 4096)], data[:min(len(data), 4096)]
		var trailer textproto.MIMEHeader
		r := &chunkedReader{br: bufio.NewReader(bytes.NewReader(raw)), trailer: &trailer}
		got, _ := io.ReadAll(r)
		if len(got) > len(raw) {
			t.Fatalf("read %d bytes from a %d-byte body", len(got), len(raw))
		}
		enc := chunked(t, data, int(size)+1, "")
		r = &chunkedReader{br: bufio.NewReader(strings.NewReader(enc)), trailer: &trailer}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("round trip of %d bytes in chunks of %d: got %d bytes, %v", len(data), int(size)+1, len(got), err)
		}
	})
}

// serveUnix runs handler on a unix socket until the test ends.
func serveUnix(t *testing.T, handler http.HandlerFunc) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "mqw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "s")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: handler}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return sock
}

// failingSource gives n bytes of a message, then fails.
type failingSource struct{ n int }

func (f *failingSource) Read(p []byte) (int, error) {
	if f.n == 0 {
		return 0, errors.New("the pipe broke")
	}
	m := min(f.n, len(p))
	copy(p, strings.Repeat("x", m))
	f.n -= m
	return m, nil
}

// TestEnqueueSourceFailsMidway: when the message cannot be read to its
// end (sendmail's standard input breaks), the request is cut short and the
// daemon told so; Enqueue reports the read failure at once, and does not
// wait for an answer to a request that never ends.
func TestEnqueueSourceFailsMidway(t *testing.T) {
	got := make(chan error, 1)
	sock := serveUnix(t, func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		got <- err
		http.Error(w, `{"error":"bad request"}`, http.StatusBadRequest)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := NewClient(sock).Enqueue(ctx, queue.Envelope{Sender: "a@example.com",
		Recipients: []queue.RecipientSpec{{Address: "b@example.org"}}}, &failingSource{n: 100 << 10}, "sendmail")
	if ctx.Err() != nil {
		t.Fatal("Enqueue waited for an answer to a request it never finished")
	}
	if err == nil || !strings.Contains(err.Error(), "the pipe broke") {
		t.Errorf("Enqueue with a source that fails: %v, want the source's error", err)
	}
	if serr := <-got; serr == nil {
		t.Error("the daemon read a complete request body; it must see the request cut short")
	}
}

// TestEnqueueWireFormat: the request is the one the daemon's server
// accepts (api.go): POST /v1/enqueue?source=, the envelope line, then the
// message, sent chunked in few writes; the id comes from the JSON answer.
func TestEnqueueWireFormat(t *testing.T) {
	type seen struct {
		method, uri, te string
		body            string
	}
	got := make(chan seen, 1)
	sock := serveUnix(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.RequestURI, strings.Join(r.TransferEncoding, ","), string(b)}
		w.Write([]byte(`{"id":"Q1"}` + "\n"))
	})
	msg := "Subject: x\r\n\r\n" + strings.Repeat("body line\r\n", 10000)
	id, err := NewClient(sock).Enqueue(context.Background(), queue.Envelope{Sender: "a@example.com",
		Recipients: []queue.RecipientSpec{{Address: "b@example.org"}}}, strings.NewReader(msg), "sendmail")
	if err != nil || id != "Q1" {
		t.Fatalf("Enqueue = %q, %v; want Q1", id, err)
	}
	s := <-got
	if s.method != "POST" || s.uri != "/v1/enqueue?source=sendmail" || s.te != "chunked" {
		t.Errorf("request %s %s (transfer encoding %q), want POST /v1/enqueue?source=sendmail, chunked", s.method, s.uri, s.te)
	}
	line, rest, _ := strings.Cut(s.body, "\n")
	if !strings.Contains(line, `"a@example.com"`) || !strings.Contains(line, `"b@example.org"`) || rest != msg {
		t.Errorf("body: envelope line %q and %d bytes of message, want the envelope and the %d-byte message", line, len(rest), len(msg))
	}
}

// TestAPIErrorCarriesTheDaemonsWords: a refusal's status and JSON error
// come back as *APIError; a body that is not the JSON error is quoted.
func TestAPIErrorCarriesTheDaemonsWords(t *testing.T) {
	sock := serveUnix(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/stats" {
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte(`{"error":"not in the mailq group"}`))
			return
		}
		http.Error(w, "plain words", http.StatusTeapot)
	})
	c := NewClient(sock)
	_, err := c.Stats(context.Background())
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 403 || ae.Message != "not in the mailq group" {
		t.Errorf("Stats: %v, want the 403 with the daemon's message", err)
	}
	err = c.Ping(context.Background())
	if !errors.As(err, &ae) || ae.Status != 418 || !strings.Contains(ae.Message, "418 I'm a teapot: plain words") {
		t.Errorf("Ping: %v, want the 418 quoted", err)
	}
}

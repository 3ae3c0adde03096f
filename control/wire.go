package control

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
)

// The client speaks the control API's HTTP/1.1 itself (RFC 9112), the
// small part of it the daemon's server answers with: one request per
// connection on the socket (one after another on a connection to `mailq
// read-queue`), bodies of a known length or chunked, answers delimited by
// Content-Length or chunked with trailers. net/http would do it too, but
// mailqctl is also sendmail, started once per message, and linking
// net/http runs the initialisation of it and of crypto/tls and crypto/x509
// at each start (issue 13: some 3 ms of CPU and 70 page faults a message on
// a virtual machine, a tenth of a sendmail call).

// maxLineBytes bounds a status line or a chunk's size line.
const maxLineBytes = 64 << 10

// conn is a connection and the reader of its answers.
type conn struct {
	net.Conn
	br *bufio.Reader
}

// response is an answer whose body is being read.
type response struct {
	status  int
	line    string // the status line's code and reason, "404 Not Found"
	header  textproto.MIMEHeader
	body    io.Reader // delimited: ends with io.EOF at the end of the answer
	trailer textproto.MIMEHeader
	// done is called once by Close; complete says the body was read to
	// its end (the connection may carry another request).
	done   func(complete bool)
	closed bool
	ended  bool
}

func (r *response) Read(p []byte) (int, error) {
	n, err := r.body.Read(p)
	if errors.Is(err, io.EOF) {
		r.ended = true
	}
	return n, err
}

// Trailer returns the trailer field name; "" before the body's end.
func (r *response) Trailer(name string) string { return r.trailer.Get(name) }

func (r *response) Close() error {
	if !r.closed {
		r.closed = true
		r.done(r.ended)
	}
	return nil
}

// writeRequest writes the request line and header, then the body: with its
// Content-Length when length >= 0, else chunked (length -1) in chunks of
// what each Read of body gives.
func writeRequest(w *bufio.Writer, method, path string, body io.Reader, length int64) error {
	fmt.Fprintf(w, "%s %s HTTP/1.1\r\nHost: mailq\r\n", method, path)
	switch {
	case body == nil:
		if method != "GET" {
			w.WriteString("Content-Length: 0\r\n")
		}
		w.WriteString("\r\n")
		return w.Flush()
	case length >= 0:
		fmt.Fprintf(w, "Content-Length: %d\r\n\r\n", length)
		if _, err := io.CopyN(w, sourceReader{body}, length); err != nil {
			if errors.Is(err, io.EOF) {
				err = &sourceError{io.ErrUnexpectedEOF}
			}
			return err
		}
		return w.Flush()
	}
	w.WriteString("Transfer-Encoding: chunked\r\n\r\n")
	buf := make([]byte, 32<<10)
	for {
		n, err := body.Read(buf)
		if n > 0 {
			fmt.Fprintf(w, "%x\r\n", n)
			w.Write(buf[:n])
			if _, werr := w.WriteString("\r\n"); werr != nil {
				return werr
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return &sourceError{err}
		}
	}
	w.WriteString("0\r\n\r\n")
	return w.Flush()
}

// sourceError is a failure to read what a request sends, as opposed to a
// failure to send it.
type sourceError struct{ err error }

func (e *sourceError) Error() string { return "reading what to send: " + e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }

// sourceReader marks its source's failures as sourceErrors.
type sourceReader struct{ r io.Reader }

func (s sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		err = &sourceError{err}
	}
	return n, err
}

// readResponse reads an answer's status line and header from br and
// delimits its body.
func readResponse(br *bufio.Reader) (*response, error) {
	line, err := readLimitedLine(br)
	if err != nil {
		return nil, err
	}
	proto, rest, ok := strings.Cut(line, " ")
	code, _, _ := strings.Cut(rest, " ")
	status, cerr := strconv.Atoi(code)
	if !ok || !strings.HasPrefix(proto, "HTTP/1.") || len(code) != 3 || cerr != nil || status < 100 {
		return nil, fmt.Errorf("malformed status line %q", line)
	}
	header, err := textproto.NewReader(br).ReadMIMEHeader()
	if err != nil {
		return nil, fmt.Errorf("reading the header: %w", err)
	}
	r := &response{status: status, line: rest, header: header}
	switch te := strings.ToLower(header.Get("Transfer-Encoding")); {
	case te == "chunked":
		r.body = &chunkedReader{br: br, trailer: &r.trailer}
	case te != "":
		return nil, fmt.Errorf("unsupported Transfer-Encoding %q", te)
	case header.Get("Content-Length") != "":
		n, err := strconv.ParseInt(header.Get("Content-Length"), 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("malformed Content-Length %q", header.Get("Content-Length"))
		}
		r.body = &exactReader{r: br, n: n}
	case status == 204 || status == 304:
		r.body = strings.NewReader("")
	default:
		r.body = br // until the daemon closes the connection
	}
	return r, nil
}

// readLimitedLine reads a line ending in LF (the CR before it dropped) of
// at most maxLineBytes.
func readLimitedLine(br *bufio.Reader) (string, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > maxLineBytes {
			return "", fmt.Errorf("a line of the answer is longer than %d bytes", maxLineBytes)
		}
		switch {
		case err == nil:
			return string(bytes.TrimRight(line, "\r\n")), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(line) > 0:
			return "", io.ErrUnexpectedEOF
		default:
			return "", err
		}
	}
}

// exactReader reads n bytes, and io.ErrUnexpectedEOF if the source ends
// before them.
type exactReader struct {
	r io.Reader
	n int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.n {
		p = p[:e.n]
	}
	n, err := e.r.Read(p)
	e.n -= int64(n)
	if errors.Is(err, io.EOF) && e.n > 0 {
		err = io.ErrUnexpectedEOF
	}
	if e.n == 0 && err == nil {
		err = io.EOF
	}
	return n, err
}

// chunkedReader decodes a chunked body (RFC 9112 §7.1) and stores its
// trailer fields at the end.
type chunkedReader struct {
	br      *bufio.Reader
	left    int64 // bytes left in the current chunk
	started bool  // a chunk was read: its CRLF comes before the next size
	err     error
	trailer *textproto.MIMEHeader
}

func (c *chunkedReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if c.left == 0 {
		if c.err = c.nextChunk(); c.err != nil {
			return 0, c.err
		}
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.br.Read(p)
	c.left -= int64(n)
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		c.err = err
	}
	return n, err
}

// nextChunk reads the end of the previous chunk and the next chunk's
// size; at the last chunk, the trailer, and then io.EOF.
func (c *chunkedReader) nextChunk() error {
	if c.started {
		if crlf, err := readLimitedLine(c.br); err != nil || crlf != "" {
			return chunkError(err)
		}
	}
	c.started = true
	line, err := readLimitedLine(c.br)
	if err != nil {
		return chunkError(err)
	}
	size, _, _ := strings.Cut(line, ";") // chunk extensions mean nothing here
	size = strings.TrimRight(size, " \t")
	n, perr := strconv.ParseInt(size, 16, 64)
	if perr != nil || n < 0 || size == "" || size[0] == '+' || size[0] == '-' {
		return fmt.Errorf("malformed chunk size %q", line)
	}
	if n > 0 {
		c.left = n
		return nil
	}
	trailer, err := textproto.NewReader(c.br).ReadMIMEHeader()
	if err != nil {
		return chunkError(err)
	}
	*c.trailer = trailer
	return io.EOF
}

func chunkError(err error) error {
	if err == nil || errors.Is(err, io.EOF) {
		return fmt.Errorf("malformed chunked answer: %w", io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("malformed chunked answer: %w", err)
}

// roundTrip sends one request on a connection of its own (or the shared
// one of NewConnClient, held until the answer is closed) and returns the
// answer, whose body the caller reads and closes. The answer is read even
// when writing the request failed: the daemon may refuse a message before
// it has all of it, and close the connection on the rest.
func (c *Client) roundTrip(ctx context.Context, method, path string, body io.Reader, length int64) (*response, error) {
	cn, release, err := c.acquire(ctx)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { cn.Close() })
	finish := func(complete bool) {
		if !stop() || !complete {
			cn.Close()
			release(false)
			return
		}
		release(true)
	}
	werr := writeRequest(bufio.NewWriterSize(cn, 32<<10), method, path, body, length)
	var source *sourceError
	if errors.As(werr, &source) {
		// The request is cut short: the daemon must not take it for
		// complete, nor wait for the rest.
		finish(false)
		return nil, fmt.Errorf("control request %s %s: %w", method, path, werr)
	}
	resp, rerr := readResponse(cn.br)
	if rerr != nil {
		finish(false)
		err := rerr
		if werr != nil {
			err = werr // the daemon went away while the request was being sent
		}
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("control request %s %s: %w", method, path, err)
	}
	resp.done = func(complete bool) { finish(complete && werr == nil) }
	return resp, nil
}

// acquire returns a connection for one request and what to do with it
// after: release(true) when it may carry another request.
func (c *Client) acquire(ctx context.Context) (*conn, func(reusable bool), error) {
	if c.shared == nil {
		nc, err := c.dial(ctx)
		if err != nil {
			return nil, nil, err
		}
		cn := &conn{Conn: nc, br: bufio.NewReaderSize(nc, 32<<10)}
		return cn, func(bool) { cn.Close() }, nil
	}
	select {
	case cn := <-c.shared:
		if cn == nil {
			c.shared <- nil
			return nil, nil, errors.New("the connection to " + c.socket + " is closed")
		}
		return cn, func(reusable bool) {
			if reusable {
				c.shared <- cn
			} else {
				c.shared <- nil // a half-read answer: the connection is out of step
			}
		}, nil
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
}

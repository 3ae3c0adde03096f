package smtpproto

// This file streams a message body: CRLF canonicalisation and dot-stuffing
// for DATA (RFC 5321 §4.5.2), and BDAT chunking without dot-stuffing
// (RFC 3030 §2). The body is never held in memory as a whole.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

// canonWriter turns any line ending (CRLF, bare CR, bare LF) into CRLF
// and, when stuff is set, doubles a "." that starts a line.
type canonWriter struct {
	w         *bufio.Writer
	stuff     bool
	lineStart bool
	prevCR    bool
	n         int64 // bytes written to w
}

func newCanonWriter(w *bufio.Writer, stuff bool) *canonWriter {
	return &canonWriter{w: w, stuff: stuff, lineStart: true}
}

func (d *canonWriter) Write(p []byte) (int, error) {
	for i := 0; i < len(p); {
		if d.prevCR {
			d.prevCR = false
			if p[i] == '\n' { // CR LF already written as CRLF
				i++
				continue
			}
		}
		if d.lineStart {
			// The common case, whole lines already in CRLF form that
			// need no stuffing, goes through in one write.
			if run := d.cleanLines(p[i:]); run > 0 {
				if _, err := d.w.Write(p[i : i+run]); err != nil {
					return i, err
				}
				d.n += int64(run)
				i += run
				continue
			}
		}
		if d.lineStart && d.stuff && p[i] == '.' {
			d.w.WriteByte('.')
			d.n++
		}
		j := bytes.IndexAny(p[i:], "\r\n")
		if j < 0 {
			d.w.Write(p[i:])
			d.n += int64(len(p) - i)
			d.lineStart = false
			break
		}
		d.w.Write(p[i : i+j])
		if _, err := d.w.WriteString("\r\n"); err != nil {
			return i, err
		}
		d.n += int64(j) + 2
		d.lineStart = true
		d.prevCR = p[i+j] == '\r'
		i += j + 1
	}
	return len(p), nil
}

// cleanLines returns the length of the longest prefix of b made of whole
// lines that end in CRLF, hold no other CR or LF, and (when stuffing) do
// not start with a dot: bytes that go out unchanged.
func (d *canonWriter) cleanLines(b []byte) int {
	n := 0
	for n < len(b) {
		if d.stuff && b[n] == '.' {
			break
		}
		end := bytes.IndexByte(b[n:], '\n')
		if end < 1 || b[n+end-1] != '\r' || bytes.IndexByte(b[n:n+end-1], '\r') >= 0 {
			break // no whole line left, a bare LF, or a bare CR
		}
		n += end + 1
	}
	return n
}

// finish adds the CRLF a body without a final line ending lacks.
func (d *canonWriter) finish() error {
	if !d.lineStart {
		d.n += 2
		_, err := d.w.WriteString("\r\n")
		d.lineStart = true
		return err
	}
	return nil
}

// chunkError is a BDAT chunk the server refused.
type chunkError struct {
	cmd   string
	reply rawReply
}

func (e *chunkError) Error() string { return fmt.Sprintf("%s refused: %s", e.cmd, e.reply.Reply) }

// bdatWriter cuts the stream into chunks of exactly size bytes and sends
// each as "BDAT n" as soon as it is full, so a body that is an exact
// multiple ends with "BDAT 0 LAST" (as JavaMail does).
type bdatWriter struct {
	c    *Conn
	size int
	buf  []byte
	last rawReply
}

func (b *bdatWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		room := b.size - len(b.buf)
		take := min(room, len(p))
		b.buf = append(b.buf, p[:take]...)
		p = p[take:]
		if len(b.buf) == b.size {
			if err := b.send(false); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

func (b *bdatWriter) send(last bool) error {
	cmd := "BDAT " + strconv.Itoa(len(b.buf))
	if last {
		cmd += " LAST"
	}
	if b.c.pendingInput() {
		// Every chunk is answered in turn (RFC 3030 §2, no pipelining
		// here): anything waiting now answers nothing.
		return b.c.replyOutOfTurn(cmd)
	}
	if err := b.c.write(cmd); err != nil {
		return err
	}
	b.c.bw.Write(b.buf)
	b.c.tr.note(fmt.Sprintf("C: <%d bytes of message>", len(b.buf)))
	b.buf = b.buf[:0]
	if err := b.c.flush(cmd); err != nil {
		return err
	}
	to := b.c.readTO
	if last {
		to = b.c.dataTermTimeout()
	}
	r, err := b.c.readWithin(cmd, to)
	if err != nil {
		return err
	}
	b.last = r
	if r.Code/100 != 2 {
		return &chunkError{cmd: cmd, reply: r}
	}
	return nil
}

// sendBDAT streams body as BDAT chunks and returns the reply to the LAST chunk.
func (c *Conn) sendBDAT(body io.Reader) (rawReply, error) {
	bw := &bdatWriter{c: c, size: c.s.ChunkSize, buf: make([]byte, 0, c.s.ChunkSize)}
	w := bufio.NewWriterSize(bw, 32<<10)
	cw := newCanonWriter(w, false) // RFC 3030: no dot-stuffing (fixes angus-mail#209)
	if _, err := io.Copy(cw, body); err != nil {
		return rawReply{}, err
	}
	if err := cw.finish(); err != nil {
		return rawReply{}, err
	}
	if err := w.Flush(); err != nil {
		return rawReply{}, err
	}
	if err := bw.send(true); err != nil {
		return rawReply{}, err
	}
	return bw.last, nil
}

// sendDATAContent streams the body after a 354 and the final dot, and
// reads the final reply with the longer end-of-data timeout.
func (c *Conn) sendDATAContent(body io.Reader) (rawReply, error) {
	cw := newCanonWriter(c.bw, true)
	if _, err := io.Copy(cw, body); err != nil {
		return rawReply{}, err
	}
	if err := cw.finish(); err != nil {
		return rawReply{}, err
	}
	c.tr.note(fmt.Sprintf("C: <%d bytes of message>", cw.n))
	if c.pendingInput() {
		return rawReply{}, c.replyOutOfTurn(".")
	}
	if err := c.write("."); err != nil {
		return rawReply{}, err
	}
	if err := c.flush("."); err != nil {
		return rawReply{}, err
	}
	return c.readWithin(".", c.dataTermTimeout())
}

// replyOutOfTurn handles bytes the server sent before the final dot (a
// reply right after 354, or a refusal in the middle of the data): RFC 5321
// §4.5.2 has the server answer only the end of data, so which reply
// belongs to what is lost. The attempt is a temporary failure (4.5.0) and
// the connection is closed, never pooled; what came early is reported.
func (c *Conn) replyOutOfTurn(cmd string) error {
	early := "unreadable bytes"
	c.nc.SetReadDeadline(c.deadline(min(c.readTO, time.Second)))
	if r, err := readReply(c.br); err == nil {
		c.tr.server(r.Code, r.Lines)
		early = strconv.Quote(r.Reply.String())
	}
	c.drop()
	rep := Reply{Code: 451, Enhanced: "4.5.0", Text: "reply before end of data: the server sent " + early +
		" before the message was complete; connection closed, the message will be retried"}
	c.tr.note(rep.Text)
	return &ProtocolError{Host: c.host, Command: cmd, Reply: &rep, Err: errReplyOutOfTurn}
}

// errReplyOutOfTurn marks a reply the client did not ask for.
var errReplyOutOfTurn = errors.New("reply out of turn")

// checkInSync, after a reply was read, closes the connection when the
// server sent more than that reply: an extra line answers nothing and
// would be taken as the next command's reply (the message itself keeps
// the reply it got).
func (c *Conn) checkInSync() {
	if c.pendingInput() {
		c.tr.note("the server sent more than one reply; closing the connection")
		c.log.Warn().Str("route", c.s.Name).Str("host", c.host).Msg("server sent a reply out of turn; the connection is closed and not reused")
		c.drop()
	}
}

// dataTermTimeout is max(timeout, 10 min) per RFC 5321 §4.5.3.2.6.
func (c *Conn) dataTermTimeout() time.Duration {
	min := c.opts.DataTermTimeout
	if min == 0 {
		min = MinDataTermTimeout
	}
	return max(c.readTO, min)
}

package submission

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mailq/queue"
)

// maxCommandLine bounds one command line including CRLF. RFC 5321
// §4.5.3.1.4 asks for 512; AUTH responses (RFC 4954 §4) and ESMTP
// parameters need more, so we allow what go-smtp allowed.
const maxCommandLine = 2000

// maxBadCommands is how many refused commands (syntax errors, commands out
// of sequence) one connection may send before it is closed.
const maxBadCommands = 20

var sessionSeq atomic.Uint64

// sessionPrefix starts every session id: random once per process, so ids
// do not repeat across restarts, and a counter after it, so a connection
// costs no random read.
var sessionPrefix = func() string {
	var rnd [4]byte
	rand.Read(rnd[:])
	return hex.EncodeToString(rnd[:])
}()

// The buffers of a session are recycled: a client that sends one message
// per connection (smtp-source, most applications) would otherwise cost a
// fresh, zeroed 64 KiB reader per message.
var (
	readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 64<<10) }}
	writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}
)

// conn is one SMTP session. Only its own goroutine touches its fields,
// except idle and raw, which Serve uses to end it at shutdown.
type conn struct {
	l    *Listener
	raw  net.Conn // the TCP connection
	nc   net.Conn // raw, or the TLS connection on top of it
	rd   *deadlineReader
	br   *bufio.Reader
	bw   *bufio.Writer
	id   string // for Received: and logs
	ip   string
	tls  bool
	idle atomic.Bool // waiting for a command line

	helo         string
	authUser     string
	authFailures int
	badCommands  int
	txn          int // transactions completed, for Received: ids

	// The mail transaction (RFC 5321 §3.3): MAIL seen, recipients so far.
	mailGiven bool
	env       queue.Envelope
	bdat      *bdatTransfer
}

func newConn(l *Listener, nc net.Conn, ip string) *conn {
	c := &conn{
		l:   l,
		raw: nc,
		nc:  nc,
		ip:  ip,
		id:  sessionPrefix + strconv.FormatUint(sessionSeq.Add(1), 10),
	}
	c.rd = &deadlineReader{c: nc, closing: &l.closing}
	c.br = readerPool.Get().(*bufio.Reader)
	c.br.Reset(c.rd)
	c.bw = writerPool.Get().(*bufio.Writer)
	c.bw.Reset(nc)
	return c
}

// deadlineReader sets the read deadline before every read: in command mode
// one deadline for the whole line (set by readLine); during a message
// transfer an idle limit per read, capped by the transfer's own deadline.
// A slow but steady upload is fine; a stalled one is not, and neither is
// one that drips forever.
type deadlineReader struct {
	c            net.Conn
	lineDeadline time.Time
	idle         time.Duration // > 0 while a message is being transferred
	transferEnd  time.Time
	closing      *atomic.Bool
	set          time.Time // the deadline last given to c
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	deadline := d.lineDeadline
	if d.idle > 0 {
		deadline = time.Now().Add(d.idle)
		if deadline.After(d.transferEnd) {
			deadline = d.transferEnd
		}
	}
	if deadline != d.set {
		// Commands share one deadline per line: set it once, not per read.
		d.c.SetReadDeadline(deadline)
		d.set = deadline
	}
	if d.idle == 0 && d.closing.Load() {
		// Serve may have set a past deadline before ours replaced it.
		return 0, errShuttingDown
	}
	return d.c.Read(p)
}

var (
	errShuttingDown   = errors.New("submission: listener shutting down")
	errCommandTooLong = errors.New("submission: command line too long")
)

// interruptIfIdle ends a session waiting for a command (Serve at shutdown);
// sessions in the middle of a command or transfer finish it first.
func (c *conn) interruptIfIdle() {
	if c.idle.Load() {
		c.raw.SetReadDeadline(time.Unix(1, 0))
	}
}

func (c *conn) serve() {
	defer c.close()
	if c.l.opts.ImplicitTLS {
		tc := tls.Server(c.raw, c.l.opts.TLSConfig)
		tc.SetDeadline(time.Now().Add(c.l.opts.Timeout))
		if err := tc.Handshake(); err != nil {
			c.l.opts.Logger.Debug().Err(err).Str("remote", c.ip).Msg("submission: TLS handshake failed")
			return
		}
		tc.SetDeadline(time.Time{})
		c.useTLS(tc)
	}
	c.reply(220, "", c.l.opts.Hostname+" ESMTP mailq")
	for {
		c.idle.Store(true)
		line, err := c.readLine()
		c.idle.Store(false)
		if err != nil {
			c.readFailed(err)
			return
		}
		if !c.handle(line) {
			return
		}
		if c.badCommands >= maxBadCommands {
			c.reply(421, "4.7.0", c.l.opts.Hostname+" Too many errors, closing connection")
			return
		}
	}
}

func (c *conn) close() {
	c.abortTransaction()
	c.flush()
	c.nc.Close()
	// Nothing reads or writes these after close (a BDAT transfer reads
	// its pipe, and abortTransaction has waited for it).
	c.br.Reset(nil)
	readerPool.Put(c.br)
	c.bw.Reset(nil)
	writerPool.Put(c.bw)
	c.br, c.bw = nil, nil
}

func (c *conn) useTLS(tc *tls.Conn) {
	c.nc = tc
	c.tls = true
	c.rd.c = tc
	c.rd.set = time.Time{}
	c.br.Reset(c.rd) // RFC 3207 §4.2: nothing sent before TLS counts after it
	c.bw.Reset(tc)
}

// readLine reads one command line within the timeout. A line that is not
// complete when the time is up is never returned: the caller gets the error
// and ends the session, so a partial line is never run as a command.
func (c *conn) readLine() (string, error) {
	c.rd.idle = 0
	c.rd.lineDeadline = time.Now().Add(c.l.opts.Timeout)
	c.flushIfBlocking()
	var line []byte
	for {
		frag, err := c.br.ReadSlice('\n')
		if len(line)+len(frag) > maxCommandLine {
			return "", errCommandTooLong
		}
		line = append(line, frag...)
		if err == nil {
			break
		}
		if err != bufio.ErrBufferFull {
			return "", err
		}
	}
	s := string(line[:len(line)-1])
	return strings.TrimSuffix(s, "\r"), nil
}

// readFailed ends the session after a failed read: with 421 when the
// client is still there to read it (RFC 5321 §4.5.3.2, §3.8).
func (c *conn) readFailed(err error) {
	var ne net.Error
	switch {
	case c.l.closing.Load() && (errors.Is(err, errShuttingDown) || errors.As(err, &ne) && ne.Timeout()):
		c.reply(421, "4.3.2", c.l.opts.Hostname+" Service shutting down, closing connection")
	case errors.As(err, &ne) && ne.Timeout():
		c.reply(421, "4.4.2", c.l.opts.Hostname+" Timeout waiting for the client, closing connection")
	case errors.Is(err, errCommandTooLong):
		c.reply(500, "5.5.2", "Line too long, closing connection")
	}
}

// reply writes one reply (multi-line when text has newlines) with its
// RFC 3463 enhanced code. Replies wait in the buffer (pipelining): readLine
// flushes before it waits for input, and 354, 334 and 421 go out at once.
func (c *conn) reply(code int, enhanced, text string) {
	for {
		line, rest, more := strings.Cut(text, "\n")
		var b [4]byte
		c.bw.Write(strconv.AppendInt(b[:0], int64(code), 10))
		if more {
			c.bw.WriteByte('-')
		} else {
			c.bw.WriteByte(' ')
		}
		if enhanced != "" {
			c.bw.WriteString(enhanced)
			c.bw.WriteByte(' ')
		}
		c.bw.WriteString(line)
		c.bw.WriteString("\r\n")
		if !more {
			break
		}
		text = rest
	}
	if code == 354 || code == 334 || code == 421 || code == 221 {
		c.flush()
	}
}

// flushIfBlocking flushes the pending replies unless a whole command line
// is already buffered (RFC 2920 §3.2: answer a pipelined group at once, and
// never wait for input while replies are unsent).
func (c *conn) flushIfBlocking() {
	if buf, _ := c.br.Peek(c.br.Buffered()); bytes.IndexByte(buf, '\n') < 0 {
		c.flush()
	}
}

func (c *conn) flush() {
	if c.bw.Buffered() == 0 {
		return
	}
	c.nc.SetWriteDeadline(time.Now().Add(c.l.opts.Timeout))
	c.bw.Flush()
}

// refuse replies to a command that was refused for its syntax or order;
// too many of those end the session.
func (c *conn) refuse(code int, enhanced, text string) {
	c.badCommands++
	c.reply(code, enhanced, text)
}

func (c *conn) resetTransaction() {
	c.abortTransaction()
	c.mailGiven = false
	c.env = queue.Envelope{}
}

// enterTransfer switches the reader to per-read idle deadlines for a
// DATA or BDAT transfer; leaveTransfer back to command mode.
func (c *conn) enterTransfer(end time.Time) {
	c.rd.idle = c.l.opts.Timeout
	c.rd.transferEnd = end
}

func (c *conn) leaveTransfer() { c.rd.idle = 0 }

var _ io.Reader = (*deadlineReader)(nil)

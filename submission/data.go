package submission

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"mailq/intake"
	"mailq/intake/arrival"
	"mailq/metrics"
	"mailq/queue"
)

// outcome is the reply to a message transfer; fatal means the stream from
// the client can no longer be trusted (a read failed or timed out), so the
// session ends instead of reading what follows as commands.
type outcome struct {
	code     int
	enhanced string
	text     string
	fatal    error
}

func (c *conn) cmdData(arg string) bool {
	switch {
	case arg != "":
		c.refuse(501, "5.5.4", "DATA takes no arguments")
		return true
	case !c.mailGiven:
		c.refuse(503, "5.5.1", "Send MAIL first")
		return true
	case c.bdat != nil:
		c.refuse(503, "5.5.1", "DATA is not allowed after BDAT")
		return true
	case len(c.env.Recipients) == 0:
		c.refuse(554, "5.5.1", "No valid recipients")
		return true
	}
	c.reply(354, "", "End data with <CR><LF>.<CR><LF>")
	c.enterTransfer(time.Now().Add(c.l.opts.TransferTimeout))
	defer c.leaveTransfer()
	dr := newDotReader(c.br)
	out := c.deliver(dr)
	if out.fatal == nil && !dr.eof {
		out.fatal = dr.drain()
	}
	return c.finish(out)
}

// finish sends a transfer's reply, or ends the session after a failed read
// (issue 10 item 1: what follows a broken transfer is never a command).
func (c *conn) finish(out outcome) bool {
	c.resetTransaction()
	if out.fatal != nil {
		c.l.opts.Logger.Info().Err(out.fatal).Str("session", c.id).Str("remote", c.ip).Msg("submission: reading the message failed; nothing was queued, closing the connection")
		var ne net.Error
		if errors.As(out.fatal, &ne) && ne.Timeout() {
			c.reply(421, "4.4.2", c.l.opts.Hostname+" Timeout reading the message; it was not queued, closing connection")
		}
		return false
	}
	c.reply(out.code, out.enhanced, out.text)
	return true
}

// deliver validates the envelope and stores the message read from body.
func (c *conn) deliver(body io.Reader) outcome {
	env := c.env
	env.Recipients = append([]queue.RecipientSpec(nil), c.env.Recipients...)
	if err := intake.ValidateEnvelope(&env); err != nil {
		return envelopeOutcome(err)
	}
	c.txn++
	with := "ESMTP"
	if c.tls {
		with += "S"
	}
	if c.authUser != "" {
		with += "A" // RFC 3848
	}
	if env.SMTPUTF8 {
		with = "UTF8" + strings.TrimPrefix(with, "E") // RFC 6531 §3.7.4: UTF8SMTP, UTF8SMTPS, UTF8SMTPA, UTF8SMTPSA
	}
	from := fmt.Sprintf("%s ([%s])", c.helo, c.ip)
	received := intake.Received(from, c.l.opts.Hostname, with, fmt.Sprintf("%s.%d", c.id, c.txn), c.l.opts.Now())
	limits := intake.Limits{MaxMessageSize: c.l.opts.MaxMessageSize, MaxRecipients: c.l.opts.MaxRecipients}
	src := &errTracker{r: limits.Body(body)}
	msg := arrival.NewReader(io.MultiReader(strings.NewReader(received), src))
	id, err := c.l.opts.Store.Enqueue(env, msg)
	if err != nil {
		if src.err != nil {
			return readOutcome(src.err)
		}
		c.l.opts.Logger.Error().Err(err).Str("session", c.id).Msg("submission: the queue cannot take the message; replied 452")
		return outcome{code: 452, enhanced: "4.3.1", text: "Cannot store the message now; it was not queued, try again later"}
	}
	enqueuedSMTP.Inc()
	arrival.Log(c.l.opts.Logger,
		arrival.Record{ID: id, Env: env, Client: c.ip, User: c.authUser, Body: msg, Session: c.id})
	return outcome{code: 250, enhanced: "2.0.0", text: "Ok: queued as " + string(id)}
}

// enqueuedSMTP is mailq_enqueued_total{source="smtp"}, looked up once.
var enqueuedSMTP = metrics.Enqueued.WithLabelValues("smtp")

// readOutcome maps a body read error: limits the client broke get their
// reply and the session goes on (the rest of the data is read and
// dropped); anything else ends the session.
func readOutcome(err error) outcome {
	switch {
	case errors.Is(err, intake.ErrTooLarge):
		return outcome{code: 552, enhanced: "5.3.4", text: "Message exceeds the maximum message size; it was not queued"}
	case errors.Is(err, intake.ErrLineTooLong):
		return outcome{code: 554, enhanced: "5.6.0", text: "Message has a line longer than 2000 octets (RFC 5321 4.5.3.1.6 allows 1000); it was not queued"}
	case errors.Is(err, intake.ErrHeaderTooLarge):
		return outcome{code: 554, enhanced: "5.6.0", text: "Message header is too large; it was not queued"}
	case errors.Is(err, intake.ErrEmptyMessage):
		return outcome{code: 554, enhanced: "5.6.0", text: "Message is empty; it was not queued"}
	}
	return outcome{fatal: err}
}

func envelopeOutcome(err error) outcome {
	var ae *intake.AddressError
	if errors.As(err, &ae) {
		code := "5.1.3"
		if ae.Sender {
			code = "5.1.7"
		}
		return outcome{code: 553, enhanced: code, text: "Bad address: " + ae.Reason}
	}
	if errors.Is(err, intake.ErrNoRecipients) {
		return outcome{code: 554, enhanced: "5.5.1", text: "No valid recipients"}
	}
	return outcome{code: 501, enhanced: "5.5.4", text: err.Error()}
}

// errTracker remembers the first read error other than io.EOF, so a failed
// Enqueue can be told apart: the client's fault or the store's.
type errTracker struct {
	r   io.Reader
	err error
}

func (t *errTracker) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF && t.err == nil {
		t.err = err
	}
	return n, err
}

// bdatTransfer is a CHUNKING (RFC 3030) message in progress: the chunks
// flow through a pipe into an Enqueue running in its own goroutine.
type bdatTransfer struct {
	pw     *io.PipeWriter
	result chan outcome
	size   int64
	end    time.Time
	failed *outcome // the store gave up early; later chunks are dropped
}

var errBDATAborted = errors.New("submission: BDAT transfer aborted")

func (c *conn) cmdBdat(arg string) bool {
	fields := strings.Fields(arg)
	last := len(fields) == 2 && strings.EqualFold(fields[1], "LAST")
	var size int64 = -1
	if len(fields) >= 1 && len(fields) <= 2 && (len(fields) == 1 || last) {
		if n, err := strconv.ParseInt(fields[0], 10, 64); err == nil && n >= 0 {
			size = n
		}
	}
	if size < 0 {
		// Without a size the chunk cannot be skipped: the stream is lost.
		c.reply(501, "5.5.4", "Syntax: BDAT <size> [LAST]; closing connection")
		return false
	}
	// The chunk follows the command whatever we answer (RFC 3030 §2):
	// read it even when it is refused.
	var refusal *outcome
	switch {
	case !c.mailGiven:
		refusal = &outcome{code: 503, enhanced: "5.5.1", text: "Send MAIL first"}
	case len(c.env.Recipients) == 0:
		refusal = &outcome{code: 554, enhanced: "5.5.1", text: "No valid recipients"}
	}
	if refusal != nil {
		c.badCommands++
		c.enterTransfer(time.Now().Add(c.l.opts.TransferTimeout))
		_, err := io.CopyN(io.Discard, c.br, size)
		c.leaveTransfer()
		if err != nil {
			return c.finish(outcome{fatal: err})
		}
		c.reply(refusal.code, refusal.enhanced, refusal.text)
		return true
	}
	if c.bdat == nil {
		pr, pw := io.Pipe()
		c.bdat = &bdatTransfer{pw: pw, result: make(chan outcome, 1), end: time.Now().Add(c.l.opts.TransferTimeout)}
		go func(result chan<- outcome) {
			out := c.deliver(pr)
			pr.CloseWithError(errBDATAborted) // unblock a writer the store stopped reading
			result <- out
		}(c.bdat.result)
	}
	t := c.bdat
	c.enterTransfer(t.end)
	defer c.leaveTransfer()
	if t.size+size > c.l.opts.MaxMessageSize {
		t.pw.CloseWithError(intake.ErrTooLarge)
		<-t.result
		c.bdat = nil
		if _, err := io.CopyN(io.Discard, c.br, size); err != nil {
			return c.finish(outcome{fatal: err})
		}
		return c.finish(readOutcome(intake.ErrTooLarge))
	}
	t.size += size
	chunk := &countingReader{r: io.LimitReader(c.br, size)}
	if _, err := io.Copy(t.pw, chunk); err != nil || chunk.err != nil {
		if chunk.err == nil { // the store stopped reading: drop the rest of the chunk
			var dropped int64
			dropped, chunk.err = io.CopyN(io.Discard, c.br, size-chunk.n)
			chunk.n += dropped
		}
		if chunk.err != nil {
			t.pw.CloseWithError(chunk.err)
			<-t.result
			c.bdat = nil
			return c.finish(outcome{fatal: chunk.err})
		}
	}
	if chunk.n < size {
		t.pw.CloseWithError(io.ErrUnexpectedEOF)
		<-t.result
		c.bdat = nil
		return c.finish(outcome{fatal: io.ErrUnexpectedEOF})
	}
	if !last {
		select {
		case out := <-t.result: // the store gave up early
			c.bdat = nil
			return c.finish(out)
		default:
		}
		c.reply(250, "2.0.0", fmt.Sprintf("%d octets received", size))
		return true
	}
	t.pw.Close()
	out := <-t.result
	c.bdat = nil
	return c.finish(out)
}

// countingReader counts the bytes read and keeps the read error.
type countingReader struct {
	r   io.Reader
	n   int64
	err error
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}

// abortTransaction stops a BDAT transfer in progress (RSET, EHLO, end of
// session): its Enqueue sees a read error and stores nothing.
func (c *conn) abortTransaction() {
	if c.bdat == nil {
		return
	}
	c.bdat.pw.CloseWithError(errBDATAborted)
	<-c.bdat.result
	c.bdat = nil
}

package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"

	"mailq/intake"
)

// maxHeaderBytes bounds the header sendmail parses in memory; the body is
// streamed.
const maxHeaderBytes = 1 << 20

// submission is a message read from sendmail's standard input: its parsed
// header and the rest, still to be streamed.
type submission struct {
	header mail.Header
	body   io.Reader
}

// readMessage reads the header of a message from r (lines normalised to
// CRLF; a lone "." ends the input when dotEnds) and leaves the body unread.
// A first line that is not a header field starts the body: the message then
// has no header of its own.
func readMessage(r io.Reader, dotEnds bool) (*submission, error) {
	br := bufio.NewReaderSize(&lineReader{br: bufio.NewReaderSize(r, 64<<10), dotEnds: dotEnds, atLineStart: true}, 64<<10)
	var raw bytes.Buffer
	var first []byte // the line that ended the header, when it belongs to the body
	for {
		line, err := br.ReadBytes('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("reading the message: %w", err)
		}
		if len(line) == 0 {
			break
		}
		if string(line) == "\r\n" {
			break
		}
		if !isHeaderLine(line, raw.Len() > 0) {
			first = line
			break
		}
		if raw.Len()+len(line) > maxHeaderBytes {
			return nil, fmt.Errorf("the message header is larger than %d bytes", maxHeaderBytes)
		}
		raw.Write(line)
		if errors.Is(err, io.EOF) {
			break
		}
	}
	raw.WriteString("\r\n")
	th, err := textproto.ReadHeader(bufio.NewReader(&raw))
	if err != nil {
		return nil, fmt.Errorf("cannot parse the message header: %w", err)
	}
	return &submission{
		header: mail.Header{Header: message.Header{Header: th}},
		body:   io.MultiReader(bytes.NewReader(first), br),
	}, nil
}

// isHeaderLine reports whether line is a header field (RFC 5322 §2.2: a
// name of printable ASCII but ':' followed by ':') or, after a field, its
// folded continuation.
func isHeaderLine(line []byte, continued bool) bool {
	if continued && (line[0] == ' ' || line[0] == '\t') {
		return true
	}
	for i, c := range line {
		if c == ':' {
			return i > 0
		}
		if c < 33 || c > 126 {
			return false
		}
	}
	return false
}

// complete makes the header what sendmail always sends (RFC 5322 §3.6):
// Bcc removed (§3.6.3: blind recipients stay blind), Date, Message-ID and
// From added when missing.
func (s *submission) complete(fullName, from, hostname string, now time.Time) error {
	intake.StripBcc(&s.header)
	if !s.header.Has("Date") {
		s.header.SetDate(now)
	}
	if !s.header.Has("Message-Id") {
		if err := s.header.GenerateMessageIDWithHostname(hostname); err != nil {
			return fmt.Errorf("generating a Message-ID: %w", err)
		}
	}
	if !s.header.Has("From") {
		s.header.SetAddressList("From", []*mail.Address{{Name: fullName, Address: from}})
	}
	return nil
}

// reader is the whole message: the header as completed, a blank line, the body.
func (s *submission) reader() io.Reader {
	var hdr bytes.Buffer
	textproto.WriteHeader(&hdr, s.header.Header.Header)
	return io.MultiReader(&hdr, s.body)
}

// lineReader normalises line ends to CRLF and, when dotEnds, stops at a
// line holding only "." (sendmail without -i).
type lineReader struct {
	br          *bufio.Reader
	dotEnds     bool
	atLineStart bool
	pending     []byte
	done        bool
}

func (l *lineReader) Read(p []byte) (int, error) {
	for len(l.pending) == 0 {
		if l.done {
			return 0, io.EOF
		}
		chunk, err := l.br.ReadSlice('\n')
		switch {
		case err == nil:
			content := bytes.TrimSuffix(chunk[:len(chunk)-1], []byte("\r"))
			if l.atLineStart && l.dotEnds && string(content) == "." {
				l.done = true
				continue
			}
			l.pending = append(append(l.pending[:0], content...), '\r', '\n')
			l.atLineStart = true
		case errors.Is(err, bufio.ErrBufferFull):
			// A very long line: pass it through in pieces. A CR at the end
			// of the piece may start a CRLF; keep it for the next piece.
			if chunk[len(chunk)-1] == '\r' {
				l.br.UnreadByte()
				chunk = chunk[:len(chunk)-1]
			}
			l.pending = append(l.pending[:0], chunk...)
			l.atLineStart = false
		case errors.Is(err, io.EOF):
			l.done = true
			if len(chunk) == 0 || (l.atLineStart && l.dotEnds && string(chunk) == ".") {
				continue
			}
			l.pending = append(append(l.pending[:0], bytes.TrimSuffix(chunk, []byte("\r"))...), '\r', '\n')
		default:
			return 0, err
		}
	}
	n := copy(p, l.pending)
	l.pending = l.pending[n:]
	return n, nil
}

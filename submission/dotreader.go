package submission

import (
	"bufio"
	"bytes"
	"io"
)

// dotReader reads a DATA body (RFC 5321 §4.5.2) up to the lone "." line,
// removing the leading dot of dot-stuffed lines and nothing else: bare CR,
// bare LF and a "." followed by anything but CRLF stay as sent. It works a
// line (or a buffer) at a time on the connection's bufio.Reader instead of
// a byte at a time.
type dotReader struct {
	r         *bufio.Reader
	rest      []byte // the unread part of the current piece (inside r's buffer)
	lineStart bool   // the next byte begins a line (the data start, or after CRLF)
	prevCR    bool   // the last piece ended in CR (a CRLF split by a full buffer)
	eof       bool   // the end-of-data line was read
	err       error  // sticky read error
}

func newDotReader(r *bufio.Reader) *dotReader {
	return &dotReader{r: r, lineStart: true}
}

func (d *dotReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(d.rest) == 0 {
			if d.eof || d.err != nil || n > 0 && d.r.Buffered() == 0 {
				break // never block while holding bytes for the caller
			}
			d.next()
			continue
		}
		k := copy(p[n:], d.rest)
		d.rest = d.rest[k:]
		n += k
	}
	if n > 0 {
		return n, nil
	}
	if d.eof {
		return 0, io.EOF
	}
	return 0, d.err
}

// next reads the next piece of a line into d.rest.
func (d *dotReader) next() {
	if d.nextLines() {
		return
	}
	frag, err := d.r.ReadSlice('\n')
	if err != nil && err != bufio.ErrBufferFull {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		d.err = err
		return // a partial line is never part of the message
	}
	if d.lineStart && len(frag) > 0 && frag[0] == '.' {
		if len(frag) == 3 && frag[1] == '\r' && frag[2] == '\n' {
			d.eof = true
			return
		}
		frag = frag[1:]
	}
	if err == nil { // frag ends in LF
		cr := d.prevCR
		if len(frag) >= 2 {
			cr = frag[len(frag)-2] == '\r'
		}
		d.lineStart, d.prevCR = cr, false
	} else {
		d.lineStart, d.prevCR = false, len(frag) > 0 && frag[len(frag)-1] == '\r'
	}
	d.rest = frag
}

// crlfDot is the only place inside the data where a byte is removed or
// the data ends: a line that starts with a dot.
var crlfDot = []byte("\r\n.")

// nextLines is next's fast path for what is already buffered: the whole
// lines up to the last CRLF, or up to the first line that starts with a
// dot, pass as one piece, found with one search instead of a ReadSlice per
// line (a 100 KiB body is ~1,300 lines). It reports false, having consumed
// nothing, when it cannot decide alone: nothing buffered, a CR of the last
// piece waiting for its LF, or a dot at the start of the next line.
func (d *dotReader) nextLines() bool {
	n := d.r.Buffered()
	if n == 0 || d.prevCR {
		return false
	}
	buf, _ := d.r.Peek(n)
	if d.lineStart && buf[0] == '.' {
		return false
	}
	end := bytes.Index(buf, crlfDot)
	if end < 0 {
		end = bytes.LastIndex(buf, crlfDot[:2])
	}
	if end < 0 {
		return false
	}
	d.rest = buf[:end+2] // ends in CRLF: the next byte starts a line
	d.r.Discard(end + 2)
	d.lineStart = true
	return true
}

// drain reads and drops the rest of the data (after a refused message, so
// the session can go on). It returns the read error that stops it early.
func (d *dotReader) drain() error {
	d.rest = nil
	for !d.eof && d.err == nil {
		d.next()
		d.rest = nil
	}
	if d.eof {
		return nil
	}
	return d.err
}

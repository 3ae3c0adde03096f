package intake

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"mailq/queue"
)

// The errors a Limits check returns (wrapped with the limit that was
// exceeded). Each intake path turns them into its own kind of refusal:
// an SMTP reply, an HTTP status for mailqctl and sendmail, a .error file.
var (
	ErrTooLarge          = errors.New("message exceeds the maximum message size")
	ErrTooManyRecipients = errors.New("too many recipients")
	ErrHeaderTooLarge    = errors.New("the message header is too large")
	ErrLineTooLong       = errors.New("the message has a line that is too long")
	ErrEmptyMessage      = errors.New("the message is empty")
)

// Defaults of Limits.
const (
	DefaultMaxRecipients = 1000
	// DefaultMaxHeaderSize bounds the header section (up to the first empty
	// line); delivery and bounces read it whole.
	DefaultMaxHeaderSize = 1 << 20
	// DefaultMaxLineLength is twice RFC 5321 §4.5.3.1.6's 1000 octets
	// (CRLF included), for sloppy writers.
	DefaultMaxLineLength = 2000
)

// Limits is the one set of intake limits every path applies: SMTP,
// mailqctl enqueue, sendmail and the maildrop (issue 10 item 7).
// Zero fields take the defaults; MaxMessageSize <= 0 means no size limit.
type Limits struct {
	MaxMessageSize int64
	MaxRecipients  int
	MaxHeaderSize  int64
	MaxLineLength  int
}

func (l Limits) withDefaults() Limits {
	if l.MaxRecipients <= 0 {
		l.MaxRecipients = DefaultMaxRecipients
	}
	if l.MaxHeaderSize <= 0 {
		l.MaxHeaderSize = DefaultMaxHeaderSize
	}
	if l.MaxLineLength <= 0 {
		l.MaxLineLength = DefaultMaxLineLength
	}
	return l
}

// CheckEnvelope refuses an envelope with more recipients than the limit.
func (l Limits) CheckEnvelope(env *queue.Envelope) error {
	l = l.withDefaults()
	if n := len(env.Recipients); n > l.MaxRecipients {
		return fmt.Errorf("%w: %d, at most %d per message", ErrTooManyRecipients, n, l.MaxRecipients)
	}
	return nil
}

// Body returns a reader that yields r's bytes while they keep within the
// limits; otherwise it returns an error wrapping one of the Err* above (never
// io.EOF, so a cut message is never mistaken for a whole one).
func (l Limits) Body(r io.Reader) io.Reader {
	return &checkedBody{r: r, l: l.withDefaults(), inHeader: true}
}

// LimitBody returns a reader that yields r's bytes while at most max have
// been read; reading past max returns an error wrapping ErrTooLarge.
// max <= 0 means no limit.
func LimitBody(r io.Reader, max int64) io.Reader {
	return &checkedBody{r: r, l: Limits{MaxMessageSize: max}, sizeOnly: true}
}

type checkedBody struct {
	r        io.Reader
	l        Limits
	sizeOnly bool
	read     int64
	line     int   // bytes of the current line so far
	header   int64 // bytes of the header section so far
	inHeader bool
	prev     byte
	err      error
}

func (b *checkedBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	max := b.l.MaxMessageSize
	// Allow one byte beyond max so we can tell "exactly max" from "more".
	if room := max + 1 - b.read; max > 0 && int64(len(p)) > room {
		p = p[:room]
	}
	n, err := b.r.Read(p)
	b.read += int64(n)
	if max > 0 && b.read > max {
		b.err = fmt.Errorf("%w (limit %d bytes)", ErrTooLarge, max)
		return n - int(b.read-max), b.err
	}
	if !b.sizeOnly {
		if i, lerr := b.scan(p[:n]); lerr != nil {
			b.err = lerr
			return i, lerr
		}
		if err == io.EOF && b.read == 0 {
			b.err = ErrEmptyMessage
			return 0, b.err
		}
	}
	return n, err
}

// scan checks line lengths and the header size; on a violation it returns
// how many bytes of p were fine. The header goes byte by byte (it is small
// and its end is an empty line); the body a line at a time, since a 100 KiB
// message is mostly body and bytes.IndexByte finds line ends far faster.
func (b *checkedBody) scan(p []byte) (int, error) {
	i := 0
	for ; i < len(p) && b.inHeader; i++ {
		c := p[i]
		b.line++
		b.header++
		if b.line > b.l.MaxLineLength {
			return i, b.lineTooLong()
		}
		if b.header > b.l.MaxHeaderSize {
			return i, fmt.Errorf("%w (limit %d bytes)", ErrHeaderTooLarge, b.l.MaxHeaderSize)
		}
		if c == '\n' {
			// An empty line (LF or CRLF alone) ends the header section.
			if b.line == 1 || b.line == 2 && b.prev == '\r' {
				b.inHeader = false
			}
			b.line = 0
		}
		b.prev = c
	}
	for i < len(p) {
		rest := p[i:]
		end := bytes.IndexByte(rest, '\n') // the line's last byte, or -1
		n := end + 1
		if end < 0 {
			n = len(rest)
		}
		if b.line+n > b.l.MaxLineLength {
			// The first byte past the limit is the one that fails.
			return i + b.l.MaxLineLength - b.line, b.lineTooLong()
		}
		b.line += n
		if end >= 0 {
			b.line = 0
		}
		i += n
	}
	if len(p) > 0 {
		b.prev = p[len(p)-1]
	}
	return len(p), nil
}

func (b *checkedBody) lineTooLong() error {
	return fmt.Errorf("%w (limit %d octets including CRLF)", ErrLineTooLong, b.l.MaxLineLength)
}

// Package arrival is the record of a message just stored, by any intake
// path: its size and Message-ID, taken as it streams to the store, and the
// one log line that starts the message's story.
package arrival

import (
	"io"

	"github.com/rs/zerolog"

	"mailq/esmtp"
	"mailq/queue"
)

// maxHeader bounds how much of a message's header Reader
// keeps to find its Message-ID.
const maxHeader = 64 << 10

// Reader passes a message through to the store while counting its
// bytes and keeping the start of its header, so that the arrival can be
// logged with its size and Message-ID without reading the message twice.
type Reader struct {
	r    io.Reader
	n    int64
	head []byte
	done bool // the header's end was seen, or the bound reached
	// lineLen counts the bytes other than CR since the last LF.
	lineLen int
}

// NewReader wraps the whole message as it is stored (trace header
// included).
func NewReader(r io.Reader) *Reader { return &Reader{r: r} }

func (a *Reader) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	a.n += int64(n)
	if !a.done && n > 0 {
		// Keep the header only: up to its empty line (RFC 5322 §2.1),
		// found byte by byte so a line end split between reads counts.
		keep := min(n, maxHeader-len(a.head))
	scan:
		for i, c := range p[:keep] {
			switch {
			case c == '\n' && a.lineLen == 0:
				keep, a.done = i+1, true
				break scan
			case c == '\n':
				a.lineLen = 0
			case c != '\r':
				a.lineLen++
			}
		}
		a.head = append(a.head, p[:keep]...)
		if len(a.head) >= maxHeader {
			a.done = true
		}
	}
	return n, err
}

// Size is the number of bytes read so far: the stored size once the store
// has taken the message.
func (a *Reader) Size() int64 { return a.n }

// MessageID is the message's Message-ID field as written, "" when it has
// none.
func (a *Reader) MessageID() string {
	head := a.head
	if len(head) > 0 && head[len(head)-1] != '\n' {
		head = append(head[:len(head):len(head)], '\n') // a message that ends inside its header
	}
	return esmtp.HeaderField(head, "Message-ID")
}

// Record is what the arrival log line says about a message just stored.
type Record struct {
	ID     queue.ID
	Env    queue.Envelope // Source is the intake path: smtp, control, sendmail, maildrop
	Client string         // remote address, "uid N" for the control socket, the maildrop file
	User   string         // the authenticated SMTP user or the local user; "" when none
	// Session is the SMTP session's id, "" for the other intake paths.
	Session string
	Body    *Reader
}

// Log writes the info line that starts a message's story in the log
// (docs: every line about one message carries its queue_id).
func Log(log zerolog.Logger, a Record) {
	e := log.Info()
	if !e.Enabled() {
		return // nothing to log: spare the Message-ID lookup
	}
	if a.Session != "" {
		e = e.Str("session", a.Session)
	}
	e.Str("queue_id", string(a.ID)).Str("source", a.Env.Source).Str("client", a.Client).
		Str("user", a.User).Str("sender", a.Env.Sender).Int64("size", a.Body.Size()).
		Int("recipients", len(a.Env.Recipients)).Str("message_id", a.Body.MessageID()).Msg("arrived")
}

package intake

import (
	"errors"
	"fmt"
	"io"
)

// ErrTooLarge is wrapped by the error LimitBody's reader returns when a
// message exceeds the size limit; submission maps it to 552 5.3.4.
var ErrTooLarge = errors.New("message exceeds the maximum message size")

// LimitBody returns a reader that yields r's bytes while at most max have
// been read; reading past max returns an error wrapping ErrTooLarge (not
// io.EOF, so a truncated message is never mistaken for a whole one).
// max <= 0 means no limit.
func LimitBody(r io.Reader, max int64) io.Reader {
	if max <= 0 {
		return r
	}
	return &limitedBody{r: r, max: max}
}

type limitedBody struct {
	r    io.Reader
	max  int64
	read int64
}

func (l *limitedBody) Read(p []byte) (int, error) {
	if l.read > l.max {
		return 0, l.err()
	}
	// Allow one byte beyond max so we can tell "exactly max" from "more".
	if room := l.max + 1 - l.read; int64(len(p)) > room {
		p = p[:room]
	}
	n, err := l.r.Read(p)
	l.read += int64(n)
	if l.read > l.max {
		return n - int(l.read-l.max), l.err()
	}
	return n, err
}

func (l *limitedBody) err() error {
	return fmt.Errorf("%w (limit %d bytes)", ErrTooLarge, l.max)
}

package server

import (
	"bufio"
	"io"
	"strings"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"

	"mailq/queue"
)

// summaryFields are the header fields show prints.
var summaryFields = []string{"From", "To", "Cc", "Subject", "Date", "Message-ID"}

const (
	maxSummaryHeader = 256 << 10 // read no more of a body than this for the summary
	maxSummaryValue  = 200       // characters kept of each field
)

// headerSummary returns the summary fields of a stored message. It is best
// effort: a body that cannot be read or parsed gives no summary, since show
// must still work for it.
func (s *Server) headerSummary(id queue.ID) map[string]string {
	body, err := s.opts.Store.Body(id)
	if err != nil {
		return nil
	}
	defer body.Close()
	th, err := textproto.ReadHeader(bufio.NewReader(io.LimitReader(body, maxSummaryHeader)))
	if err != nil {
		return nil
	}
	h := mail.Header{Header: message.Header{Header: th}}
	out := map[string]string{}
	for _, k := range summaryFields {
		v := h.Get(k)
		if k == "Subject" {
			if dec, err := h.Text(k); err == nil {
				v = dec
			}
		}
		if v = truncate(oneLine(v), maxSummaryValue); v != "" {
			out[k] = v
		}
	}
	return out
}

// hasMessageID reports whether the stored message's Message-ID field is
// want (angle brackets optional on either side).
func (s *Server) hasMessageID(id queue.ID, want string) bool {
	body, err := s.opts.Store.Body(id)
	if err != nil {
		return false
	}
	defer body.Close()
	th, err := textproto.ReadHeader(bufio.NewReader(io.LimitReader(body, maxSummaryHeader)))
	if err != nil {
		return false
	}
	trim := func(v string) string { return strings.Trim(strings.TrimSpace(v), "<>") }
	return trim(th.Get("Message-Id")) == trim(want)
}

// truncate shortens s to at most n runes, marking the cut with "…".
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

package esmtp

// HeaderScan is an io.Writer that watches a message as it streams by and
// notes whether its header section (RFC 5322 §2.1: up to the first empty
// line) has a byte >= 0x80. Such a header is RFC 6532 UTF-8, and the message
// can only travel with SMTPUTF8 (RFC 6531 §3.4), whatever its addresses.
// 8-bit bytes in the body alone need only 8BITMIME. The zero value is ready.
type HeaderScan struct {
	done     bool // the empty line was seen
	nonASCII bool
	lineLen  int // bytes other than CR since the last LF
}

// Write never fails and always consumes p.
func (h *HeaderScan) Write(p []byte) (int, error) {
	for _, c := range p {
		if h.done || h.nonASCII {
			break
		}
		switch {
		case c >= 0x80:
			h.nonASCII = true
		case c == '\n':
			if h.lineLen == 0 {
				h.done = true
			}
			h.lineLen = 0
		case c != '\r':
			h.lineLen++
		}
	}
	return len(p), nil
}

// NonASCII reports an 8-bit byte in the header section seen so far.
func (h *HeaderScan) NonASCII() bool { return h.nonASCII }

package esmtp

import "bytes"

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

// HeaderField returns the value of the first field called name (any case)
// in the header section that starts msg (RFC 5322 §2.2), unfolded (§2.2.3)
// and with surrounding white space trimmed; "" when there is none. It reads
// only complete lines, so the first chunk of a message, cut anywhere, still
// yields its complete fields; and it allocates only the returned string.
func HeaderField(msg []byte, name string) string {
	for {
		line, rest, complete := cutLine(msg)
		if !complete || len(line) == 0 {
			return "" // end of the chunk, or the empty line that ends the header
		}
		msg = rest
		colon := bytes.IndexByte(line, ':')
		if line[0] == ' ' || line[0] == '\t' || colon <= 0 ||
			!bytes.EqualFold(bytes.TrimRight(line[:colon], " \t"), []byte(name)) {
			continue // another field, or a continuation line of one
		}
		value := line[colon+1:]
		if len(msg) == 0 || msg[0] != ' ' && msg[0] != '\t' {
			return string(bytes.TrimSpace(value)) // the common case: one line
		}
		unfolded := append([]byte(nil), value...)
		for len(msg) > 0 && (msg[0] == ' ' || msg[0] == '\t') {
			if line, msg, complete = cutLine(msg); !complete {
				break
			}
			unfolded = append(unfolded, line...)
		}
		return string(bytes.TrimSpace(unfolded))
	}
}

// cutLine splits off the first line of p without its CRLF (or bare LF);
// complete is false when p has no line end.
func cutLine(p []byte) (line, rest []byte, complete bool) {
	i := bytes.IndexByte(p, '\n')
	if i < 0 {
		return p, nil, false
	}
	return bytes.TrimSuffix(p[:i], []byte("\r")), p[i+1:], true
}

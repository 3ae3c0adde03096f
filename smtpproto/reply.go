package smtpproto

// This file parses server replies (RFC 5321 §4.2) and EHLO extension lists
// (RFC 5321 §4.1.1.1), and extracts RFC 3463 enhanced status codes
// (RFC 2034 §3).

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"mailq/esmtp"
)

// Limits that keep a hostile or broken server from making the client hold
// unbounded memory for one reply.
const (
	maxReplyLineLen = 4096 // RFC 5321 §4.5.3.1.5 says 512; be lenient
	maxReplyLines   = 500
)

// errNotSMTP marks a reply line that does not start with a 3-digit code.
var errNotSMTP = errors.New("server reply is not SMTP (no 3-digit code)")

// rawReply is a reply as read: the parsed Reply plus its lines after the
// code and separator (needed for EHLO keywords and AUTH challenges).
type rawReply struct {
	Reply
	Lines []string // each line's text after "ddd-" / "ddd "
}

// readReply reads one (possibly multiline) reply. Lines end with CRLF or a
// bare LF. It returns an error for I/O failures, over-long replies and
// lines without a numeric code.
func readReply(r *bufio.Reader) (rawReply, error) {
	var rr rawReply
	for n := 0; ; n++ {
		if n >= maxReplyLines {
			return rr, fmt.Errorf("server reply has more than %d lines", maxReplyLines)
		}
		line, err := readLine(r)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return rr, err
		}
		code, text, more, err := splitReplyLine(line)
		if err != nil {
			return rr, fmt.Errorf("%w: %q", err, truncate(line, 80))
		}
		if n == 0 {
			rr.Code = code
		}
		rr.Lines = append(rr.Lines, text)
		if !more {
			break
		}
	}
	rr.Reply = esmtp.ParseReply(rr.Code, rr.Lines)
	return rr, nil
}

// readLine reads up to LF, drops the line ending, and refuses lines over
// maxReplyLineLen.
func readLine(r *bufio.Reader) (string, error) {
	var buf []byte
	for {
		chunk, err := r.ReadSlice('\n')
		buf = append(buf, chunk...)
		if len(buf) > maxReplyLineLen {
			return "", fmt.Errorf("server reply line longer than %d bytes", maxReplyLineLen)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if err == io.EOF && len(buf) > 0 {
				return "", io.ErrUnexpectedEOF
			}
			return "", err
		}
		break
	}
	s := string(buf[:len(buf)-1])
	return strings.TrimSuffix(s, "\r"), nil
}

// splitReplyLine splits "250-text" / "250 text" / "250".
func splitReplyLine(line string) (code int, text string, more bool, err error) {
	if len(line) < 3 {
		return 0, "", false, errNotSMTP
	}
	for i := 0; i < 3; i++ {
		if line[i] < '0' || line[i] > '9' {
			return 0, "", false, errNotSMTP
		}
	}
	if line[0] < '1' || line[0] > '5' {
		return 0, "", false, errNotSMTP
	}
	code, _ = strconv.Atoi(line[:3])
	if len(line) == 3 {
		return code, "", false, nil
	}
	switch line[3] {
	case '-':
		return code, line[4:], true, nil
	case ' ':
		return code, line[4:], false, nil
	}
	return 0, "", false, errNotSMTP
}

// extensions is the parsed EHLO reply.
type extensions struct {
	keywords map[string]string // upper-case keyword → parameters, verbatim
	auth     []string          // AUTH mechanisms, upper-case, AUTH and AUTH= lines merged, deduplicated
}

// parseEHLO reads the keyword lines of a 250 EHLO reply (every line after
// the first, which is the server's greeting name). Keywords are upper-cased;
// a later duplicate overwrites an earlier one. "AUTH=LOGIN PLAIN" (the
// pre-RFC 2554 form) contributes its mechanisms to the AUTH list too.
func parseEHLO(lines []string) extensions {
	ex := extensions{keywords: map[string]string{}}
	seen := map[string]bool{}
	addMech := func(m string) {
		m = strings.ToUpper(m)
		if m != "" && !seen[m] {
			seen[m] = true
			ex.auth = append(ex.auth, m)
		}
	}
	for i, l := range lines {
		if i == 0 {
			continue
		}
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		kw, params, _ := strings.Cut(l, " ")
		kw = strings.ToUpper(kw)
		ex.keywords[kw] = params
		switch {
		case kw == "AUTH":
			for _, m := range strings.Fields(params) {
				addMech(m)
			}
		case strings.HasPrefix(kw, "AUTH="):
			addMech(kw[len("AUTH="):])
			for _, m := range strings.Fields(params) {
				addMech(m)
			}
		}
	}
	return ex
}

// has reports whether the server advertised kw.
func (e extensions) has(kw string) bool {
	_, ok := e.keywords[kw]
	return ok
}

// hasAuth reports whether the server offers any AUTH mechanism (AUTH or
// the legacy AUTH= form).
func (e extensions) hasAuth() bool { return len(e.auth) > 0 }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

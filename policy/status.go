package policy

import (
	"fmt"
	"strings"

	"mailq/esmtp"
)

// EnhancedCode is a parsed RFC 3463 enhanced status code (esmtp's).
type EnhancedCode = esmtp.EnhancedCode

// ParseEnhanced parses an RFC 3463 §2 status code (esmtp.ParseEnhanced).
func ParseEnhanced(s string) (EnhancedCode, error) { return esmtp.ParseEnhanced(s) }

// StatusOf returns the RFC 3463 status for a reply: its enhanced code when it
// has a valid one, else one derived from the basic code's class ("5.0.0",
// "4.0.0", "2.0.0"). RFC 3463 §2 requires the enhanced class to match the
// basic code's class; when a server gets that wrong, the basic code wins
// (it is what decided the verdict) and only subject.detail are kept.
// A reply outside 2xx/4xx/5xx gets "4.5.0" (protocol error, will retry).
func StatusOf(r Reply) string {
	class := r.Code / 100
	if class != 2 && class != 4 && class != 5 {
		return "4.5.0"
	}
	c, err := ParseEnhanced(r.Enhanced)
	if err != nil {
		return fmt.Sprintf("%d.0.0", class)
	}
	c.Class = class
	return c.String()
}

// DiagnosticOf formats a reply for a Diagnostic-Code field (RFC 3464 §2.3.6):
// "smtp; 550 5.1.1 no such user". Multi-line text is joined with spaces and
// control characters are dropped so the result is always one header-safe line.
func DiagnosticOf(r Reply) string {
	var b strings.Builder
	fmt.Fprintf(&b, "smtp; %d", r.Code)
	if r.Enhanced != "" {
		b.WriteString(" " + oneLine(r.Enhanced))
	}
	if t := oneLine(r.Text); t != "" {
		b.WriteString(" " + t)
	}
	return b.String()
}

// oneLine turns s into a single line: line breaks and tabs become spaces,
// other control characters are dropped, runs of spaces collapse.
func oneLine(s string) string {
	var b strings.Builder
	space := false
	for _, r := range s {
		switch {
		case r == '\n' || r == '\r' || r == '\t' || r == ' ':
			space = b.Len() > 0
			continue
		case r < 0x20 || r == 0x7f:
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
	}
	return b.String()
}

package policy

import (
	"fmt"
	"strconv"
	"strings"
)

// EnhancedCode is a parsed RFC 3463 enhanced status code "class.subject.detail".
type EnhancedCode struct {
	Class, Subject, Detail int
}

// String formats the code canonically ("5.1.1", no leading zeros).
func (c EnhancedCode) String() string {
	return fmt.Sprintf("%d.%d.%d", c.Class, c.Subject, c.Detail)
}

// ParseEnhanced parses an RFC 3463 §2 status code: class is 2, 4 or 5; subject
// and detail are 1 to 3 digits each. Surrounding whitespace is not accepted.
func ParseEnhanced(s string) (EnhancedCode, error) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return EnhancedCode{}, fmt.Errorf("enhanced status code %q: want class.subject.detail (RFC 3463)", s)
	}
	var nums [3]int
	for i, p := range parts {
		if len(p) < 1 || len(p) > 3 || (i == 0 && len(p) != 1) {
			return EnhancedCode{}, fmt.Errorf("enhanced status code %q: part %d must be 1-3 digits (class 1 digit)", s, i+1)
		}
		for _, r := range p {
			if r < '0' || r > '9' {
				return EnhancedCode{}, fmt.Errorf("enhanced status code %q: part %d is not a number", s, i+1)
			}
		}
		nums[i], _ = strconv.Atoi(p) // cannot fail: 1-3 ASCII digits
	}
	if nums[0] != 2 && nums[0] != 4 && nums[0] != 5 {
		return EnhancedCode{}, fmt.Errorf("enhanced status code %q: class must be 2, 4 or 5", s)
	}
	return EnhancedCode{Class: nums[0], Subject: nums[1], Detail: nums[2]}, nil
}

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

// Package esmtp is mailq's one owner of ESMTP grammar: mailbox and DSN
// parameter syntax (RFC 5321, RFC 6531, RFC 3461), xtext, ORCPT in its one
// stored form, RFC 3463 enhanced status codes and the server reply type.
// It does no I/O; intake, smtpproto, policy, queue and delivery share it.
package esmtp

import (
	"fmt"
	"strconv"
	"strings"
)

// Reply is one server reply (RFC 5321 §4.2): the basic code, the RFC 3463
// enhanced status code lifted off the text ("" when absent), and the text
// of all lines joined with "\n", without codes.
type Reply struct {
	Code     int    `json:"code"`
	Enhanced string `json:"enhanced"`
	Text     string `json:"text"`
}

// Temporary reports a 4xx reply.
func (r Reply) Temporary() bool { return r.Code >= 400 && r.Code < 500 }

// Permanent reports a 5xx reply.
func (r Reply) Permanent() bool { return r.Code >= 500 && r.Code < 600 }

// String renders the reply as one line, e.g. "550 5.1.1 no such user"; a
// reply without code (a local diagnostic) shows only its status and text.
func (r Reply) String() string {
	var parts []string
	if r.Code != 0 {
		parts = append(parts, strconv.Itoa(r.Code))
	}
	if r.Enhanced != "" {
		parts = append(parts, r.Enhanced)
	}
	if r.Text != "" {
		parts = append(parts, strings.ReplaceAll(r.Text, "\n", " / "))
	}
	return strings.Join(parts, " ")
}

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

// EnhancedPrefix reports whether reply text starts with an enhanced status
// code (followed by a space or the end) whose class equals the basic
// code's class (RFC 3463 §2, RFC 2034 §3), and returns it as written.
func EnhancedPrefix(text string, code int) (string, bool) {
	cand, _, _ := strings.Cut(text, " ")
	c, err := ParseEnhanced(cand)
	if err != nil || c.Class != code/100 {
		return "", false
	}
	return cand, true
}

// ParseReply builds a Reply from a basic code and the text of each line
// (after "ddd-" / "ddd "). The enhanced code is lifted off the first line
// when its class matches, and removed from the following lines, as servers
// repeat it.
func ParseReply(code int, lines []string) Reply {
	rep := Reply{Code: code}
	if len(lines) > 0 {
		if enh, ok := EnhancedPrefix(lines[0], code); ok {
			rep.Enhanced = enh
		}
	}
	out := make([]string, len(lines))
	for i, l := range lines {
		if rep.Enhanced != "" && strings.HasPrefix(l, rep.Enhanced) {
			rest := l[len(rep.Enhanced):]
			if rest == "" || rest[0] == ' ' {
				l = strings.TrimPrefix(rest, " ")
			}
		}
		out[i] = l
	}
	rep.Text = strings.Join(out, "\n")
	return rep
}

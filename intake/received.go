package intake

import (
	"strings"
	"time"
)

// Received returns the RFC 5321 §4.4 trace header mailq prepends when it
// takes a message in:
//
//	Received: from FROM
//		by BY with WITH id ID;
//		Mon, 02 Jan 2006 15:04:05 -0700
//
// folded so that each line stays short (RFC 5322 §2.2.3). Empty clauses are
// left out. Control characters in the arguments (which may come from an
// untrusted EHLO) are replaced so they cannot inject header lines.
func Received(from, by, with, id string, now time.Time) string {
	var b strings.Builder
	b.WriteString("Received:")
	if from = clean(from); from != "" {
		b.WriteString(" from ")
		b.WriteString(from)
		b.WriteString("\r\n\t")
	} else {
		b.WriteString(" ")
	}
	first := true
	for _, c := range [][2]string{{"by", by}, {"with", with}, {"id", id}} {
		v := clean(c[1])
		if v == "" {
			continue
		}
		if !first {
			b.WriteByte(' ')
		}
		first = false
		b.WriteString(c[0])
		b.WriteByte(' ')
		b.WriteString(v)
	}
	b.WriteString(";\r\n\t")
	b.WriteString(now.Format(time.RFC1123Z))
	b.WriteString("\r\n")
	return b.String()
}

// clean replaces control characters with "?" and trims spaces.
func clean(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}

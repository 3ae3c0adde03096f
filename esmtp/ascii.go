package esmtp

import "strings"

// IsASCII reports whether s has no byte >= 0x80 (so needs no SMTPUTF8,
// RFC 6531).
func IsASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// PrintableASCII reports whether s is printable US-ASCII (space to "~").
func PrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// HasControl reports C0 controls, DEL and C1 controls (U+0080–U+009F).
func HasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r >= 0x80 && r <= 0x9f {
			return true
		}
	}
	return false
}

// IsAtext is RFC 5322 §3.2.3 atext (ASCII part).
func IsAtext(c byte) bool {
	return IsLetDig(c) || strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

// IsLetDig is RFC 5321 Let-dig.
func IsLetDig(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

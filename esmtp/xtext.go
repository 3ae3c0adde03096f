package esmtp

import (
	"fmt"
	"strings"
)

// EncodeXtext encodes s as RFC 3461 §4 xtext: "+" followed by two upper-case
// hex digits for "+", "=" and every byte outside "!" to "~".
func EncodeXtext(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '!' || c > '~' || c == '+' || c == '=' {
			fmt.Fprintf(&b, "+%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// DecodeXtext decodes RFC 3461 §4 xtext. A "+" must be followed by two
// upper-case hex digits, and xchar excludes "=", controls, space and
// bytes above "~".
func DecodeXtext(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '+':
			if i+2 >= len(s) || !isUpperHex(s[i+1]) || !isUpperHex(s[i+2]) {
				return "", fmt.Errorf("bad xtext %q: + must be followed by two upper-case hex digits (RFC 3461 §4)", s)
			}
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
		case c < '!' || c > '~' || c == '=':
			return "", fmt.Errorf("bad xtext %q: byte 0x%02X must be written as +%02X (RFC 3461 §4)", s, c, c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

func isUpperHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'A' && c <= 'F' }

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'A' + 10
}

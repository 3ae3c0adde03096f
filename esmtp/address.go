package esmtp

import (
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"
)

// RFC 5321 §4.5.3.1 size limits, in octets.
const (
	MaxLocalPart = 64  // §4.5.3.1.1
	MaxDomain    = 255 // §4.5.3.1.2
	MaxPath      = 256 // §4.5.3.1.3, including the angle brackets
)

// CheckMailbox checks one address against RFC 5321 §4.1.2 Mailbox syntax
// (Dot-string or Quoted-string local part; domain or address literal), the
// §4.5.3.1 length limits, and RFC 6531's UTF-8 extension. It reports
// whether the address needs SMTPUTF8, or why it is invalid ("" when valid).
func CheckMailbox(addr string) (smtputf8 bool, reason string) {
	if addr == "" {
		return false, "empty address"
	}
	switch {
	case strings.ContainsAny(addr, "\r\n"):
		return false, "contains CR or LF"
	case strings.ContainsRune(addr, 0):
		return false, "contains a NUL byte"
	case HasControl(addr):
		return false, "contains a control character"
	case !utf8.ValidString(addr):
		return false, "is not valid UTF-8"
	}
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return false, "has no @domain"
	}
	local, domain := addr[:at], addr[at+1:]
	if reason := checkLocalPart(local); reason != "" {
		return false, reason
	}
	if reason := checkDomain(domain); reason != "" {
		return false, reason
	}
	if len(addr)+2 > MaxPath {
		return false, fmt.Sprintf("is %d octets long; a path may have at most %d including <> (RFC 5321 §4.5.3.1.3)", len(addr), MaxPath)
	}
	return !IsASCII(addr), ""
}

func checkLocalPart(local string) string {
	if local == "" {
		return "empty local part"
	}
	if len(local) > MaxLocalPart {
		return fmt.Sprintf("local part is %d octets long, at most %d allowed (RFC 5321 §4.5.3.1.1)", len(local), MaxLocalPart)
	}
	if local[0] == '"' {
		return checkQuotedString(local)
	}
	// Dot-string = Atom *("." Atom)
	for _, atom := range strings.Split(local, ".") {
		if atom == "" {
			return "local part has an empty atom (leading, trailing or double dot)"
		}
		for i := 0; i < len(atom); i++ {
			if c := atom[i]; c < 0x80 && !IsAtext(c) {
				return fmt.Sprintf("local part contains %q, which needs quoting", c)
			}
		}
	}
	return ""
}

// checkQuotedString checks RFC 5321 Quoted-string: qtextSMTP is %d32-33 /
// %d35-91 / %d93-126 (plus UTF-8, RFC 6531), quoted-pairSMTP is "\" %d32-126.
func checkQuotedString(s string) string {
	if len(s) < 2 || s[len(s)-1] != '"' {
		return "quoted local part is not closed"
	}
	inner := s[1 : len(s)-1]
	for i := 0; i < len(inner); i++ {
		switch c := inner[i]; {
		case c == '\\':
			i++
			if i >= len(inner) || inner[i] < 32 || inner[i] > 126 {
				return "quoted local part has a bad backslash escape"
			}
		case c == '"':
			return "quoted local part has an unescaped quote"
		case c < 32 || c == 127:
			return "quoted local part contains a control character"
		}
	}
	return ""
}

func checkDomain(domain string) string {
	if domain == "" {
		return "empty domain"
	}
	if len(domain) > MaxDomain {
		return fmt.Sprintf("domain is %d octets long, at most %d allowed (RFC 5321 §4.5.3.1.2)", len(domain), MaxDomain)
	}
	if domain[0] == '[' {
		return checkAddressLiteral(domain)
	}
	for _, label := range strings.Split(domain, ".") {
		if label == "" {
			return "domain has an empty label"
		}
		if len(label) > 63 {
			return "domain label longer than 63 octets (RFC 1035 §2.3.4)"
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return "domain label starts or ends with a hyphen"
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if c >= 0x80 { // U-label octet (RFC 6531 §3.3)
				continue
			}
			if !(IsLetDig(c) || c == '-') {
				return fmt.Sprintf("domain contains %q", c)
			}
		}
	}
	return ""
}

// checkAddressLiteral checks RFC 5321 §4.1.3 address literals:
// [IPv4], [IPv6:addr], or a General-address-literal [tag:content].
func checkAddressLiteral(lit string) string {
	if len(lit) < 3 || lit[len(lit)-1] != ']' {
		return "address literal is not closed with ]"
	}
	inner := lit[1 : len(lit)-1]
	if v6, ok := strings.CutPrefix(inner, "IPv6:"); ok {
		if a, err := netip.ParseAddr(v6); err != nil || !a.Is6() || a.Zone() != "" {
			return "bad IPv6 address literal"
		}
		return ""
	}
	tag, content, ok := strings.Cut(inner, ":")
	if !ok {
		if a, err := netip.ParseAddr(inner); err != nil || !a.Is4() {
			return "bad IPv4 address literal"
		}
		return ""
	}
	// General-address-literal = Standardized-tag ":" 1*dcontent
	if tag == "" || content == "" || tag[len(tag)-1] == '-' {
		return "bad general address literal"
	}
	for i := 0; i < len(tag); i++ {
		if !IsLetDig(tag[i]) && tag[i] != '-' {
			return "bad address literal tag"
		}
	}
	for i := 0; i < len(content); i++ {
		if c := content[i]; c < 33 || c > 126 || c == '[' || c == '\\' || c == ']' {
			return "bad address literal content"
		}
	}
	return ""
}

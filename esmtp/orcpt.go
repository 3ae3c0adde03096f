package esmtp

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxORCPT is RFC 3461 §4.2's limit on the encoded parameter value.
const maxORCPT = 500

// ORCPT is an RFC 3461 §4.2 original recipient. mailq stores it in one
// form, String's "addr-type;address" with the address decoded (no xtext),
// e.g. "rfc822;bob+tag@example.com"; it is encoded only on the wire (Param).
type ORCPT struct {
	Type    string // "rfc822", "utf-8" (RFC 6533) or another atom, as submitted
	Address string // decoded
}

// String is the stored form.
func (o ORCPT) String() string {
	if o.Address == "" {
		return ""
	}
	return o.Type + ";" + o.Address
}

// IsUTF8 reports the RFC 6533 "utf-8" address type.
func (o ORCPT) IsUTF8() bool { return strings.EqualFold(o.Type, "utf-8") }

// Param is the value of the ORCPT= parameter on RCPT TO: the address
// xtext-encoded (RFC 3461 §4.2), or for type utf-8 in the 7-bit
// utf-8-addr-xtext form (RFC 6533 §3), which every server can take.
func (o ORCPT) Param() string {
	if o.IsUTF8() {
		return o.Type + ";" + EncodeUTF8AddrXtext(o.Address)
	}
	return o.Type + ";" + EncodeXtext(o.Address)
}

// ParseORCPT reads a stored ORCPT. A value without ";" (records from
// before the type was stored) is an rfc822 address. It does not validate;
// see Validate.
func ParseORCPT(stored string) ORCPT {
	typ, addr, ok := strings.Cut(stored, ";")
	if !ok {
		return ORCPT{Type: "rfc822", Address: stored}
	}
	return ORCPT{Type: typ, Address: addr}
}

// DecodeORCPTParam decodes a wire ORCPT= value ("rfc822;bob+2Btag@x").
func DecodeORCPTParam(v string) (ORCPT, error) {
	typ, enc, ok := strings.Cut(v, ";")
	if !ok || typ == "" || enc == "" {
		return ORCPT{}, fmt.Errorf(`ORCPT %q is not "addr-type;address"`, v)
	}
	o := ORCPT{Type: typ}
	var err error
	if o.IsUTF8() {
		o.Address, err = DecodeUTF8AddrXtext(enc)
	} else {
		o.Address, err = DecodeXtext(enc)
	}
	if err != nil {
		return ORCPT{}, fmt.Errorf("ORCPT %q: %w", v, err)
	}
	return o, o.Validate()
}

// Validate checks the type is an atom and the address fits it: printable
// US-ASCII (RFC 3461 §4.2), or for utf-8 valid UTF-8 without controls
// (RFC 6533), and the encoded value is at most 500 characters.
func (o ORCPT) Validate() error {
	if o.Type == "" || o.Address == "" {
		return fmt.Errorf(`must be "addr-type;address", e.g. "rfc822;user@example.com"`)
	}
	for i := 0; i < len(o.Type); i++ {
		if !IsAtext(o.Type[i]) {
			return fmt.Errorf("address type must be an atom")
		}
	}
	if o.IsUTF8() {
		if !utf8.ValidString(o.Address) || HasControl(o.Address) {
			return fmt.Errorf("address must be valid UTF-8 without control characters")
		}
	} else if !PrintableASCII(o.Address) {
		return fmt.Errorf("address must be printable US-ASCII")
	}
	if n := len(o.Param()); n > maxORCPT {
		return fmt.Errorf("is %d characters encoded, at most %d allowed", n, maxORCPT)
	}
	return nil
}

// EncodeUTF8AddrXtext encodes an address as RFC 6533 §3 utf-8-addr-xtext:
// QCHAR (printable ASCII but "+", "=" and "\") as is, everything else as
// "\x{HEX}" with the code point's shortest upper-case hex of two or more
// digits.
func EncodeUTF8AddrXtext(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 0x21 && r <= 0x7e && r != '+' && r != '=' && r != '\\' {
			b.WriteRune(r)
			continue
		}
		fmt.Fprintf(&b, `\x{%02X}`, r)
	}
	return b.String()
}

// DecodeUTF8AddrXtext decodes RFC 6533 utf-8-addr-xtext and
// utf-8-addr-unitext (which also allows raw UTF-8).
func DecodeUTF8AddrXtext(s string) (string, error) {
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("bad utf-8-addr-xtext %q: not UTF-8", s)
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '\\':
			rest := s[i:]
			end := strings.IndexByte(rest, '}')
			if !strings.HasPrefix(rest, `\x{`) || end < 0 {
				return "", fmt.Errorf(`bad utf-8-addr-xtext %q: "\" must start \x{HEX}`, s)
			}
			hex := rest[3:end]
			v, err := strconv.ParseUint(hex, 16, 32)
			if err != nil || len(hex) < 2 || len(hex) > 6 || hex != strings.ToUpper(hex) ||
				len(hex) != max(2, len(fmt.Sprintf("%X", v))) || !utf8.ValidRune(rune(v)) {
				return "", fmt.Errorf(`bad utf-8-addr-xtext %q: \x{%s} is not a code point in shortest upper-case hex`, s, hex)
			}
			b.WriteRune(rune(v))
			i += end + 1
			continue
		case r < 0x21 || r == 0x7f || r == '+' || r == '=':
			return "", fmt.Errorf(`bad utf-8-addr-xtext %q: %q must be written as \x{%02X}`, s, r, r)
		}
		b.WriteRune(r)
		i += n
	}
	return b.String(), nil
}

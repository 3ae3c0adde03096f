package submission

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// parsePath splits "<mailbox> params" (RFC 5321 §4.1.2 Path) and returns
// the mailbox exactly as sent: a quoted local part keeps its quotes and
// escapes, so it is validated, stored and delivered unchanged. A source
// route ("@a,@b:") is dropped (§4.1.2, RFC 5321 Appendix C). Angle
// brackets are required; "<>" is returned as "" for the caller to judge.
func parsePath(s string) (mailbox, rest string, err error) {
	if !strings.HasPrefix(s, "<") {
		return "", "", errors.New("the address must be in angle brackets, e.g. <user@example.com>")
	}
	s = s[1:]
	if strings.HasPrefix(s, "@") {
		colon := strings.IndexByte(s, ':')
		if colon < 0 {
			return "", "", errors.New("source route without ':'")
		}
		s = s[colon+1:]
	}
	inQuote := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case inQuote && c == '\\':
			i++ // quoted-pair (RFC 5321 §4.1.2)
		case c == '"':
			inQuote = !inQuote
		case !inQuote && c == '>':
			rest = s[i+1:]
			if rest != "" && rest[0] != ' ' {
				return "", "", errors.New("expected a space between the address and its parameters")
			}
			return s[:i], strings.TrimLeft(rest, " "), nil
		}
	}
	return "", "", errors.New("missing '>' after the address")
}

// param is one ESMTP parameter (RFC 5321 §4.1.2 esmtp-param).
type param struct {
	key      string // upper case
	value    string
	hasValue bool
}

// parseParams splits "KEY=value KEY2" and refuses a key given twice
// (RFC 5321 §4.1.1.11 leaves repeats undefined; RFC 3461 §4 forbids them
// for the DSN parameters).
func parseParams(s string) ([]param, error) {
	var ps []param
	seen := map[string]bool{}
	for _, f := range strings.Fields(s) {
		k, v, has := strings.Cut(f, "=")
		k = strings.ToUpper(k)
		if k == "" || has && v == "" {
			return nil, fmt.Errorf("malformed parameter %q", f)
		}
		if seen[k] {
			return nil, fmt.Errorf("duplicate %s parameter", k)
		}
		seen[k] = true
		ps = append(ps, param{key: k, value: v, hasValue: has})
	}
	return ps, nil
}

// decodeORCPT decodes an RFC 3461 §4.2 ORCPT value "addr-type;xtext" to
// "addr-type;address": xtext for rfc822, utf-8-addr-xtext or unitext
// (RFC 6533 §3) for utf-8.
func decodeORCPT(v string, decodeXtext func(string) (string, error)) (string, error) {
	typ, addr, ok := strings.Cut(v, ";")
	if !ok || typ == "" || addr == "" {
		return "", errors.New(`ORCPT must be "addr-type;address"`)
	}
	var err error
	if strings.EqualFold(typ, "utf-8") {
		addr, err = decodeUTF8AddrXtext(addr)
	} else {
		addr, err = decodeXtext(addr)
	}
	if err != nil {
		return "", err
	}
	return typ + ";" + addr, nil
}

// decodeUTF8AddrXtext replaces each \x{HEX} of RFC 6533 §3 with its
// character; other bytes (UTF-8 included) stay.
func decodeUTF8AddrXtext(s string) (string, error) {
	var b strings.Builder
	for {
		i := strings.Index(s, `\x{`)
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return "", fmt.Errorf(`unterminated \x{ in %q`, s)
		}
		r, err := strconv.ParseUint(s[i+3:i+j], 16, 21)
		if err != nil || j-3 < 2 || j-3 > 6 {
			return "", fmt.Errorf(`bad \x{HEX} in %q`, s)
		}
		b.WriteString(s[:i])
		b.WriteRune(rune(r))
		s = s[i+j+1:]
	}
}

package submission

import (
	"errors"
	"fmt"
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

// Package intake validates submitted mail and takes it in from the maildrop:
// the envelope checks every intake path shares (RFC 5321 address syntax,
// RFC 3461 DSN parameters), the Received: trace line, the maildrop file format
// and the maildrop pickup loop.
package intake

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"

	"mailq/queue"
)

// RFC 5321 §4.5.3.1 size limits, in octets.
const (
	maxLocalPart = 64  // §4.5.3.1.1
	maxDomain    = 255 // §4.5.3.1.2
	maxPath      = 256 // §4.5.3.1.3, including the angle brackets
	maxEnvID     = 100 // RFC 3461 §4.4, xtext-encoded
	maxORCPT     = 500 // RFC 3461 §4.2, xtext-encoded
)

// ErrNoRecipients is returned by ValidateEnvelope for an envelope without recipients.
var ErrNoRecipients = errors.New("intake: the message has no recipients (at least one is required)")

// AddressError says which address is invalid and why. Submission maps it to
// 553 5.1.7 (sender) or 553 5.1.3 (recipient).
type AddressError struct {
	Address string // as submitted; may contain control characters, Error quotes them
	Reason  string
	Sender  bool // the envelope sender rather than a recipient
}

func (e *AddressError) Error() string {
	role := "recipient"
	if e.Sender {
		role = "sender"
	}
	return fmt.Sprintf("invalid %s address %s: %s", role, quoteAddress(e.Address), e.Reason)
}

// ParamError is an invalid DSN parameter (RFC 3461); submission maps it to 501 5.5.4.
type ParamError struct {
	Param  string // "NOTIFY", "RET", "ENVID" or "ORCPT"
	Value  string
	Reason string
}

func (e *ParamError) Error() string {
	return fmt.Sprintf("invalid %s parameter %s: %s", e.Param, strconv.Quote(e.Value), e.Reason)
}

// quoteAddress prints an address in angle brackets, escaping anything that
// could break a log line or a reply (CR, LF, NUL, other controls).
func quoteAddress(a string) string {
	for _, r := range a {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return strconv.Quote(a)
		}
	}
	return "<" + a + ">"
}

// ValidateEnvelope checks the sender, every recipient and the DSN parameters
// of env. It normalises RET and NOTIFY to upper case and sets env.SMTPUTF8 when
// an address needs it (RFC 6531). Errors are *AddressError, *ParamError or
// ErrNoRecipients.
func ValidateEnvelope(env *queue.Envelope) error {
	if env.Sender != "" {
		utf, err := ValidateMailbox(env.Sender)
		if err != nil {
			err.(*AddressError).Sender = true
			return err
		}
		if utf {
			env.SMTPUTF8 = true
		}
	}
	if len(env.Recipients) == 0 {
		return ErrNoRecipients
	}
	for i := range env.Recipients {
		r := &env.Recipients[i]
		utf, err := ValidateMailbox(r.Address)
		if err != nil {
			return err
		}
		if utf {
			env.SMTPUTF8 = true
		}
		if r.Notify, err = NormalizeNotify(r.Notify); err != nil {
			return err
		}
		if err := ValidateORCPT(r.ORCPT); err != nil {
			return err
		}
	}
	var err error
	if env.Ret, err = NormalizeRet(env.Ret); err != nil {
		return err
	}
	return ValidateEnvID(env.EnvID)
}

// NormalizeRet checks an RFC 3461 §4.3 RET value ("" = unspecified) and
// returns it in upper case.
func NormalizeRet(ret string) (string, error) {
	switch u := strings.ToUpper(ret); u {
	case "", "FULL", "HDRS":
		return u, nil
	}
	return "", &ParamError{"RET", ret, "must be FULL or HDRS"}
}

// NormalizeNotify checks an RFC 3461 §4.1 NOTIFY value ("" = unspecified):
// NEVER alone, or a comma-separated set of SUCCESS, FAILURE, DELAY without
// repeats. It returns the value in upper case.
func NormalizeNotify(notify string) (string, error) {
	if notify == "" {
		return "", nil
	}
	u := strings.ToUpper(notify)
	seen := map[string]bool{}
	parts := strings.Split(u, ",")
	for _, p := range parts {
		switch p {
		case "NEVER":
			if len(parts) > 1 {
				return "", &ParamError{"NOTIFY", notify, "NEVER cannot be combined with other values"}
			}
		case "SUCCESS", "FAILURE", "DELAY":
			if seen[p] {
				return "", &ParamError{"NOTIFY", notify, p + " is repeated"}
			}
			seen[p] = true
		default:
			return "", &ParamError{"NOTIFY", notify, "must be NEVER or a list of SUCCESS, FAILURE, DELAY"}
		}
	}
	return u, nil
}

// ValidateEnvID checks a decoded RFC 3461 §4.4 ENVID ("" = none): printable
// ASCII, at most 100 characters once xtext-encoded.
func ValidateEnvID(envid string) error {
	if envid == "" {
		return nil
	}
	if !printableASCII(envid) {
		return &ParamError{"ENVID", envid, "must be printable US-ASCII"}
	}
	if n := len(EncodeXtext(envid)); n > maxEnvID {
		return &ParamError{"ENVID", envid, fmt.Sprintf("is %d characters xtext-encoded, at most %d allowed", n, maxEnvID)}
	}
	return nil
}

// ValidateORCPT checks a decoded RFC 3461 §4.2 ORCPT ("" = none) of the form
// "addr-type;address": an atom type, and a printable-ASCII address (UTF-8
// allowed for type utf-8, RFC 6533), at most 500 characters xtext-encoded.
func ValidateORCPT(orcpt string) error {
	if orcpt == "" {
		return nil
	}
	typ, addr, ok := strings.Cut(orcpt, ";")
	if !ok || typ == "" || addr == "" {
		return &ParamError{"ORCPT", orcpt, `must be "addr-type;address", e.g. "rfc822;user@example.com"`}
	}
	for i := 0; i < len(typ); i++ {
		if !isAtext(typ[i]) {
			return &ParamError{"ORCPT", orcpt, "address type must be an atom"}
		}
	}
	if strings.EqualFold(typ, "utf-8") {
		if !utf8.ValidString(addr) || hasControl(addr) {
			return &ParamError{"ORCPT", orcpt, "address must be valid UTF-8 without control characters"}
		}
	} else if !printableASCII(addr) {
		return &ParamError{"ORCPT", orcpt, "address must be printable US-ASCII"}
	}
	if n := len(typ) + 1 + len(EncodeXtext(addr)); n > maxORCPT {
		return &ParamError{"ORCPT", orcpt, fmt.Sprintf("is %d characters xtext-encoded, at most %d allowed", n, maxORCPT)}
	}
	return nil
}

// ValidateMailbox checks one address against RFC 5321 §4.1.2 Mailbox syntax
// (Dot-string or Quoted-string local part; domain or address literal), the
// §4.5.3.1 length limits, and RFC 6531's UTF-8 extension. It reports whether
// the address needs SMTPUTF8. The error is an *AddressError.
func ValidateMailbox(addr string) (smtputf8 bool, err error) {
	bad := func(reason string) (bool, error) { return false, &AddressError{Address: addr, Reason: reason} }
	if addr == "" {
		return bad("empty address")
	}
	switch {
	case strings.ContainsAny(addr, "\r\n"):
		return bad("contains CR or LF")
	case strings.ContainsRune(addr, 0):
		return bad("contains a NUL byte")
	case hasControl(addr):
		return bad("contains a control character")
	case !utf8.ValidString(addr):
		return bad("is not valid UTF-8")
	}
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return bad("has no @domain")
	}
	local, domain := addr[:at], addr[at+1:]
	if reason := checkLocalPart(local); reason != "" {
		return bad(reason)
	}
	if reason := checkDomain(domain); reason != "" {
		return bad(reason)
	}
	if len(addr)+2 > maxPath {
		return bad(fmt.Sprintf("is %d octets long; a path may have at most %d including <> (RFC 5321 §4.5.3.1.3)", len(addr), maxPath))
	}
	return !isASCII(addr), nil
}

func checkLocalPart(local string) string {
	if local == "" {
		return "empty local part"
	}
	if len(local) > maxLocalPart {
		return fmt.Sprintf("local part is %d octets long, at most %d allowed (RFC 5321 §4.5.3.1.1)", len(local), maxLocalPart)
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
			if c := atom[i]; c < 0x80 && !isAtext(c) {
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
	if len(domain) > maxDomain {
		return fmt.Sprintf("domain is %d octets long, at most %d allowed (RFC 5321 §4.5.3.1.2)", len(domain), maxDomain)
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
			if !(isLetDig(c) || c == '-') {
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
		if !isLetDig(tag[i]) && tag[i] != '-' {
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

// isAtext is RFC 5322 §3.2.3 atext (ASCII part).
func isAtext(c byte) bool {
	return isLetDig(c) || strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

func isLetDig(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// hasControl reports C0 controls, DEL and C1 controls (U+0080–U+009F).
func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r >= 0x80 && r <= 0x9f {
			return true
		}
	}
	return false
}

// EncodeXtext encodes s as RFC 3461 §4 xtext: "+" followed by two upper-case
// hex digits for "+", "=" and anything outside "!" to "~".
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

// DecodeXtext decodes RFC 3461 xtext; a "+" must be followed by two
// upper-case hex digits.
func DecodeXtext(s string) (string, error) {
	if !strings.Contains(s, "+") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '+' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) || !isUpperHex(s[i+1]) || !isUpperHex(s[i+2]) {
			return "", fmt.Errorf("bad xtext %q: + must be followed by two upper-case hex digits", s)
		}
		v, _ := strconv.ParseUint(s[i+1:i+3], 16, 8)
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), nil
}

func isUpperHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'A' && c <= 'F' }

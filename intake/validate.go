// Package intake validates submitted mail and takes it in from the maildrop:
// the envelope checks every intake path shares (RFC 5321 address syntax,
// RFC 3461 DSN parameters), the Received: trace line, the maildrop file format
// and the maildrop pickup loop.
package intake

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"mailq/esmtp"
	"mailq/queue"
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
	u, reason := esmtp.NormalizeRet(ret)
	if reason != "" {
		return "", &ParamError{"RET", ret, reason}
	}
	return u, nil
}

// NormalizeNotify checks an RFC 3461 §4.1 NOTIFY value ("" = unspecified):
// NEVER alone, or a comma-separated set of SUCCESS, FAILURE, DELAY without
// repeats. It returns the value in upper case.
func NormalizeNotify(notify string) (string, error) {
	u, reason := esmtp.NormalizeNotify(notify)
	if reason != "" {
		return "", &ParamError{"NOTIFY", notify, reason}
	}
	return u, nil
}

// ValidateEnvID checks a decoded RFC 3461 §4.4 ENVID ("" = none): printable
// ASCII, at most 100 characters once xtext-encoded.
func ValidateEnvID(envid string) error {
	if reason := esmtp.CheckEnvID(envid); reason != "" {
		return &ParamError{"ENVID", envid, reason}
	}
	return nil
}

// ValidateORCPT checks an ORCPT in mailq's stored form ("" = none):
// "addr-type;address" with the address decoded (esmtp.ORCPT), an atom type,
// a printable-ASCII address (UTF-8 for type utf-8, RFC 6533), at most 500
// characters once encoded for the wire.
func ValidateORCPT(orcpt string) error {
	if orcpt == "" {
		return nil
	}
	if !strings.Contains(orcpt, ";") {
		return &ParamError{"ORCPT", orcpt, `must be "addr-type;address", e.g. "rfc822;user@example.com"`}
	}
	if err := esmtp.ParseORCPT(orcpt).Validate(); err != nil {
		return &ParamError{"ORCPT", orcpt, err.Error()}
	}
	return nil
}

// ValidateMailbox checks one address against RFC 5321 §4.1.2 Mailbox syntax
// and its length limits, and RFC 6531's UTF-8 extension (esmtp.CheckMailbox).
// It reports whether the address needs SMTPUTF8. The error is an *AddressError.
func ValidateMailbox(addr string) (smtputf8 bool, err error) {
	utf, reason := esmtp.CheckMailbox(addr)
	if reason != "" {
		return false, &AddressError{Address: addr, Reason: reason}
	}
	return utf, nil
}

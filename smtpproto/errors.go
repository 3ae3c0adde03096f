package smtpproto

// This file holds the error types Dial and Send return. They follow
// JavaMail's exception classes (docs/javamail.md "Errors") so that policy
// can classify an attempt with errors.As.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ConnectError: the TCP connection (direct, through SOCKS or an HTTP proxy)
// could not be opened (JavaMail MailConnectException). Always temporary.
type ConnectError struct {
	Host    string
	Port    int
	Timeout time.Duration
	Via     string // "" direct, else "socks5 h:p" / "http proxy h:p" / "dial hook"
	Err     error
}

func (e *ConnectError) Error() string {
	via := ""
	if e.Via != "" {
		via = " via " + e.Via
	}
	// The timeout is named only when it is what happened: "connection
	// refused; timeout 30s" would read as if both had.
	var te interface{ Timeout() bool }
	if errors.Is(e.Err, context.DeadlineExceeded) || (errors.As(e.Err, &te) && te.Timeout()) {
		return fmt.Sprintf("couldn't connect to host, port: %s, %d%s: no connection within connectiontimeout %s: %v", e.Host, e.Port, via, e.Timeout, e.Err)
	}
	return fmt.Sprintf("couldn't connect to host, port: %s, %d%s: %v", e.Host, e.Port, via, e.Err)
}
func (e *ConnectError) Unwrap() error { return e.Err }

// TLSError: implicit TLS or STARTTLS failed (handshake, certificate
// identity or trust, STARTTLS refused or not offered with
// starttls.required). Temporary for the queue; usually an operator matter.
type TLSError struct {
	Host  string
	Reply *Reply // the STARTTLS reply when the server refused it
	Err   error
}

func (e *TLSError) Error() string {
	if e.Reply != nil {
		return fmt.Sprintf("TLS with %s failed: STARTTLS refused: %s", e.Host, e.Reply)
	}
	return fmt.Sprintf("TLS with %s failed: %v", e.Host, e.Err)
}
func (e *TLSError) Unwrap() error { return e.Err }

// AuthError: authentication failed or was impossible (no common
// mechanism, auth = true but the server offers no AUTH, unreadable
// credentials). Never a reason to bounce: an operator must act.
type AuthError struct {
	Host      string
	Mechanism string // "" when no exchange took place
	Reply     *Reply // the server's final reply to the exchange, if any
	Err       error
}

func (e *AuthError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "authentication with %s failed", e.Host)
	if e.Mechanism != "" {
		fmt.Fprintf(&b, " (mechanism %s)", e.Mechanism)
	}
	if e.Reply != nil {
		fmt.Fprintf(&b, ": %s", e.Reply)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	b.WriteString("; check the route's user, password source and auth.* settings")
	return b.String()
}
func (e *AuthError) Unwrap() error { return e.Err }

// ProtocolError: the session broke outside a message transaction's
// per-recipient logic: bad greeting, EHLO/HELO refused, a reply that is not
// SMTP, a timeout or a lost connection. After it the Conn is unusable.
type ProtocolError struct {
	Host    string
	Command string // "" for the greeting
	Reply   *Reply // nil when no (parsable) reply arrived
	Err     error
}

func (e *ProtocolError) Error() string {
	step := "greeting"
	if e.Command != "" {
		step = strings.SplitN(e.Command, " ", 2)[0]
		if strings.HasPrefix(e.Command, "MAIL FROM") || strings.HasPrefix(e.Command, "RCPT TO") {
			step = e.Command[:strings.IndexByte(e.Command, ':')]
		}
	}
	if e.Reply != nil {
		return fmt.Sprintf("SMTP %s with %s failed: %s", step, e.Host, e.Reply)
	}
	return fmt.Sprintf("SMTP %s with %s failed: %v", step, e.Host, e.Err)
}
func (e *ProtocolError) Unwrap() error { return e.Err }

// SenderFailedError: MAIL FROM was refused (JavaMail
// SMTPSenderFailedException). 5xx bounces every recipient, 4xx retries.
type SenderFailedError struct {
	Address string
	Command string
	Reply   Reply
}

func (e *SenderFailedError) Error() string {
	return fmt.Sprintf("sender <%s> refused: %s", e.Address, e.Reply)
}

// AddressFailedError: one RCPT TO was refused (JavaMail
// SMTPAddressFailedException).
type AddressFailedError struct {
	Address string
	Command string
	Reply   Reply
}

func (e *AddressFailedError) Error() string {
	return fmt.Sprintf("recipient <%s> refused: %s", e.Address, e.Reply)
}

// SendFailedError: not every recipient was delivered (JavaMail
// SendFailedException / SMTPSendFailedException). ValidSent were
// delivered, ValidUnsent were valid but not delivered (4xx RCPT, or a
// DATA / end-of-data failure), Invalid were refused with 5xx. Command and
// Reply are set when DATA, BDAT or the final dot failed. Unwrap exposes each
// AddressFailedError so errors.As finds them.
type SendFailedError struct {
	ValidSent   []string
	ValidUnsent []string
	Invalid     []string
	Command     string
	Reply       *Reply
	Failed      []*AddressFailedError
}

func (e *SendFailedError) Error() string {
	var b strings.Builder
	if e.Reply != nil {
		fmt.Fprintf(&b, "%s failed: %s", e.Command, e.Reply)
	} else {
		b.WriteString("invalid addresses")
	}
	fmt.Fprintf(&b, " (sent %d, unsent %d, invalid %d)", len(e.ValidSent), len(e.ValidUnsent), len(e.Invalid))
	for _, f := range e.Failed {
		fmt.Fprintf(&b, "; <%s>: %s", f.Address, f.Reply)
	}
	return b.String()
}

func (e *SendFailedError) Unwrap() []error {
	errs := make([]error, len(e.Failed))
	for i, f := range e.Failed {
		errs[i] = f
	}
	return errs
}

// Package smtpproto is mailq's SMTP client: it dials, greets, secures,
// authenticates and transfers messages with JavaMail's SMTP property set, and
// reports per recipient what the server said. It knows nothing of queues.
package smtpproto

// This file is the contract other packages code against (delivery, policy,
// config). The implementation lives in the other files of this package.

import (
	"time"

	"mailq/esmtp"
)

// Reply is one server reply (the one reply type, owned by esmtp).
type Reply = esmtp.Reply

// Recipient is one envelope recipient with its RFC 3461 parameters.
type Recipient struct {
	Address string
	Notify  string // "" = route's dsn.notify
	ORCPT   string // mailq's stored form, "type;address" decoded (esmtp.ORCPT); encoded here for the wire
}

// Envelope is what one transaction sends. Body comes separately as an io.Reader.
type Envelope struct {
	From       string // "" = null sender <>
	Recipients []Recipient
	EnvID      string
	Ret        string // "" = route's dsn.ret
	Size       int64  // body size in bytes, for SIZE=; 0 = unknown
	EightBit   bool   // body has 8-bit bytes (BODY=8BITMIME when advertised)
	SMTPUTF8   bool   // envelope or headers need SMTPUTF8
	// LogID is the caller's name for the message, put on Send's log lines
	// as queue_id so they join the rest of the message's story.
	LogID string
}

// RecipientResult is what happened to one recipient in Send.
type RecipientResult struct {
	Address   string
	Rcpt      *Reply // the reply to its RCPT TO (nil if RCPT was never sent)
	Final     *Reply // the reply that decided its fate: the RCPT reply if rejected, MAIL FROM reply if the sender was rejected, DATA/end-of-data reply otherwise; nil if the connection failed before any reply
	Delivered bool   // end-of-data 2xx for a transaction it was in
}

// StepReply records the reply to one command (AUTH exchanges never appear).
type StepReply struct {
	Command string
	Reply   Reply
}

// Result is the outcome of Send for one message: one entry per recipient,
// in envelope order, plus every failed step (and, with reportsuccess, each
// successful RCPT) for the attempt history.
type Result struct {
	Recipients []RecipientResult
	Steps      []StepReply
}

// The client (implemented in the other files):
//
//	func Dial(ctx context.Context, s *Settings, opts DialOptions) (*Conn, error)
//	    // connect (direct/SOCKS/HTTP CONNECT, local bind, timeouts), TLS or STARTTLS,
//	    // greeting, EHLO/HELO, AUTH. Errors: *ConnectError, *TLSError, *AuthError,
//	    // *ProtocolError (greeting not 2xx etc.), all with errors.As.
//	func (c *Conn) Send(ctx context.Context, env Envelope, body io.Reader) (*Result, error)
//	    // MAIL/RCPT/DATA or BDAT with PIPELINING, 452 split and sendpartial per
//	    // docs/delivery.md. The Result is always non-nil and complete: every
//	    // recipient has an entry. The error is the JavaMail-style classification:
//	    // *SenderFailedError, *AddressFailedError, *SendFailedError (ValidSent,
//	    // ValidUnsent, Invalid), or a connection-level error. After a
//	    // connection-level error the Conn is unusable.
//	func (c *Conn) Probe(ctx context.Context) bool // liveness per userset/noop.strict
//	func (c *Conn) Ready() bool                    // no round trip: open, nothing unread (reuse right after Send)
//	func (c *Conn) Reset() error                   // RSET between messages
//	func (c *Conn) Close() error                   // QUIT per quitwait, then close
//	func (c *Conn) RemoteAddr() string             // "host:port" actually connected
//	func (c *Conn) TLSVersion() string             // "TLS1.3", "" when plain
//	func (c *Conn) Transcript() []string           // when DialOptions.Transcript; AUTH redacted
//	func (c *Conn) Extensions() map[string]string
//
// DialOptions: {Transcript bool; Logger zerolog.Logger; Dialer func(ctx, network, addr string) (net.Conn, error) (tests)}

// Timeouts resolved from Settings with mailq's defaults.
const (
	DefaultConnectTimeout = 30 * time.Second
	DefaultTimeout        = 300 * time.Second
	DefaultWriteTimeout   = 300 * time.Second
	// RFC 5321 §4.5.3.2.6: wait at least 10 minutes for the reply to the final dot.
	MinDataTermTimeout = 10 * time.Minute
)

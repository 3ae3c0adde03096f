package submission

import (
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"mailq/esmtp"
	"mailq/intake"
	"mailq/queue"
)

// handle runs one command line and reports whether the session goes on.
func (c *conn) handle(line string) bool {
	verb, arg, _ := strings.Cut(line, " ")
	arg = strings.TrimSpace(arg)
	switch strings.ToUpper(verb) {
	case "EHLO":
		c.cmdHello(arg, true)
	case "HELO":
		c.cmdHello(arg, false)
	case "MAIL":
		c.cmdMail(arg)
	case "RCPT":
		c.cmdRcpt(arg)
	case "DATA":
		return c.cmdData(arg)
	case "BDAT":
		return c.cmdBdat(arg)
	case "RSET":
		c.resetTransaction()
		c.reply(250, "2.0.0", "Ok")
	case "NOOP":
		c.reply(250, "2.0.0", "Ok")
	case "VRFY":
		c.reply(252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery")
	case "HELP":
		c.reply(214, "2.0.0", "See RFC 5321; commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT STARTTLS AUTH")
	case "QUIT":
		c.reply(221, "2.0.0", "Bye")
		return false
	case "STARTTLS":
		return c.cmdStartTLS(arg)
	case "AUTH":
		return c.cmdAuth(arg)
	case "EXPN", "TURN", "SEND", "SOML", "SAML":
		c.refuse(502, "5.5.1", "Command not implemented")
	default:
		c.refuse(500, "5.5.2", "Command unrecognized")
	}
	return true
}

func (c *conn) cmdHello(arg string, extended bool) {
	domain, _, _ := strings.Cut(arg, " ")
	if domain == "" {
		c.refuse(501, "5.5.4", "EHLO and HELO need your domain or address literal")
		return
	}
	c.resetTransaction()
	c.helo = domain
	if !extended {
		c.reply(250, "", c.l.opts.Hostname)
		return
	}
	caps := []string{c.l.opts.Hostname, "PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "CHUNKING", "SMTPUTF8", "DSN",
		fmt.Sprintf("SIZE %d", c.l.opts.MaxMessageSize), fmt.Sprintf("LIMITS RCPTMAX=%d", c.l.opts.MaxRecipients)}
	if c.l.opts.TLSConfig != nil && !c.tls {
		caps = append(caps, "STARTTLS")
	}
	if c.authOffered() {
		caps = append(caps, "AUTH PLAIN LOGIN")
	}
	c.reply(250, "", strings.Join(caps, "\n"))
}

// authOffered: only with an auth_file, and with require_tls only after TLS.
func (c *conn) authOffered() bool {
	return c.l.creds != nil && (c.tls || !c.l.opts.RequireTLS)
}

func (c *conn) cmdMail(arg string) {
	switch {
	case c.helo == "":
		c.refuse(503, "5.5.1", "Send EHLO or HELO first")
		return
	case c.l.opts.RequireTLS && !c.tls:
		c.reply(530, "5.7.0", "Must issue a STARTTLS command first")
		return
	case c.l.opts.RequireAuth && c.authUser == "":
		c.reply(530, "5.7.0", "Authentication required")
		return
	case c.mailGiven:
		c.refuse(503, "5.5.1", "Sender already given; send RSET to start a new transaction")
		return
	}
	rest, ok := cutPrefixFold(arg, "FROM:")
	if !ok {
		c.refuse(501, "5.5.2", "Syntax: MAIL FROM:<address> [parameters]")
		return
	}
	from, params, err := parsePath(strings.TrimLeft(rest, " "))
	if err != nil {
		c.refuse(501, "5.5.2", "Bad sender path: "+err.Error())
		return
	}
	ps, err := parseParams(params)
	if err != nil {
		c.refuse(501, "5.5.4", "Bad MAIL parameters: "+err.Error())
		return
	}
	env := queue.Envelope{Source: "smtp", Sender: from}
	for _, p := range ps {
		switch p.key {
		case "SIZE": // RFC 1870
			n, err := strconv.ParseUint(p.value, 10, 63)
			if err != nil {
				c.refuse(501, "5.5.4", "SIZE must be a number of octets")
				return
			}
			if int64(n) > c.l.opts.MaxMessageSize {
				c.reply(552, "5.3.4", fmt.Sprintf("Message size exceeds the maximum of %d octets", c.l.opts.MaxMessageSize))
				return
			}
		case "BODY": // RFC 6152
			if v := strings.ToUpper(p.value); v != "7BIT" && v != "8BITMIME" {
				c.refuse(501, "5.5.4", "BODY must be 7BIT or 8BITMIME")
				return
			}
		case "SMTPUTF8": // RFC 6531 §3.4
			if p.hasValue {
				c.refuse(501, "5.5.4", "SMTPUTF8 takes no value")
				return
			}
			env.SMTPUTF8 = true
		case "RET": // RFC 3461 §4.3
			if env.Ret, err = intake.NormalizeRet(p.value); err != nil {
				c.refuse(501, "5.5.4", err.Error())
				return
			}
		case "ENVID": // RFC 3461 §4.4
			v, err := esmtp.DecodeXtext(p.value)
			if err == nil {
				err = intake.ValidateEnvID(v)
			}
			if err != nil || v == "" {
				c.refuse(501, "5.5.4", "Malformed ENVID parameter")
				return
			}
			env.EnvID = v
		case "AUTH": // RFC 4954 §5: accepted; we are the first hop
		default:
			c.refuse(555, "5.5.4", "Unsupported MAIL parameter "+p.key)
			return
		}
	}
	if from != "" {
		utf, err := intake.ValidateMailbox(from)
		if err != nil {
			c.reply(553, "5.1.7", "Bad sender address: "+reasonOf(err))
			return
		}
		if utf && !env.SMTPUTF8 {
			c.reply(553, "5.6.7", errNeedsUTF8)
			return
		}
	}
	c.env = env
	c.mailGiven = true
	c.reply(250, "2.1.0", "Sender ok")
}

// RFC 6531 §3.4: a non-ASCII address without SMTPUTF8 is refused with 553 5.6.7.
const errNeedsUTF8 = "Non-ASCII address requires the SMTPUTF8 parameter on MAIL FROM"

func (c *conn) cmdRcpt(arg string) {
	if !c.mailGiven {
		c.refuse(503, "5.5.1", "Send MAIL first")
		return
	}
	if c.bdat != nil {
		c.refuse(503, "5.5.1", "RCPT is not allowed during a BDAT transfer")
		return
	}
	rest, ok := cutPrefixFold(arg, "TO:")
	if !ok {
		c.refuse(501, "5.5.2", "Syntax: RCPT TO:<address> [parameters]")
		return
	}
	to, params, err := parsePath(strings.TrimLeft(rest, " "))
	if err != nil || to == "" {
		if err == nil {
			err = errors.New("empty address")
		}
		c.refuse(501, "5.5.2", "Bad recipient path: "+err.Error())
		return
	}
	if len(c.env.Recipients) >= c.l.opts.MaxRecipients {
		c.reply(452, "4.5.3", fmt.Sprintf("Too many recipients (at most %d per message)", c.l.opts.MaxRecipients))
		return
	}
	ps, err := parseParams(params)
	if err != nil {
		c.refuse(501, "5.5.4", "Bad RCPT parameters: "+err.Error())
		return
	}
	spec := queue.RecipientSpec{Address: to}
	for _, p := range ps {
		switch p.key {
		case "NOTIFY": // RFC 3461 §4.1
			if spec.Notify, err = intake.NormalizeNotify(p.value); err != nil {
				c.refuse(501, "5.5.4", err.Error())
				return
			}
		case "ORCPT": // RFC 3461 §4.2
			o, err := esmtp.DecodeORCPTParam(p.value)
			if err != nil {
				c.refuse(501, "5.5.4", "Malformed ORCPT parameter: "+err.Error())
				return
			}
			spec.ORCPT = o.String()
		default:
			c.refuse(555, "5.5.4", "Unsupported RCPT parameter "+p.key)
			return
		}
	}
	utf, err := intake.ValidateMailbox(to)
	if err != nil {
		c.reply(553, "5.1.3", "Bad recipient address: "+reasonOf(err))
		return
	}
	if utf && !c.env.SMTPUTF8 {
		c.reply(553, "5.6.7", errNeedsUTF8)
		return
	}
	if f := c.l.opts.RefuseRecipient; f != nil {
		if reason, refuse := f(to); refuse {
			c.reply(550, "5.1.1", reason)
			return
		}
	}
	c.env.Recipients = append(c.env.Recipients, spec)
	c.reply(250, "2.1.5", "Recipient ok")
}

func (c *conn) cmdStartTLS(arg string) bool {
	switch {
	case c.l.opts.TLSConfig == nil:
		c.refuse(502, "5.5.1", "STARTTLS not available")
		return true
	case c.tls:
		c.refuse(503, "5.5.1", "TLS already active")
		return true
	case arg != "":
		c.refuse(501, "5.5.4", "STARTTLS takes no arguments")
		return true
	}
	c.reply(220, "2.0.0", "Ready to start TLS")
	c.flush()
	tc := tls.Server(c.raw, c.l.opts.TLSConfig)
	tc.SetDeadline(time.Now().Add(c.l.opts.Timeout))
	if err := tc.Handshake(); err != nil {
		c.l.opts.Logger.Debug().Err(err).Str("remote", c.ip).Msg("submission: STARTTLS handshake failed")
		c.nc = tc
		return false
	}
	tc.SetDeadline(time.Time{})
	c.useTLS(tc)
	// RFC 3207 §4.2: forget everything learnt before TLS.
	c.resetTransaction()
	c.helo, c.authUser = "", ""
	return true
}

// cmdAuth runs RFC 4954 AUTH with PLAIN or LOGIN.
func (c *conn) cmdAuth(arg string) bool {
	switch {
	case c.helo == "":
		c.refuse(503, "5.5.1", "Send EHLO first")
		return true
	case c.authUser != "":
		c.refuse(503, "5.5.1", "Already authenticated")
		return true
	case c.mailGiven:
		c.refuse(503, "5.5.1", "AUTH is not allowed during a mail transaction")
		return true
	case c.l.creds == nil:
		c.refuse(502, "5.5.1", "AUTH not available")
		return true
	case !c.authOffered():
		c.reply(538, "5.7.11", "Encryption required for requested authentication mechanism")
		return true
	}
	mech, initial, _ := strings.Cut(arg, " ")
	var user string
	failed := false
	check := func(username, password string) error {
		user = username
		if !c.l.creds.verify(username, password) {
			failed = true
			return errAuthFailed
		}
		return nil
	}
	var server sasl.Server
	switch strings.ToUpper(mech) {
	case sasl.Plain:
		server = sasl.NewPlainServer(func(identity, username, password string) error {
			if identity != "" && identity != username {
				failed = true
				return errAuthFailed // no proxy authorization
			}
			return check(username, password)
		})
	case sasl.Login:
		server = newLoginServer(check)
	default:
		c.refuse(504, "5.5.4", "Unrecognized authentication mechanism; use PLAIN or LOGIN")
		return true
	}
	var response []byte
	if initial != "" {
		var err error
		if response, err = decodeSASL(initial); err != nil {
			c.refuse(501, "5.5.2", "Invalid base64 in the initial response")
			return true
		}
	}
	for {
		challenge, done, err := server.Next(response)
		if err != nil || failed {
			return c.authFailed(user)
		}
		if done {
			break
		}
		c.reply(334, "", base64.StdEncoding.EncodeToString(challenge))
		line, err := c.readLine()
		if err != nil {
			c.readFailed(err)
			return false
		}
		if line == "*" {
			c.reply(501, "5.7.0", "Authentication cancelled")
			return true
		}
		if response, err = decodeSASL(line); err != nil {
			c.refuse(501, "5.5.2", "Invalid base64 in the response")
			return true
		}
	}
	c.authUser = user
	c.reply(235, "2.7.0", "Authentication successful")
	return true
}

var errAuthFailed = errors.New("authentication failed")

// maxAuthFailures failures close the connection; from the fourth on each
// reply waits longer, so guessing passwords is slow (issue 10 item 4).
const (
	maxAuthFailures  = 10
	freeAuthFailures = 3
)

func (c *conn) authFailed(user string) bool {
	c.authFailures++
	// Never log the password; the user name helps the operator.
	c.l.opts.Logger.Warn().Str("session", c.id).Str("remote", c.ip).Str("user", user).Int("failures", c.authFailures).Msg("submission: authentication failed")
	if c.authFailures >= maxAuthFailures {
		c.reply(421, "4.7.0", c.l.opts.Hostname+" Too many failed authentication attempts, closing connection")
		return false
	}
	if extra := c.authFailures - freeAuthFailures; extra > 0 {
		c.flush()
		time.Sleep(time.Duration(extra) * c.l.opts.AuthFailDelay)
	}
	c.reply(535, "5.7.8", "Authentication credentials invalid")
	return true
}

func decodeSASL(s string) ([]byte, error) {
	if s == "=" {
		return []byte{}, nil
	}
	return base64.StdEncoding.DecodeString(s)
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return "", false
	}
	return s[len(prefix):], true
}

func reasonOf(err error) string {
	var ae *intake.AddressError
	if errors.As(err, &ae) {
		return ae.Reason
	}
	return err.Error()
}

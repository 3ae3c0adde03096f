package smtpproto

// This file drives the AUTH exchange on the wire (RFC 4954): mechanism
// choice is chooseMechanism's, the framing is here. The transcript redacts
// the exchange; errors never contain credentials.

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strings"
)

// authenticate decides whether to authenticate and does it. auth = true
// and a server without AUTH is a (temporary) *AuthError; without auth =
// true the session goes on unauthenticated, as in JavaMail.
func (c *Conn) authenticate(creds credentials) error {
	if !c.s.WantsAuth() {
		return nil
	}
	if !c.ext.hasAuth() {
		if c.s.RequiresAuth() {
			why := "the server does not offer AUTH"
			if !c.s.UseEHLO() {
				why = "ehlo = false, so the server's AUTH support is unknown"
			}
			return &AuthError{Host: c.host, Err: fmt.Errorf("auth = true but %s; not sending unauthenticated", why)}
		}
		return nil
	}
	creds.ehloName = c.ehlo
	mech, err := chooseMechanism(c.s, c.ext.auth, creds, c.host)
	if err != nil {
		return &AuthError{Host: c.host, Err: err}
	}
	if c.tls == nil && !isLoopbackHost(c.host) {
		c.log.Warn().Str("route", c.s.Name).Str("host", c.host).Str("mechanism", mech.Name()).Msg("authenticating over a connection without TLS")
	}
	err = c.runAuth(mech)
	if err != nil {
		c.log.Error().Str("route", c.s.Name).Str("host", c.host).Str("mechanism", mech.Name()).Err(err).Msg("SMTP authentication failed; fix the route's credentials")
		return err
	}
	c.authd = true
	return nil
}

// runAuth sends AUTH and answers 334 challenges until 235 or failure.
// A 530 (encryption required, RFC 4954 §6) on a plaintext connection that
// offers STARTTLS is answered with STARTTLS and the same AUTH line again.
func (c *Conn) runAuth(mech saslMechanism) error {
	name := mech.Name()
	fail := func(r *Reply, err error) error {
		return &AuthError{Host: c.host, Mechanism: name, Reply: r, Err: err}
	}
	ir, err := mech.Start()
	if err != nil {
		return fail(nil, err)
	}
	line := "AUTH " + name
	if ir != nil {
		if len(ir) == 0 {
			line += " ="
		} else {
			line += " " + base64.StdEncoding.EncodeToString(ir)
		}
	}
	r, err := c.cmd(line)
	if err != nil {
		return err
	}
	if r.Code == 530 && c.tls == nil && c.ext.has("STARTTLS") {
		if err := c.starttlsCommand(); err != nil {
			return err
		}
		if r, err = c.cmd(line); err != nil {
			return err
		}
	}
	for r.Code == 334 {
		chal, err := decodeChallenge(r.Lines)
		if err != nil {
			return fail(&r.Reply, err)
		}
		resp, err := mech.Next(chal)
		if err != nil {
			// Like JavaMail: nothing more is sent; the caller drops the socket.
			return fail(nil, err)
		}
		if r, err = c.cmd(base64.StdEncoding.EncodeToString(resp)); err != nil {
			return err
		}
	}
	if r.Code != 235 {
		return fail(&r.Reply, nil)
	}
	// A mutual mechanism (SCRAM) must have checked the server's proof in a
	// 334 before the 235 (RFC 4954 §4 carries it there); a 235 without it
	// could come from a server that does not know the password.
	if v, ok := mech.(interface{ serverVerified() bool }); ok && !v.serverVerified() {
		return fail(&r.Reply, errors.New("the server accepted without proving it knows the password (no server-final-message); refusing to continue"))
	}
	return nil
}

// decodeChallenge decodes the text of a 334 reply ("" = empty challenge).
func decodeChallenge(lines []string) ([]byte, error) {
	if len(lines) == 0 {
		return nil, nil
	}
	t := strings.TrimSpace(lines[0])
	if t == "" || t == "=" {
		return []byte{}, nil
	}
	b, err := base64.StdEncoding.DecodeString(t)
	if err != nil {
		return nil, errors.New("server sent a 334 challenge that is not base64")
	}
	return b, nil
}

func isLoopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

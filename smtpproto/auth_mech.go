package smtpproto

// This file defines the client side of one SASL exchange (RFC 4422) as the
// AUTH command of RFC 4954 drives it. The session code sends
// "AUTH <Name> <base64 Start()>" (or "AUTH <Name>" when Start returns nil),
// then answers every 334 challenge with base64(Next(challenge)) — an empty
// response is sent as an empty line — until the server replies 235 or fails.

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
)

// saslMechanism is one client-side SASL mechanism for one AUTH exchange.
// A value is used for a single exchange and then discarded.
type saslMechanism interface {
	Name() string
	// Start returns the initial response (nil = none: client sends "AUTH NAME" alone and waits for 334).
	Start() (ir []byte, err error)
	// Next answers a server challenge (already base64-decoded).
	Next(challenge []byte) (resp []byte, err error)
}

// Mechanism names as they appear in EHLO AUTH lines and AUTH commands.
const (
	mechPLAIN       = "PLAIN"
	mechLOGIN       = "LOGIN"
	mechCRAMMD5     = "CRAM-MD5"
	mechDigestMD5   = "DIGEST-MD5"
	mechNTLM        = "NTLM"
	mechXOAUTH2     = "XOAUTH2"
	mechSCRAMSHA256 = "SCRAM-SHA-256"
)

// errUnexpectedChallenge is returned by Next when the server sends more
// challenges than the mechanism defines; the session must abort the
// exchange rather than guess an answer.
var errUnexpectedChallenge = errors.New("server sent an unexpected extra SASL challenge")

// randomBase64 returns n random bytes in standard base64; used for client
// nonces (DIGEST-MD5 cnonce, SCRAM nonce).
func randomBase64(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

package smtpproto

// CRAM-MD5 (RFC 2195): the password never crosses the wire; the client
// proves knowledge of it with HMAC-MD5 over the server's challenge.

import (
	"crypto/hmac"
	"crypto/md5"
	"encoding/hex"
	"fmt"
)

type cramMD5Mech struct {
	user, password string
	answered       bool
}

func (m *cramMD5Mech) Name() string { return mechCRAMMD5 }

func (m *cramMD5Mech) Start() ([]byte, error) { return nil, nil }

// Next returns "user SP lowercase-hex(HMAC-MD5(password, challenge))"
// (RFC 2195 §2).
func (m *cramMD5Mech) Next(challenge []byte) ([]byte, error) {
	if m.answered {
		return nil, fmt.Errorf("CRAM-MD5: second challenge: %w", errUnexpectedChallenge)
	}
	m.answered = true
	mac := hmac.New(md5.New, []byte(m.password))
	mac.Write(challenge)
	return []byte(m.user + " " + hex.EncodeToString(mac.Sum(nil))), nil
}
